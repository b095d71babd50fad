"""The sweeper in this process, on a small app of a user's own (tests/apps/quadratic.py): how it
records every outcome, reclaims dead workers' trials, ends a finished grid, stops on failures,
keeps only the best checkpoints, and runs jobs in-process or through a Hydra launcher."""

from __future__ import annotations

import csv
import os
import runpy
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import REPO
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from sweep.errors import ConfigError
from sweep.search import keys, workers
from sweep.search import plan as plan_module
from sweep.search.checkpoints import keep_best_checkpoints
from sweep.search.plan import Plan
from sweep.search.runners import Asked
from sweep.search.settings import SweeperConf
from sweep.search.space import load_hook
from sweep.search.storage import open_storage
from sweep.search.study import apply_lr_bounds
from sweep.search.sweeper import LRSweeper, record
from sweep.search.workers import is_surplus
from sweep.trial import Outcome, Status

APPS = REPO / "tests" / "apps"


def sweep(monkeypatch, tmp_path: Path, *overrides: str) -> Path:
    """Run `quadratic.py -m OVERRIDES` in this process; returns the sweep dir."""
    sweep_dir = tmp_path / "sweep"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys, "argv", ["quadratic.py", "-m", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.plots=false", *overrides]
    )
    try:
        runpy.run_path(str(APPS / "quadratic.py"), run_name="__main__")
    finally:
        GlobalHydra.instance().clear()
    return sweep_dir


def rows(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


def study(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=sweep_dir.name, storage=open_storage(str(sweep_dir / "study.journal")))


def test_every_outcome_is_recorded_once_with_its_reason(monkeypatch, tmp_path):
    d = sweep(
        monkeypatch,
        tmp_path,
        "fail_above=1.0",
        "nan_below=-1.0",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.max_consecutive_failures=50",
    )
    table = rows(d)
    states = [r["state"] for r in table]
    assert states.count("COMPLETE") == 8
    for r in table:
        x = float(r["x"])  # trials.csv: a column per parameter
        if x > 1.0:
            assert r["state"] == "FAIL" and r["failure_reason"].startswith("ValueError: x=")
        elif x < -1.0:
            assert r["state"] == "FAIL" and "non-finite objective" in r["failure_reason"]
        else:
            assert r["state"] == "COMPLETE" and r["failure_reason"] == ""
    results = yaml.safe_load((d / "optimization_results.yaml").read_text())
    complete = [r for r in table if r["state"] == "COMPLETE"]
    best = min(complete, key=lambda r: float(r["value"]))
    assert results["best"]["number"] == int(best["number"])
    assert results["best"]["command"].startswith(f"python {APPS / 'quadratic.py'} fail_above=1.0 nan_below=-1.0 x=")
    assert results["n_trials"]["COMPLETE"] == 8


def test_job_dirs_hold_the_records_that_rerun_a_trial(monkeypatch, tmp_path):
    d = sweep(monkeypatch, tmp_path, "hydra.sweeper.n_trials=2")
    s = study(d)
    for t in s.trials:
        records = d / str(t.number) / ".hydra"
        config = yaml.safe_load((records / "config.yaml").read_text())
        assert config["x"] == t.params["x"] and config["y"] == t.params["y"]
        overrides = yaml.safe_load((records / "overrides.yaml").read_text())
        assert f"x={t.params['x']!r}" in overrides
        assert (d / str(t.number) / "quadratic.log").exists()
    assert (d / "multirun.yaml").exists()


def test_each_job_gets_its_own_config_in_struct_mode_as_hydra_gives_it(monkeypatch, tmp_path):
    d = sweep(monkeypatch, tmp_path, "hydra.sweeper.n_trials=3", "probe_config=true")
    assert [(d / str(n) / "probe.txt").read_text() for n in range(3)] == ["struct=True own=True"] * 3


def test_a_job_that_prunes_itself_is_recorded_pruned(monkeypatch, tmp_path):
    d = sweep(
        monkeypatch,
        tmp_path,
        "steps=6",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.pruner=median",
        "hydra.sweeper.n_startup_trials=1",
        "hydra.sweeper.n_warmup_steps=0",
    )
    pruned = [t for t in study(d).trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "a median pruner over these trials prunes at least one"
    for t in pruned:
        assert len(t.intermediate_values) < 6
        assert t.user_attrs["outcome"]["reason"].startswith("pruned after step")


def test_the_trials_of_a_dead_worker_are_failed_and_retried(monkeypatch, tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    storage = open_storage(str(sweep_dir / "study.journal"))
    s = optuna.create_study(study_name="sweep", storage=storage, direction="minimize")
    dead = subprocess.Popen(["true"])
    dead.wait()
    trial = s.ask(
        {"x": optuna.distributions.FloatDistribution(-2, 2), "y": optuna.distributions.FloatDistribution(-4, 0)}
    )
    trial.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")
    d = sweep(monkeypatch, tmp_path, "hydra.sweeper.n_trials=2")
    trials = study(d).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert "died while running it" in trials[0].user_attrs["fail_reason"]
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 0]
    assert len(retry) == 1 and retry[0].params == trials[0].params
    assert retry[0].state == optuna.trial.TrialState.COMPLETE


def test_a_finished_grid_ends_the_sweep_cleanly(monkeypatch, tmp_path, capfd):
    d = sweep(
        monkeypatch,
        tmp_path,
        "hydra.sweeper.sampler=grid",
        "hydra.sweeper.n_trials=12",
        "x=choice(-1,1)",
        "y=choice(-1,0)",
    )
    table = rows(d)
    assert len(table) == 4 and {r["state"] for r in table} == {"COMPLETE"}
    assert "the grid is done" in capfd.readouterr().out


def test_a_run_of_failures_stops_the_sweep_and_still_writes_results(monkeypatch, tmp_path):
    with pytest.raises(SystemExit) as stop:
        sweep(monkeypatch, tmp_path, "fail_above=-10", "hydra.sweeper.max_consecutive_failures=3")
    assert "no trial completed" in str(stop.value)
    d = tmp_path / "sweep"
    assert [r["state"] for r in rows(d)] == ["FAIL"] * 3


def test_keep_checkpoints_keeps_only_the_best(monkeypatch, tmp_path):
    d = sweep(monkeypatch, tmp_path, "checkpoint=true", "hydra.sweeper.n_trials=6", "hydra.sweeper.keep_checkpoints=2")
    ranked = sorted(study(d).trials, key=lambda t: t.value)
    kept = {t.number for t in ranked[:2]}
    for t in ranked:
        assert (d / str(t.number) / "checkpoint.pt").exists() == (t.number in kept)


def test_jobs_run_through_a_hydra_launcher_get_their_trial_from_the_storage(monkeypatch, tmp_path):
    monkeypatch.setattr(plan_module, "BASIC_LAUNCHER", "not the configured launcher")
    d = sweep(
        monkeypatch,
        tmp_path,
        "steps=6",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.pruner=median",
        "hydra.sweeper.n_startup_trials=1",
        "hydra.sweeper.n_warmup_steps=0",
        "fail_above=1.5",
    )
    trials = study(d).trials
    finished = [t for t in trials if t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL]
    assert len(finished) == 6
    for t in trials:
        if t.state == optuna.trial.TrialState.PRUNED:  # the job wrote its outcome into the storage
            assert t.user_attrs["outcome"]["status"] == "pruned"
        if t.state == optuna.trial.TrialState.FAIL:
            assert t.user_attrs["fail_reason"].startswith("ValueError")
        overrides = yaml.safe_load((d / str(t.number) / ".hydra" / "overrides.yaml").read_text())
        assert f"++trial.number={t.number}" in overrides


def test_a_trial_over_the_budget_is_surplus():
    s = optuna.create_study()
    for _ in range(3):
        s.tell(s.ask(), 1.0)
    running = s.ask()
    assert not is_surplus(s, running.number, n_trials=4)
    assert is_surplus(s, s.ask().number, n_trials=4)


@pytest.mark.slow
def test_workers_share_one_study_and_stop_at_exactly_n_trials(tmp_path):
    d = tmp_path / "wide"
    proc = subprocess.run(
        [
            sys.executable,
            str(APPS / "quadratic.py"),
            "-m",
            f"hydra.sweep.dir={d}",
            "hydra.sweeper.n_trials=10",
            "hydra.sweeper.workers=2",
            "hydra.sweeper.plots=false",
            "sleep_s=0.1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    trials = study(d).trials
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 10
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes took trials
    assert (d / "trials.csv").exists() and (d / "optimization_results.yaml").exists()


def test_the_rerun_line_drops_what_makes_a_sweep():
    from sweep.search.results import rerun_overrides

    fixed = ["search=lr", "trainer.epochs=2", "hydra.sweeper.n_trials=3", "+hydra/launcher=basic", "data=wine"]
    assert rerun_overrides(fixed) == ["trainer.epochs=2", "data=wine"]


@pytest.mark.slow
def test_in_process_trials_give_back_tensors_and_file_handles(monkeypatch, tmp_path):
    """30 trials of the real job in this process: after each, count the live tensors and open
    file descriptors; neither may grow from trial to trial (CUDA memory too, where there is CUDA)."""
    import gc
    import warnings

    import torch

    from sweep.search.sweeper import LRSweeper

    samples: list[tuple[int, int, int]] = []
    record = LRSweeper.record

    def counted(self, study, asked, outcome):
        state = record(self, study, asked, outcome)
        gc.collect()
        with warnings.catch_warnings():  # isinstance on every live object touches deprecated module attributes
            warnings.simplefilter("ignore")
            tensors = sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))
        cuda = torch.cuda.memory_allocated() if torch.cuda.is_available() else 0
        samples.append((tensors, len(os.listdir("/proc/self/fd")), cuda))
        return state

    monkeypatch.setattr(LRSweeper, "record", counted)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "train.py",
            "search=lr",
            "data=synthetic",
            "trainer.epochs=2",
            "trainer.threads=1",
            "hydra.sweeper.n_trials=30",
            "hydra.sweeper.pruner=none",
            "hydra.sweeper.plots=false",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
    )
    try:
        runpy.run_path(str(APPS.parent.parent / "train.py"), run_name="__main__")
    finally:
        GlobalHydra.instance().clear()
    assert len(samples) == 30
    settled = samples[2]  # the first trials import and cache what every trial shares
    for tensors, fds, cuda in samples[3:]:
        assert tensors <= settled[0], samples
        assert fds <= settled[1], samples
        assert cuda <= settled[2], samples


@pytest.mark.slow
def test_ctrl_c_stops_every_worker_and_the_study_resumes(tmp_path):
    import signal
    import time

    d = tmp_path / "wide"
    command = [
        sys.executable,
        str(APPS / "quadratic.py"),
        "-m",
        f"hydra.sweep.dir={d}",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.workers=2",
        "hydra.sweeper.plots=false",
        "sleep_s=0.3",
    ]
    proc = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def trials_so_far() -> int:
        try:
            return len(study(d).trials)
        except KeyError:  # the journal is there, the workers have not created the study in it yet
            return 0

    deadline = time.time() + 120
    while (
        time.time() < deadline and proc.poll() is None and not ((d / "study.journal").exists() and trials_so_far() >= 3)
    ):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    assert proc.wait(timeout=60) != 0
    interrupted = study(d).trials
    assert 0 < sum(t.state == optuna.trial.TrialState.COMPLETE for t in interrupted) < 8
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    trials = study(d).trials
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 8
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]


# --------------------------------------------------------------------------- the pieces, one by one
# Fast tests of the sweeper's recording, asking, interruption and reclaim paths on an in-memory or
# journal study, without Hydra.


X = {"x": FloatDistribution(-2, 2)}


def plan_for(tmp_path: Path, **changes) -> Plan:
    fields = dict(
        space=dict(X),
        fixed=[],
        job_cfg=OmegaConf.create({"x": 0.5}),
        hook=None,
        lr_bounds=None,
        pruner_spec={"name": "none"},
        pruner=optuna.pruners.NopPruner(),
        sweep_dir=str(tmp_path),
        storage_spec=str(tmp_path / "study.journal"),
        study_name="s",
        in_process=True,
        n_workers=1,
    )
    return Plan(**{**fields, **changes})


def journal_study(tmp_path: Path) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    storage = open_storage(str(tmp_path / "study.journal"))
    return optuna.create_study(study_name="s", storage=storage, direction="minimize"), storage


def test_record_tells_each_status_and_keeps_the_reason_where_readers_find_it():
    s = optuna.create_study()
    told = [
        record(s, s.ask(X), outcome)
        for outcome in (
            Outcome(Status.COMPLETE, 0.5, "", 3),
            Outcome(Status.PRUNED, None, "pruned after epoch 1/3", 1),
            Outcome(Status.FAILED, None, "diverged at epoch 2/3: loss=nan", 2),
        )
    ]
    assert told == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    complete, pruned, failed = s.trials
    assert complete.value == 0.5 and complete.user_attrs == {}  # the value and params say it all
    assert pruned.user_attrs[keys.OUTCOME] == {
        "status": "pruned",
        "value": None,
        "reason": "pruned after epoch 1/3",
        "epochs": 1,
    }
    assert keys.FAIL_REASON not in pruned.user_attrs
    assert failed.user_attrs[keys.FAIL_REASON] == "diverged at epoch 2/3: loss=nan"
    assert [keys.failure_reason(t.user_attrs) for t in s.trials] == [
        "",
        "pruned after epoch 1/3",
        "diverged at epoch 2/3: loss=nan",
    ]


def test_record_after_a_finished_grid_does_not_raise():
    s = optuna.create_study(sampler=optuna.samplers.GridSampler({"x": [0.0]}))
    trial = s.ask()
    trial.suggest_float("x", -1, 1)
    assert record(s, trial, Outcome(Status.COMPLETE, 1.0)) == TrialState.COMPLETE
    assert s.sampler.is_exhausted(s)


def test_failure_reason_prefers_the_sweepers_reason_and_reads_only_a_mapping_outcome():
    outcome = {"status": "failed", "reason": "ValueError: x"}
    assert keys.failure_reason({keys.FAIL_REASON: "worker h:1 died", keys.OUTCOME: outcome}) == "worker h:1 died"
    assert keys.failure_reason({keys.OUTCOME: outcome}) == "ValueError: x"
    assert keys.failure_reason({keys.OUTCOME: "not a dict"}) == ""
    assert keys.failure_reason({}) == ""


class FakeHeartbeat:
    def __init__(self):
        self.ids: set[int] = set()
        self.seen: list[set[int]] = []

    def add(self, ids):
        self.ids.update(ids)

    def discard(self, ids):
        self.ids.difference_update(ids)


def test_a_stopped_sweep_records_its_running_trials_as_interrupted(tmp_path):
    s, storage = journal_study(tmp_path)
    sweeper = LRSweeper(SweeperConf(n_trials=2, n_jobs=2))
    sweeper.heartbeat = FakeHeartbeat()
    jobs = sweeper.ask(plan_for(tmp_path), s, storage, 2)

    def stopped(batch):
        assert sweeper.heartbeat.ids == {a.trial_id for job in batch for a in job}  # beating while they run
        raise KeyboardInterrupt

    sweeper.launch = stopped
    with pytest.raises(KeyboardInterrupt):
        sweeper.run_jobs(s, jobs)
    assert sweeper.heartbeat.ids == set()
    assert [t.state for t in s.trials] == [TrialState.RUNNING] * 2  # left running, resumable
    assert all(t.user_attrs[keys.INTERRUPTED]["reason"].startswith("interrupted") for t in s.trials)
    assert all(t.user_attrs[keys.WORKER] == workers.identity(str(tmp_path)) for t in s.trials)
    assert all(t.user_attrs[keys.PROCESS] == workers.process_id() for t in s.trials)


def test_a_broken_space_hook_fails_its_trial_and_asks_no_job(tmp_path):
    s, storage = journal_study(tmp_path)

    def hook(trial, cfg):
        raise KeyError("schedule")

    sweeper = LRSweeper(SweeperConf(n_trials=3))
    assert sweeper.ask(plan_for(tmp_path, hook=hook), s, storage, 1) == []
    (t,) = s.trials
    assert t.state == TrialState.FAIL and t.user_attrs[keys.FAIL_REASON] == "space hook: KeyError: 'schedule'"


def test_a_trial_asked_over_the_budget_is_recorded_as_surplus(tmp_path):
    s, storage = journal_study(tmp_path)
    s.tell(s.ask(X), 1.0)
    s.ask(X)  # another worker's running trial
    sweeper = LRSweeper(SweeperConf(n_trials=2))
    assert sweeper.ask(plan_for(tmp_path), s, storage, 1) == []
    assert s.trials[-1].state == TrialState.FAIL and s.trials[-1].user_attrs[keys.FAIL_REASON].startswith("surplus")


def test_ask_groups_trials_per_job_and_a_database_study_records_each_job_dir(tmp_path):
    s, storage = journal_study(tmp_path)
    sweeper = LRSweeper(SweeperConf(n_trials=10, trials_per_job=2))
    jobs = sweeper.ask(plan_for(tmp_path, hook=lambda trial, cfg: {"y": 1}), s, storage, 5)
    assert [[a.trial.number for a in job] for job in jobs] == [[0, 1], [2, 3], [4]]
    assert all(isinstance(a, Asked) and set(a.overrides) == {"x", "y"} for job in jobs for a in job)
    assert keys.JOB_DIR not in s.trials[0].user_attrs  # a journal: the job dir is <sweep dir>/<number>
    url_plan = plan_for(tmp_path, storage_spec="postgresql://u@h/db")
    (job,) = sweeper.ask(url_plan, s, storage, 1)
    assert s.trials[-1].user_attrs[keys.JOB_DIR] == str(tmp_path / str(job[0].trial.number))


def running_trial(s: optuna.Study, worker: str, heartbeat: float | None = None) -> optuna.Trial:
    trial = s.ask(X)
    trial.set_user_attr(keys.WORKER, worker)
    if heartbeat is not None:
        trial.set_user_attr(keys.HEARTBEAT, heartbeat)
    return trial


def test_reclaim_fails_only_dead_workers_trials_and_retries_each_once(tmp_path):
    import time

    s, storage = journal_study(tmp_path)
    now = time.time()
    stale = running_trial(s, "elsewhere:1", heartbeat=now - 600)
    fresh = running_trial(s, "elsewhere:2", heartbeat=now - 5)
    alive = running_trial(s, f"{socket.gethostname()}:{os.getpid()}")
    mine = running_trial(s, "elsewhere:3", heartbeat=now - 600)
    mine_id = storage.get_trial_id_from_study_id_trial_number(s._study_id, mine.number)
    assert workers.reclaim_dead(s, storage, 120.0, {mine_id}) == [stale.number]
    states = {t.number: t.state for t in s.trials}
    assert states[stale.number] == TrialState.FAIL
    assert {states[t.number] for t in (fresh, alive, mine)} == {TrialState.RUNNING}
    assert s.trials[stale.number].user_attrs[keys.FAIL_REASON] == "worker elsewhere:1 died while running it"
    waiting = [t for t in s.trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs[keys.RETRY_OF] == stale.number
    retry = s.ask(X)  # the retry runs and its worker dies too: it is failed, not enqueued again
    retry.set_user_attr(keys.WORKER, "elsewhere:4")
    assert retry.user_attrs[keys.RETRY_OF] == stale.number and retry.params == s.trials[stale.number].params
    assert workers.reclaim_dead(s, storage, 0.0, {mine_id}) == [fresh.number, retry.number]
    assert [t.user_attrs[keys.RETRY_OF] for t in s.trials if t.state == TrialState.WAITING] == [fresh.number]


def test_a_trial_without_a_heartbeat_is_dead_only_after_stale_after_s_from_its_start():
    s = optuna.create_study()
    running_trial(s, "elsewhere:1")
    t = s.trials[0]
    started = t.datetime_start.timestamp()
    assert not workers.is_dead(t, 120.0, now=started + 60)
    assert workers.is_dead(t, 120.0, now=started + 121)


def test_heartbeat_marks_the_trials_it_holds(tmp_path):
    import time

    s, storage = journal_study(tmp_path)
    trial = s.ask(X)
    trial_id = storage.get_trial_id_from_study_id_trial_number(s._study_id, trial.number)
    beat = workers.Heartbeat(storage, 0.05)
    try:
        beat.add([trial_id])
        deadline = time.time() + 5
        while keys.HEARTBEAT not in storage.get_trial(trial_id).user_attrs and time.time() < deadline:
            time.sleep(0.02)
        assert beat.mine() == {trial_id}
    finally:
        beat.stop()
    assert storage.get_trial(trial_id).user_attrs[keys.HEARTBEAT] > 0


def test_lr_bounds_are_measured_once_per_study_and_reused(tmp_path):
    s, _ = journal_study(tmp_path)
    calls = []

    def bounds(cfg, out_dir):
        calls.append((cfg.x, out_dir))
        return 1e-3, 0.5

    plan = plan_for(tmp_path, lr_bounds=bounds)
    apply_lr_bounds("tests.bounds", plan, s)
    assert calls == [(0.5, str(tmp_path))] and s.user_attrs[keys.LR_BOUNDS] == [1e-3, 0.5]
    assert plan.space["optimizer.lr"] == FloatDistribution(1e-3, 0.5, log=True)
    again = plan_for(tmp_path, lr_bounds=bounds)
    apply_lr_bounds("tests.bounds", again, s)  # a resumed sweep or a second worker
    assert len(calls) == 1 and again.space["optimizer.lr"] == FloatDistribution(1e-3, 0.5, log=True)


def test_lr_bounds_take_a_result_with_an_interval_and_refuse_an_empty_one(tmp_path):
    class Found:
        interval = (0.01, 1.0)

    s, _ = journal_study(tmp_path)
    apply_lr_bounds("h", plan_for(tmp_path, lr_bounds=lambda cfg, out: Found()), s)
    assert s.user_attrs[keys.LR_BOUNDS] == [0.01, 1.0]
    other = optuna.create_study()
    with pytest.raises(ConfigError, match="^hydra.sweeper.lr_bounds='h'"):
        apply_lr_bounds("h", plan_for(tmp_path, lr_bounds=lambda cfg, out: (0.0, 1.0)), other)
    plan = plan_for(tmp_path)
    apply_lr_bounds(None, plan, other)  # no lr_bounds: the space is left as it is
    assert "optimizer.lr" not in plan.space


def test_lr_bounds_names_a_hook_by_its_short_name_or_its_path():
    from sweep.search.plan import LR_BOUNDS_HOOKS

    assert LR_BOUNDS_HOOKS["lr_find"] == "sweep.tools.range_test.find"
    assert load_hook("os.path.join", "hydra.sweeper.lr_bounds", LR_BOUNDS_HOOKS) is os.path.join
    with pytest.raises(ConfigError, match=r"^hydra.sweeper.lr_bounds='lr_fnd'.*lr_find or an importable"):
        load_hook("lr_fnd", "hydra.sweeper.lr_bounds", LR_BOUNDS_HOOKS)


def test_keep_best_checkpoints_removes_only_the_losers(tmp_path):
    s = optuna.create_study(direction="maximize")
    for value in (0.1, 0.9, 0.5):
        s.tell(s.ask(X), value)
    for n in range(3):
        (tmp_path / str(n)).mkdir()
        (tmp_path / str(n) / "checkpoint.pt").write_bytes(b"x")
    assert keep_best_checkpoints(s, str(tmp_path), None) == []
    assert keep_best_checkpoints(s, str(tmp_path), 2) == [str(tmp_path / "0" / "checkpoint.pt")]
    assert [(tmp_path / str(n) / "checkpoint.pt").exists() for n in range(3)] == [False, True, True]


def quadratic_lr_bounds(cfg, out_dir):
    """An lr_bounds hook of a user's own (named by its path on the command line below)."""
    Path(out_dir, "bounds.txt").write_text(f"x={cfg.x}")
    return 0.01, 0.1


def test_lr_bounds_from_a_hook_of_a_users_own_bound_the_searched_lr(monkeypatch, tmp_path):
    d = sweep(
        monkeypatch, tmp_path, "hydra.sweeper.n_trials=3", "hydra.sweeper.lr_bounds=test_sweeper.quadratic_lr_bounds"
    )
    s = study(d)
    assert s.user_attrs[keys.LR_BOUNDS] == [0.01, 0.1] and (d / "bounds.txt").exists()
    assert all(0.01 <= t.params["optimizer.lr"] <= 0.1 for t in s.trials)


def test_an_unknown_lr_bounds_hook_is_one_line_and_exit_2_before_any_trial(monkeypatch, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        sweep(monkeypatch, tmp_path, "hydra.sweeper.lr_bounds=lr_fnd")
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "hydra.sweeper.lr_bounds='lr_fnd'" in err and "lr_find or an importable module.function" in err
    assert not (tmp_path / "sweep" / "study.journal").exists()
