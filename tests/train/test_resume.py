"""Interrupted trials resume where they stopped: the loop's resume state and stop requests, the
study's bookkeeping of interrupted trials, and a sweep killed mid-trial and run again (no SLURM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import REPO, lr_steps
from optuna.trial import TrialState

from sweep.search import interruptions, keys, workers
from sweep.search.storage import open_storage
from sweep.train import resume
from sweep.trial import NoTrial, Outcome, Status


class StopAfter(NoTrial):
    """A trial handle that asks the process to stop after epoch `epoch` (as a SIGTERM would)."""

    number = 7

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch, self.reported = epoch, []

    def report(self, value: float, step: int) -> None:
        self.reported.append(step)
        if step == self.epoch:
            resume.request_stop("SIGTERM")


def test_a_stopped_run_resumes_from_its_last_epoch_with_one_curve(tmp_path, one_thread):
    from conftest import composed

    from sweep.logs.tensorboard import RunWriter
    from sweep.train.build import build
    from sweep.train.loop import train

    cfg = composed("data=synthetic", "trainer.epochs=5", "schedule=cosine")
    point = resume.ResumePoint(str(tmp_path), 7, "fingerprint")
    runs = []
    try:
        for handle in (StopAfter(2), NoTrial()):
            b = build(cfg)
            writer = RunWriter(str(tmp_path / "tensorboard"), sweep_dir=None)
            runs.append(
                train(b.model, b.optimizer, b.schedule, b.data, b.settings["trainer"], writer, handle, resume=point)
            )
            writer.close()
            resume.clear_stop_request()
    finally:
        resume.clear_stop_request()
    stopped, resumed = runs
    assert stopped.status == Status.INTERRUPTED and stopped.epochs == 2
    assert stopped.reason == "interrupted: SIGTERM; resumable from epoch 3"
    assert resumed.status == Status.COMPLETE and resumed.epochs == 5 and len(resumed.history) == 5
    assert resumed.history[:2] == stopped.history
    per_epoch = stopped.updates // 2
    assert resumed.updates == 5 * per_epoch
    steps = lr_steps(tmp_path / "tensorboard")
    assert steps == list(range(5 * per_epoch))  # one point per update, none twice, none missing


def test_a_resume_state_of_another_trial_or_config_is_not_used(tmp_path):
    import torch

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    class Scheduler:
        def state_dict(self):
            return {"last_epoch": 3}

    class Done:
        epochs, updates, history = 1, 3, [{"val/loss": 1.0}]

    point = resume.ResumePoint(str(tmp_path), 3, "abc")
    resume.save_resume_state(point, model, optimizer, Scheduler(), Done(), None, 3)
    assert resume.load_resume_state(point)["updates"] == 3
    assert resume.load_resume_state(resume.ResumePoint(str(tmp_path), 4, "abc")) is None
    assert resume.load_resume_state(resume.ResumePoint(str(tmp_path), 3, "other")) is None
    point.discard()
    assert not os.path.exists(point.path)
    assert resume.fingerprint({"a": 1, "trial": {"number": 1}}) == resume.fingerprint({"a": 1})
    assert resume.fingerprint({"a": 1}) != resume.fingerprint({"a": 2})


def journal(tmp_path: Path) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    storage = open_storage(str(tmp_path / "study.journal"))
    return optuna.create_study(study_name="s", storage=storage), storage


def interrupted_trial(study, storage, worker: str) -> int:
    trial = study.ask()
    trial_id = trial._trial_id
    workers.set_owner(storage, trial_id, worker)
    interruptions.mark(storage, trial_id, trial.number, Outcome(Status.INTERRUPTED, None, "interrupted: SIGTERM", 2))
    return trial_id


def test_an_interrupted_trial_stays_running_and_its_own_worker_takes_it_first(tmp_path, monkeypatch):
    monkeypatch.setattr(interruptions, "CLAIM_PAUSE_S", 0.0)
    s, storage = journal(tmp_path)
    trial_id = interrupted_trial(s, storage, "slurm:5_1")
    (t,) = s.get_trials(deepcopy=False)
    assert t.state == TrialState.RUNNING and t.user_attrs[keys.INTERRUPTED]["epoch"] == 2
    assert interruptions.take(s, storage, "slurm:5_0", stale_after_s=600, mine=set()) == []  # not stale yet
    assert interruptions.take(s, storage, "slurm:5_1", stale_after_s=600, mine=set()) == [trial_id]
    (t,) = s.get_trials(deepcopy=False)
    assert t.user_attrs[keys.INTERRUPTED] is None and t.user_attrs[keys.PROCESS] == workers.process_id()
    assert interruptions.take(s, storage, "slurm:5_1", stale_after_s=600, mine={trial_id}) == []


def test_any_worker_takes_a_stale_interrupted_trial_and_a_lost_claim_leaves_it(tmp_path, monkeypatch):
    monkeypatch.setattr(interruptions, "CLAIM_PAUSE_S", 0.0)
    s, storage = journal(tmp_path)
    trial_id = interrupted_trial(s, storage, "slurm:5_1")
    now = time.time()
    (t,) = s.get_trials(deepcopy=False)
    assert not interruptions.resumable(t, "slurm:5_0", 60, now)
    assert interruptions.resumable(t, "slurm:5_0", 60, now + 61)
    real_claim = storage.set_trial_user_attr

    def rival_writes_last(tid, key, value):  # another worker's claim lands after ours
        real_claim(tid, key, "otherhost:1" if key == keys.CLAIM else value)

    monkeypatch.setattr(storage, "set_trial_user_attr", rival_writes_last)
    assert interruptions.take(s, storage, "slurm:5_0", stale_after_s=0, mine=set()) == []
    monkeypatch.setattr(storage, "set_trial_user_attr", real_claim)
    assert interruptions.take(s, storage, "slurm:5_0", stale_after_s=0, mine=set()) == [trial_id]


def test_a_dead_workers_trial_with_a_resume_state_is_resumed_not_failed(tmp_path):
    s, storage = journal(tmp_path)
    trial = s.ask()
    storage.set_trial_user_attr(trial._trial_id, keys.WORKER, "slurm:9_0")
    storage.set_trial_user_attr(trial._trial_id, keys.PROCESS, f"{os.uname().nodename}:999999999")
    (tmp_path / str(trial.number)).mkdir()
    (tmp_path / str(trial.number) / resume.RESUME_FILE).write_bytes(b"state")
    assert workers.reclaim_dead(s, storage, 120.0, set(), str(tmp_path)) == []
    (t,) = s.get_trials(deepcopy=False)
    assert t.state == TrialState.RUNNING and t.user_attrs[keys.INTERRUPTED]["time"] == 0.0
    assert interruptions.resumable(t, "slurm:9_1", 120.0, time.time())


def test_worker_identities_survive_a_requeue_and_a_rerun(tmp_path, monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    local = workers.identity(str(tmp_path), 1)
    assert local == workers.identity(str(tmp_path), 1) != workers.identity(str(tmp_path / "other"), 1)
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    assert workers.identity(str(tmp_path)) == "slurm:41"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "40")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert workers.identity(str(tmp_path)) == "slurm:40_1"


@pytest.mark.slow
def test_a_sweep_killed_mid_trial_resumes_that_trial_when_run_again(tmp_path):
    d = tmp_path / "sweep"
    command = [
        sys.executable,
        str(REPO / "train.py"),
        "search=lr",
        "data=synthetic",
        "trainer.epochs=150",
        "trainer.threads=1",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.pause_trials=false",  # trial 0 trains on until the kill (no pause at a rung)
        "hydra.sweeper.plots=false",
        f"hydra.sweep.dir={d}",
    ]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (d / "0" / resume.RESUME_FILE).exists():
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == interruptions.EXIT_INTERRUPTED
    study = optuna.load_study(study_name="sweep", storage=open_storage(str(d / "study.journal")))
    (stopped,) = study.get_trials(deepcopy=False)
    epochs_done = len(stopped.intermediate_values)
    assert stopped.state == TrialState.RUNNING and stopped.user_attrs[keys.INTERRUPTED]["epoch"] == epochs_done
    assert 0 < epochs_done < 150
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    study = optuna.load_study(study_name="sweep", storage=open_storage(str(d / "study.journal")))
    first = study.trials[0]
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert sorted(first.intermediate_values) == list(range(1, 151))  # every epoch reported once
    assert f"resuming trial 0 after epoch {epochs_done}" in (d / "0" / "train.log").read_text()
    assert not (d / "0" / resume.RESUME_FILE).exists()
    steps = lr_steps(d / "0" / "tensorboard")
    assert steps == sorted(set(steps)) and steps[-1] >= 149 * (steps[1] - steps[0])
    assert all(b - a == steps[1] - steps[0] for a, b in zip(steps[:-2], steps[1:-1]))  # evenly spaced: no gap
