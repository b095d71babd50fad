"""Shared helpers: run train.py as a user would, in a subprocess, with tiny budgets."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAST = ["data=synthetic", "trainer.epochs=3", "trainer.batch_size=64"]


def run_train(
    *args: str, cwd: Path | None = None, timeout: float = 600, check: bool = False, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python train.py ARGS` in a subprocess; returns the completed process (stdout+stderr text)."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_trials(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


TRIAL_COLUMNS = ("number", "state", "value", "epochs", "duration_s", "job_dir", "failure_reason")


def trial_params(row: dict[str, str]) -> dict[str, str]:
    """A trials.csv row's parameters (one column per config key; empty where the trial has no such key)."""
    return {k: v for k, v in row.items() if k not in TRIAL_COLUMNS and v != ""}


@pytest.fixture
def one_thread():
    """Tiny models on a small shared CPU: torch's default thread pool makes them 10-50x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def composed(*overrides: str):
    """train.py's config composed with `overrides`, as Hydra would (no job run)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


@pytest.fixture
def tmp_out(tmp_path: Path) -> Path:
    return tmp_path


def lr_steps(run_dir: Path, tag: str = "lr/backbone") -> list[int]:
    """The steps of a TensorBoard tag as TensorBoard shows them (purged points dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [e.step for e in events.Scalars(tag)]
