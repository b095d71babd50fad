"""The sweeper in this process, on a small app of a user's own (tests/apps/quadratic.py): how it
records every outcome, reclaims dead workers' trials, ends a finished grid, stops on failures,
keeps only the best checkpoints, and runs jobs in-process or through a Hydra launcher."""

from __future__ import annotations

import csv
import json
import os
import runpy
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra

from sweep.search import sweeper as sweeper_module
from sweep.search.storage import open_storage
from sweep.search.workers import is_surplus

APPS = Path(__file__).parent / "apps"


def sweep(monkeypatch, tmp_path: Path, *overrides: str) -> Path:
    """Run `quadratic.py -m OVERRIDES` in this process; returns the sweep dir."""
    sweep_dir = tmp_path / "sweep"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["quadratic.py", "-m", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.plots=false",
                                      *overrides])
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
    d = sweep(monkeypatch, tmp_path, "fail_above=1.0", "nan_below=-1.0", "hydra.sweeper.n_trials=8",
              "hydra.sweeper.max_consecutive_failures=50")
    table = rows(d)
    states = [r["state"] for r in table]
    assert states.count("COMPLETE") == 8
    for r in table:
        x = json.loads(r["params"])["x"]
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
    d = sweep(monkeypatch, tmp_path, "steps=6", "hydra.sweeper.n_trials=8", "hydra.sweeper.pruner=median",
              "hydra.sweeper.n_startup_trials=1", "hydra.sweeper.n_warmup_steps=0")
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
    trial = s.ask({"x": optuna.distributions.FloatDistribution(-2, 2),
                   "y": optuna.distributions.FloatDistribution(-4, 0)})
    trial.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")
    d = sweep(monkeypatch, tmp_path, "hydra.sweeper.n_trials=2")
    trials = study(d).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert "died while running it" in trials[0].user_attrs["fail_reason"]
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 0]
    assert len(retry) == 1 and retry[0].params == trials[0].params
    assert retry[0].state == optuna.trial.TrialState.COMPLETE


def test_a_finished_grid_ends_the_sweep_cleanly(monkeypatch, tmp_path, capfd):
    d = sweep(monkeypatch, tmp_path, "hydra.sweeper.sampler=grid", "hydra.sweeper.n_trials=12",
              "x=choice(-1,1)", "y=choice(-1,0)")
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
    monkeypatch.setattr(sweeper_module, "BASIC_LAUNCHER", "not the configured launcher")
    d = sweep(monkeypatch, tmp_path, "steps=6", "hydra.sweeper.n_trials=6", "hydra.sweeper.pruner=median",
              "hydra.sweeper.n_startup_trials=1", "hydra.sweeper.n_warmup_steps=0", "fail_above=1.5")
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
    proc = subprocess.run([sys.executable, str(APPS / "quadratic.py"), "-m", f"hydra.sweep.dir={d}",
                           "hydra.sweeper.n_trials=10", "hydra.sweeper.workers=2", "hydra.sweeper.plots=false",
                           "sleep_s=0.1"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
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
    monkeypatch.setattr(sys, "argv", ["train.py", "search=lr", "data=synthetic", "trainer.epochs=2", "trainer.threads=1",
                                      "hydra.sweeper.n_trials=30", "hydra.sweeper.pruner=none",
                                      "hydra.sweeper.plots=false", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
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
    command = [sys.executable, str(APPS / "quadratic.py"), "-m", f"hydra.sweep.dir={d}", "hydra.sweeper.n_trials=8",
               "hydra.sweeper.workers=2", "hydra.sweeper.plots=false", "sleep_s=0.3"]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    def trials_so_far() -> int:
        try:
            return len(study(d).trials)
        except KeyError:  # the journal is there, the workers have not created the study in it yet
            return 0

    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (
            (d / "study.journal").exists() and trials_so_far() >= 3):
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
