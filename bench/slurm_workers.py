"""Hydra launcher batches against pulling workers, on a SLURM cluster: slot utilisation, wall time,
trials per minute.

The same pruned sweep (16 trials of the default digits job, `search=lr`: median pruner, 10 epochs,
trainer.threads=1) on 2 slots, run twice on the local cluster (`.ci/slurm.sh`):
- batches: `hydra/launcher=submitit_slurm hydra.sweeper.n_jobs=2`, Hydra's way: a batch of 2 jobs,
  then a wait for the slower one, then the next batch;
- workers: `hydra/launcher=submitit_slurm hydra.sweeper.workers=2`: 2 SLURM jobs, each pulling
  trials until the study holds 16.

Slot utilisation = summed trial time / (slots x wall), where a trial's time is its job's training
time (from its first to its last line in `<sweep dir>/<number>/train.log`, the same span on both
sides) and wall is the sweep command's wall time, submission and start-up included.

    python bench/slurm_workers.py [--trials 16] [--epochs N] [--partition debug]

A 10-epoch digits trial trains for about half a second here, less than a worker's start-up (SLURM
starts the job, Python imports torch: a few seconds), so with the preset's budget the fixed costs
dominate both sides; `--epochs 150` shows the steady state of trials that train for seconds.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from _common import PY, REPO

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def trial_seconds(job_dir: Path) -> float:
    """Training time of one trial: its train.log's first to last time stamp."""
    log = job_dir / "train.log"
    if not log.exists():
        return 0.0
    stamps = [
        datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
        for m in map(STAMP.match, log.read_text().splitlines())
        if m
    ]
    return (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else 0.0


def run(name: str, extra: list[str], trials: int, partition: str, root: Path, epochs: int | None) -> dict[str, float]:
    sweep_dir = root / name
    command = [
        PY,
        str(REPO / "train.py"),
        "search=lr",
        "trainer.threads=1",
        f"hydra.sweeper.n_trials={trials}",
        "hydra.sweeper.plots=false",
        "hydra.sweeper.pruner=median",  # the same pruner in both arms, whatever the preset's default
        "hydra.sweeper.pruner_options={}",
        "hydra/launcher=submitit_slurm",
        f"hydra.launcher.partition={partition}",
        "hydra.launcher.timeout_min=30",
        f"hydra.sweep.dir={sweep_dir}",
        *extra,
        *([f"trainer.epochs={epochs}"] if epochs else []),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    job_dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    busy = sum(trial_seconds(p) for p in job_dirs)
    with open(sweep_dir / "trials.csv") as f:  # each trial from ask to tell, as the study records it
        held = sum(float(row["duration_s"] or 0) for row in csv.DictReader(f))
    return {
        "wall_s": wall,
        "busy_s": busy,
        "utilisation": busy / (2 * wall),
        "held_s": held,
        "held_utilisation": held / (2 * wall),
        "trials": len(job_dirs),
        "per_minute": trials / (wall / 60),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: the preset's 10)")
    parser.add_argument("--partition", default=os.environ.get("LRSWEEP_TEST_SLURM_PARTITION", "debug"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slurm-bench-") as tmp:
        root = Path(tmp)
        rows = {
            "batches (n_jobs=2)": run(
                "batches", ["hydra.sweeper.n_jobs=2"], args.trials, args.partition, root, args.epochs
            ),
            "workers (workers=2)": run(
                "workers", ["hydra.sweeper.workers=2"], args.trials, args.partition, root, args.epochs
            ),
        }
    epochs = f"trainer.epochs={args.epochs}" if args.epochs else "10 epochs"
    print(
        f"{args.trials} trials of the default digits job (search=lr, {epochs}, median pruner, trainer.threads=1), "
        f"2 slots, SLURM partition {args.partition}"
    )
    print("training: each trial's train.log, first to last line; held: each trial from ask to tell (its set-up too)")
    print(f"{'':22}{'wall s':>8}{'training s':>12}{'util.':>7}{'held s':>9}{'util.':>7}{'trials/min':>12}")
    for name, r in rows.items():
        print(
            f"{name:22}{r['wall_s']:8.1f}{r['busy_s']:12.1f}{r['utilisation']:7.2f}"
            f"{r['held_s']:9.1f}{r['held_utilisation']:7.2f}{r['per_minute']:12.1f}"
        )


if __name__ == "__main__":
    main()
