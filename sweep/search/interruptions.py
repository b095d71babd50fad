"""Trials stopped by a signal, and who resumes them.

A trial that ends INTERRUPTED (SLURM preempted or requeued its worker, a time limit is near, the
sweep was killed or Ctrl-C'd; `sweep.train.resume` saved its state at its last epoch end) is NOT
told to the study: it stays RUNNING, so it keeps its number and its place in the budget, and TPE's
constant liar still sees it. Its `interrupted` user attribute says where it stopped
(`{epoch, job_dir, worker, time, reason}`), and the worker process exits.

Who resumes it: first the worker with the same identity (`sweep.search.workers.identity`: a requeued
SLURM job, the same command run again), as soon as it starts; after `stale_after_s` any worker. A
worker that died without a signal (SIGKILL, a lost node) is found by the heartbeat checks; when its
trial has a resume state it is marked interrupted at once, else it is failed and retried as before.
To take a trial, a worker writes its process into the trial's `claim`, waits `CLAIM_PAUSE_S`, and
reads it back: of two workers racing for one trial, only the last writer finds its own claim.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from sweep.search import keys, workers
from sweep.train.resume import RESUME_FILE
from sweep.trial import Outcome

log = logging.getLogger(__name__)

CLAIM_PAUSE_S = 0.5
EXIT_INTERRUPTED = 75  # a worker stopped by a signal, its trial resumable (EX_TEMPFAIL: "try again")


class Stopped(SystemExit):
    """A stop request (SIGTERM, SIGUSR2) ended this sweep process; its trial is resumable."""

    def __init__(self) -> None:
        super().__init__(EXIT_INTERRUPTED)


def job_dir_of(trial: Any, sweep_dir: str) -> str:
    return str(trial.user_attrs.get(keys.JOB_DIR) or os.path.join(sweep_dir, str(trial.number)))


def has_resume_state(trial: Any, sweep_dir: str) -> bool:
    return os.path.isfile(os.path.join(job_dir_of(trial, sweep_dir), RESUME_FILE))


def mark(storage: optuna.storages.BaseStorage, trial_id: int, number: int, outcome: Outcome) -> None:
    """Record an interrupted trial: left RUNNING, with where it stopped; one line."""
    attrs = storage.get_trial(trial_id).user_attrs
    worker = str(attrs.get(keys.WORKER, "?"))
    info = {
        "epoch": outcome.epochs,
        "job_dir": attrs.get(keys.JOB_DIR),
        "worker": worker,
        "time": time.time(),
        "reason": outcome.reason,
    }
    storage.set_trial_user_attr(trial_id, keys.INTERRUPTED, info)
    log.warning(
        "trial %d %s; it stays in the study and resumes when worker %s comes back", number, outcome.reason, worker
    )


def mark_dead(storage: optuna.storages.BaseStorage, trial_id: int, trial: Any, sweep_dir: str) -> None:
    """A trial whose worker died without a signal but left a resume state: resumable at once."""
    worker = str(trial.user_attrs.get(keys.WORKER, "?"))
    info = {
        "epoch": None,
        "job_dir": job_dir_of(trial, sweep_dir),
        "worker": worker,
        "time": 0.0,
        "reason": f"worker {worker} died while running it; resumable from its resume state",
    }
    storage.set_trial_user_attr(trial_id, keys.INTERRUPTED, info)
    log.warning("trial %d: its worker %s is gone; it resumes from its last epoch end", trial.number, worker)


def resumable(trial: Any, worker: str, stale_after_s: float, now: float) -> bool:
    """Whether `worker` may resume this RUNNING trial now (see the module docstring)."""
    info = trial.user_attrs.get(keys.INTERRUPTED)
    own = trial.user_attrs.get(keys.WORKER) == worker
    if not isinstance(info, Mapping):  # our own trial, whose earlier process is gone (a SLURM job runs once)
        return own and (worker.startswith("slurm:") or workers.is_dead(trial, stale_after_s, now))
    return own or now - float(info.get("time") or 0.0) > stale_after_s


def claim(storage: optuna.storages.BaseStorage, trial_id: int) -> bool:
    """Write this process as the trial's claimant, pause, read back: True when the claim held."""
    me = workers.process_id()
    storage.set_trial_user_attr(trial_id, keys.CLAIM, me)
    time.sleep(CLAIM_PAUSE_S)
    trial = storage.get_trial(trial_id)
    return trial.state == TrialState.RUNNING and trial.user_attrs.get(keys.CLAIM) == me


def take(
    study: optuna.Study, storage: optuna.storages.BaseStorage, worker: str, stale_after_s: float, mine: set[int]
) -> list[int]:
    """The ids of the RUNNING trials this worker resumes now, claimed and marked as its own."""
    study_id = storage.get_study_id_from_name(study.study_name)
    now, taken = time.time(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        if trial_id in mine or t.user_attrs.get(keys.PAUSED) or not resumable(t, worker, stale_after_s, now):
            continue
        if not claim(storage, trial_id):
            continue
        workers.set_owner(storage, trial_id, worker)
        storage.set_trial_user_attr(trial_id, keys.HEARTBEAT, time.time())
        storage.set_trial_user_attr(trial_id, keys.INTERRUPTED, None)
        storage.set_trial_user_attr(trial_id, keys.OUTCOME, None)  # the resumed job reports a new one
        log.info("trial %d: resuming it (worker %s)", t.number, worker)
        taken.append(trial_id)
    return taken
