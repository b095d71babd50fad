"""Real command-line sweeps in temp dirs with tiny budgets: pruning, resume, kill, failures, going wide."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import FAST, REPO, read_trials, run_train, trial_params

pytestmark = pytest.mark.slow


def study_of(sweep_dir: Path) -> optuna.Study:
    from sweep.search.storage import open_storage

    storage = open_storage(str(sweep_dir / "study.journal"))
    return optuna.load_study(study_name=sweep_dir.name, storage=storage)


def test_pruning_records_pruned_trials(tmp_path):
    d = tmp_path / "prune"
    run_train(
        "-m",
        "search=lr",
        *FAST,
        "trainer.epochs=6",
        "hydra.sweeper.n_trials=10",
        "hydra.sweeper.sampler=random",
        "hydra.sweeper.n_startup_trials=2",
        "hydra.sweeper.n_warmup_steps=1",
        "optimizer.lr=tag(log, interval(1e-5, 1))",
        f"hydra.sweep.dir={d}",
        check=True,
    )
    rows = read_trials(d)
    states = [r["state"] for r in rows]
    assert states.count("COMPLETE") + states.count("PRUNED") == 10
    assert "PRUNED" in states
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    reasons = [r["failure_reason"] for r in pruned]  # pruned at once, or paused there and not resumed
    assert all("pruned after epoch" in r or ("paused after epoch" in r and "not resumed" in r) for r in reasons)
    # a pruned trial stopped early: fewer val/acc reports than epochs
    study = study_of(d)
    for t in study.get_trials(states=(optuna.trial.TrialState.PRUNED,)):
        assert len(t.intermediate_values) < 6


def test_resume_tops_up_to_n_trials_with_job_dirs_named_by_trial_number(tmp_path):
    d = tmp_path / "resume"
    common = ["-m", "search=lr", *FAST, "hydra.sweeper.pruner=none", f"hydra.sweep.dir={d}"]
    run_train(*common, "hydra.sweeper.n_trials=3", check=True)
    first = {r["number"]: trial_params(r) for r in read_trials(d)}
    run_train(*common, "hydra.sweeper.n_trials=5", check=True)
    rows = read_trials(d)
    assert [int(r["number"]) for r in rows] == [0, 1, 2, 3, 4]
    assert all(r["state"] == "COMPLETE" for r in rows)
    assert {r["number"]: trial_params(r) for r in rows[:3]} == first
    # the seeded sampler did not replay its first trials
    assert {tuple(sorted(trial_params(r).items())) for r in rows[3:]}.isdisjoint(
        tuple(sorted(p.items())) for p in first.values()
    )
    assert sorted(p.name for p in d.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1", "2", "3", "4"]
    for r in rows:
        assert Path(r["job_dir"]) == d / r["number"]


def test_sigkill_during_a_trial_then_rerun_loses_nothing(tmp_path):
    d = tmp_path / "kill"
    args = [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        "search=lr",
        "data=digits",
        "trainer.epochs=15",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.pruner=none",
        f"hydra.sweep.dir={d}",
    ]
    proc = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    log = d / "1" / "train.log"
    deadline = time.time() + 300
    while time.time() < deadline and not (log.exists() and "epoch 2/" in log.read_text()):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = study_of(d).get_trials()
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]
    proc = run_train(*args[2:], check=True)
    after = study_of(d).get_trials()
    states = [t.state.name for t in after]
    assert "RUNNING" not in states
    assert states.count("COMPLETE") == 3
    assert after[0].value == before[0].value and after[0].params == before[0].params
    # the killed trial had saved its state at an epoch's end: it is resumed under its own number,
    # with its parameters and the epochs it had trained, not failed and retried
    assert len(after) == 3 and after[1].params == before[1].params
    epochs = yaml.safe_load((d / "1" / "status.yaml").read_text())["epochs"]
    assert epochs == 15 and not (d / "1" / "resume.pt").exists()


def test_every_trial_diverging_is_recorded_and_results_are_written(tmp_path):
    d = tmp_path / "diverge"
    proc = run_train(
        "-m",
        "search=lr",
        *FAST,
        "hydra.sweeper.n_trials=10",
        "hydra.sweeper.max_consecutive_failures=4",
        "optimizer.lr=tag(log, interval(10, 1000))",
        f"hydra.sweep.dir={d}",
    )
    assert proc.returncode != 0
    assert "4 trials failed in a row" in proc.stdout + proc.stderr
    assert "no trial completed" in proc.stderr
    rows = read_trials(d)
    assert len(rows) == 4 and all(r["state"] == "FAIL" for r in rows)
    assert all(r["failure_reason"].startswith("diverged at epoch 1/3, update ") for r in rows)
    results = (d / "optimization_results.yaml").read_text()
    assert "best: null" in results and "FAIL: 4" in results
    # the diverged runs kept their logs
    assert all(any((d / r["number"] / "tensorboard").iterdir()) for r in rows)


@pytest.mark.parametrize(
    "override, words",
    [
        ("optimizer.lr=tag(log, interval(0, 1))", "low > 0"),
        ("optimizer.lr=interval(1, 0.1)", "low < high"),
        ("optimizer.not_a_key=interval(0.1, 1)", "optimizer.not_a_key"),
    ],
)
def test_bad_search_spaces_are_rejected_before_any_trial(tmp_path, override, words):
    d = tmp_path / "bad"
    proc = run_train("-m", "search=lr", *FAST, override, f"hydra.sweep.dir={d}")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and words in lines[0]
    assert not d.exists() or not any(p.is_dir() for p in d.iterdir())


def test_two_processes_on_one_journal_share_the_budget(tmp_path):
    d = tmp_path / "wide"
    args = [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        "search=lr",
        *FAST,
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.pruner=none",
        f"hydra.sweep.dir={d}",
    ]
    procs = [
        subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    trials = study_of(d).get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 6
    assert "RUNNING" not in {t.state.name for t in trials}
    # both processes did some of the work (they share a worker identity: the same command on one
    # host; `process` tells them apart)
    assert len({t.user_attrs["process"] for t in finished}) == 2


def test_job_in_another_process_reports_and_is_pruned_through_the_storage(tmp_path):
    """The trial handle reaches the study through the shared storage (as with any other launcher)."""
    from sweep.search.storage import open_storage

    path = str(tmp_path / "study.journal")
    study = optuna.create_study(study_name="s", storage=open_storage(path), direction="maximize")
    study.set_user_attr("pruner", {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0})
    good = study.ask()
    for epoch in range(3):
        good.report(1.0, epoch)
    study.tell(good, 1.0)
    trial = study.ask()
    proc = run_train(
        *FAST,
        "optimizer.lr=1e-6",
        f"trial.storage={path}",
        "trial.study_name=s",
        f"trial.number={trial.number}",
        f"hydra.run.dir={tmp_path / 'job'}",
    )
    assert proc.returncode == 0 and "the run was pruned: pruned after epoch 1/3" in proc.stdout + proc.stderr
    frozen = study.get_trials()[trial.number]
    assert frozen.intermediate_values == {1: frozen.intermediate_values[1]}
    assert frozen.user_attrs["outcome"]["status"] == "pruned"  # for the sweeper that asked for the trial


def test_hydra_discovers_the_sweeper_from_the_installed_package(tmp_path):
    code = (
        "from hydra.core.plugins import Plugins; from hydra.plugins.sweeper import Sweeper;"
        "print([c.__module__ for c in Plugins.instance().discover(Sweeper)])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "hydra_plugins.lr_sweep.lr_sweep_sweeper" in out.stdout


def test_a_failing_trial_is_recorded_with_its_reason_and_the_sweep_goes_on(tmp_path):
    """gamma above 1 is a bad setting: those trials fail with the job's message, the others complete."""
    d = tmp_path / "mixed"
    run_train(
        "-m",
        "search=lr",
        *FAST,
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.sampler=random",
        "hydra.sweeper.pruner=none",
        "hydra.sweeper.max_consecutive_failures=20",
        "schedule.gamma=interval(0.5, 1.5)",
        "hydra.sweeper.enqueue_current=true",
        f"hydra.sweep.dir={d}",
        check=True,
    )
    rows = read_trials(d)
    bad = [r for r in rows if float(r["schedule.gamma"]) > 1]  # (a high LR may diverge besides)
    assert [r for r in rows if r["state"] == "COMPLETE"].__len__() == 4 and bad
    assert all(
        r["state"] == "FAIL" and "schedule.gamma=" in r["failure_reason"] and "(0, 1]" in r["failure_reason"]
        for r in bad
    )
    # enqueue_current: the first trial ran the config's own values
    assert float(rows[0]["optimizer.lr"]) == 0.05 and float(rows[0]["schedule.gamma"]) == 0.1


def test_lr_bounds_from_the_range_test_are_measured_once_per_study(tmp_path):
    d = tmp_path / "bounds"
    common = [
        "search=lr",
        *FAST,
        "trainer.epochs=2",
        "hydra.sweeper.lr_bounds=lr_find",
        "hydra.sweeper.plots=false",
        "lr_find.num_updates=60",
        f"hydra.sweep.dir={d}",
    ]
    run_train(*common, "hydra.sweeper.n_trials=3", check=True)
    low, high = yaml.safe_load((d / "lr_find.yaml").read_text())["interval"]
    measured_at = (d / "lr_find.yaml").stat().st_mtime
    proc = run_train(*common, "hydra.sweeper.n_trials=5", check=True)
    assert (d / "lr_find.yaml").stat().st_mtime == measured_at  # the resume reused the study's bounds
    assert "measured before" in proc.stdout + proc.stderr
    study = study_of(d)
    assert study.user_attrs["lr_bounds"] == [low, high]
    lrs = [t.params["optimizer.lr"] for t in study.trials]
    assert len(lrs) >= 5 and all(low <= lr <= high for lr in lrs)


def _layout(job_dir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(job_dir)).split(".tfevents")[0]
        for p in job_dir.rglob("*")
        if ".hydra" not in p.parts and not p.name.endswith(".log")
    )


def test_trials_trained_together_match_the_same_trials_one_by_one(tmp_path):
    common = [
        "search=lr",
        *FAST,
        "hydra.sweeper.pruner=none",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.plots=false",
        "optimizer.lr=tag(log, interval(1e-3, 100))",
    ]
    run_train(*common, f"hydra.sweep.dir={tmp_path / 'seq'}", check=True)
    proc = run_train(*common, "hydra.sweeper.trials_per_job=4", f"hydra.sweep.dir={tmp_path / 'together'}", check=True)
    assert "training trials 0,1,2,3 together" in (tmp_path / "together" / "0" / "train.log").read_text()
    assert "trial 0 " in proc.stdout + proc.stderr and "trial 3 " in proc.stdout + proc.stderr  # progress lines
    seq, together = read_trials(tmp_path / "seq"), read_trials(tmp_path / "together")
    assert [(r["number"], r["state"], trial_params(r), r["failure_reason"]) for r in seq] == [
        (r["number"], r["state"], trial_params(r), r["failure_reason"]) for r in together
    ]
    for a, b in zip(seq, together):
        if a["state"] == "COMPLETE":
            assert abs(float(a["value"]) - float(b["value"])) < 1e-6
        assert _layout(tmp_path / "seq" / a["number"]) == _layout(tmp_path / "together" / b["number"])
        status_a = yaml.safe_load((tmp_path / "seq" / a["number"] / "status.yaml").read_text())
        status_b = yaml.safe_load((tmp_path / "together" / b["number"] / "status.yaml").read_text())
        assert status_a["status"] == status_b["status"] and status_a["epochs"] == status_b["epochs"]


def test_a_model_that_cannot_be_stacked_trains_its_trials_one_by_one(tmp_path):
    d = tmp_path / "branchy"
    proc = run_train(
        "search=lr",
        *FAST,
        "model=custom",
        "model._target_=user_parts.Branchy",
        "data=custom",
        "data._target_=user_parts.blobs",
        "trainer.epochs=2",
        "hydra.sweeper.pruner=none",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.trials_per_job=2",
        "hydra.sweeper.plots=false",
        f"hydra.sweep.dir={d}",
        check=True,
        env={"PYTHONPATH": str(REPO / "tests")},
    )
    assert "Branchy cannot be vmapped over trials" in proc.stdout + proc.stderr  # the notice reaches the terminal
    assert "training these 2 trials one after another" in proc.stdout + proc.stderr
    rows = read_trials(d)
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    assert all((d / r["number"] / "checkpoint.pt").exists() for r in rows)
