"""examples/my_app.py: a user's own Hydra app and loop, composing lr-sweep's config groups (through
the search-path plugin) and using the library; run and swept as a user would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, read_trials

APP = REPO / "examples" / "my_app.py"


def run_app(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(APP), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )
    assert proc.returncode == 0, f"my_app.py {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_the_app_composes_lr_sweeps_groups_without_copies() -> None:
    from hydra import compose, initialize_config_dir

    assert not (REPO / "examples" / "conf" / "optimizer").exists()  # nothing copied into the app
    with initialize_config_dir(config_dir=str(REPO / "examples" / "conf"), version_base="1.3"):
        cfg = compose(
            "my_app", overrides=["groups=layer_decay", "schedule=onecycle", "search=lr"], return_hydra_config=True
        )
    assert cfg.groups.name == "layer_decay" and cfg.groups.decay == 0.7  # lr-sweep's conf/groups/layer_decay.yaml
    assert cfg.schedule.name == "onecycle" and cfg.schedule.warmup_epochs == 1  # the app's value on top
    assert cfg.optimizer.name == "adamw" and cfg.optimizer.lr == 0.003
    assert cfg.hydra.sweeper.params["optimizer.lr"].startswith("tag(log")  # lr-sweep's search=lr
    sources = {s.provider: (s.schema, s.path) for s in cfg.hydra.runtime.config_sources}
    assert sources["lr-sweep"] == ("pkg", "sweep.conf")  # the search-path plugin


@pytest.mark.slow
def test_the_app_trains_one_run(tmp_path: Path) -> None:
    run_app("trainer.epochs=3", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    log = (tmp_path / "run" / "my_app.log").read_text()
    epochs = [line for line in log.splitlines() if "val/acc" in line]
    assert len(epochs) == 3
    assert "epoch 1/3 " in epochs[0] and "epoch 3/3 " in epochs[-1]  # counted from 1, as train.py counts
    assert "head: classifier (last child with parameters)" in log  # the group table says what was chosen
    assert "'head': " in epochs[0] and "'backbone': " in epochs[0]  # lr-sweep's groups, found in the app's model


@pytest.mark.slow
def test_the_app_sweeps_with_pruning(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    run_app(
        "-m",
        "search=lr",
        "hydra.sweeper.n_trials=5",
        f"hydra.sweep.dir={sweep_dir}",
        "trainer.epochs=6",
        "hydra.sweeper.n_startup_trials=1",
        "hydra.sweeper.n_warmup_steps=1",
        "hydra.sweeper.plots=false",
        "optimizer.lr=tag(log, interval(1e-6, 0.1))",
        cwd=tmp_path,
    )
    trials = read_trials(sweep_dir)
    states = {t["state"] for t in trials}
    assert len(trials) == 5
    assert "COMPLETE" in states
    assert "PRUNED" in states  # the app's should_prune() stopped a trial the pruner ruled out
    assert (sweep_dir / "optimization_results.yaml").is_file()
