"""Worker bookkeeping for studies shared by several sweep processes: who runs which trial, whether
that worker is still alive, and whether a new trial is over the budget.

Each trial a worker runs carries a `worker` user attribute (the worker's `identity`, the same
after a SLURM requeue or when the same command runs again on the same host), a `process` one
(`host:pid`) and, while it runs, a `heartbeat` (unix time) refreshed by a daemon thread. A RUNNING
trial whose process is gone (same host: the process no longer exists; another host: no heartbeat
for `stale_after_s`) is failed with the reason and its parameters are enqueued once for a retry, so
a resumed or surviving worker finishes the study; unless it left a resume state (`resume.pt` in its
job dir): then it is marked interrupted and resumed (`sweep.search.interruptions`). Workers race
for the last trials; the loser of a race (more trials started
than `n_trials` allows, counting by trial number) records its trial as a surplus failure instead
of training it, so all workers together stop at exactly `n_trials` finished trials.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable

import optuna
from optuna.trial import TrialState

from sweep.search import keys

log = logging.getLogger(__name__)


def process_id() -> str:
    """`host:pid` of this process (what the heartbeat checks look at)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def identity(sweep_dir: str, index: int = 0) -> str:
    """This worker's identity: `slurm:<job id>[_<array task id>]` inside a SLURM job (the same after
    a requeue), else `<host>:<worker index>:<hash of the sweep dir>` (the same command run again)."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"slurm:{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    if env.get("SLURM_JOB_ID"):
        return f"slurm:{env['SLURM_JOB_ID']}"
    digest = hashlib.sha256(os.path.abspath(sweep_dir).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}:{index}:{digest}"


def set_owner(storage: optuna.storages.BaseStorage, trial_id: int, worker: str) -> None:
    """Mark a trial as run by `worker` (its identity) in this process."""
    storage.set_trial_user_attr(trial_id, keys.WORKER, worker)
    storage.set_trial_user_attr(trial_id, keys.PROCESS, process_id())


worker_id = process_id  # the name older callers use


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Heartbeat:
    """Marks this worker's running trials alive every `interval` seconds, in a daemon thread."""

    def __init__(self, storage: optuna.storages.BaseStorage, interval: float) -> None:
        self.storage, self.interval = storage, interval
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="lr-sweep-heartbeat").start()

    def add(self, trial_ids: Iterable[int]) -> None:
        with self._lock:
            self._ids.update(trial_ids)

    def discard(self, trial_ids: Iterable[int]) -> None:
        with self._lock:
            self._ids.difference_update(trial_ids)

    def mine(self) -> set[int]:
        with self._lock:
            return set(self._ids)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for trial_id in self.mine():
                try:
                    self.storage.set_trial_user_attr(trial_id, keys.HEARTBEAT, time.time())
                except Exception:  # noqa: BLE001 - the trial finished meanwhile; the next beat skips it
                    pass


def is_dead(trial: optuna.trial.FrozenTrial, stale_after_s: float, now: float | None = None) -> bool:
    """Whether the worker that runs `trial` is gone (see the module docstring)."""
    now = time.time() if now is None else now
    process = str(trial.user_attrs.get(keys.PROCESS) or trial.user_attrs.get(keys.WORKER, ""))
    host, _, pid = process.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return int(pid) != os.getpid() and not pid_alive(int(pid))
    started = trial.datetime_start.timestamp() if trial.datetime_start else now
    return now - float(trial.user_attrs.get(keys.HEARTBEAT, started)) > stale_after_s


def reclaim_dead(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    stale_after_s: float,
    mine: set[int],
    sweep_dir: str | None = None,
) -> list[int]:
    """Fail the RUNNING trials of dead workers (not ours) and enqueue each one's parameters once
    for a retry; returns the numbers of the trials reclaimed. Interrupted trials are left to
    `sweep.search.interruptions`, and so is a dead worker's trial with a resume state."""
    from sweep.search import interruptions

    study_id = storage.get_study_id_from_name(study.study_name)
    reclaimed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        waiting = t.user_attrs.get(keys.INTERRUPTED) or t.user_attrs.get(keys.PAUSED)
        if trial_id in mine or waiting or not is_dead(t, stale_after_s):
            continue
        worker = t.user_attrs.get(keys.WORKER, "?")
        if sweep_dir is not None and interruptions.has_resume_state(t, sweep_dir):
            interruptions.mark_dead(storage, trial_id, t, sweep_dir)
            continue
        try:
            storage.set_trial_user_attr(trial_id, keys.FAIL_REASON, f"worker {worker} died while running it")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except Exception:  # noqa: BLE001 - another worker reclaimed it first
            continue
        log.warning("trial %d: its worker %s is gone; marked FAIL", t.number, worker)
        reclaimed.append(t.number)
        if keys.RETRY_OF not in t.user_attrs and t.params:
            study.enqueue_trial(dict(t.params), user_attrs={keys.RETRY_OF: t.number})
    return reclaimed


def is_surplus(study: optuna.Study, number: int, n_trials: int) -> bool:
    """True when lower-numbered trials (finished or running) already fill `n_trials`."""
    ahead = [
        t
        for t in study.get_trials(deepcopy=False, states=keys.FINISHED + (TrialState.RUNNING,))
        if t.number < number and not keys.diverged(t.user_attrs)
    ]
    return len(ahead) >= n_trials
