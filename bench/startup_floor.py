"""What a sweep's fixed cost is made of, against the floor any PyTorch training app pays.

Interleaved repetitions of four fresh processes, wall time each:
- `import torch`;
- `import torch` and one `torch.optim.SGD(...)` (torch's first optimizer constructor imports
  torch._dynamo): the floor of any app that trains;
- the same, ending with `os._exit(0)`: the floor less the interpreter's teardown of those modules,
  which train.py skips once a run has finished (sweep/train/process.py);
- `train.py --cfg job`: lr-sweep's start-up and one config composition, no training;
- a whole `train.py search=lr` sweep of one 1-epoch trial on the synthetic set, plots off.
Prints medians and each arm's ratio to the floor; then, timed inside a fresh process that has
imported torch, what importing TensorBoard's TensorFlow stub costs (its record writer and HPARAMS
metadata import it; sweep/logs/tfrecord.py and sweep/logs/tensorboard.py do without).

    .venv/bin/python bench/startup_floor.py [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


STUB = (
    "import time, torch, optuna, hydra; t = time.perf_counter(); import tensorboard.compat.tensorflow_stub; "
    "print(time.perf_counter() - t)"
)


def arms(tmp: str) -> dict[str, list[str]]:
    train = [PY, str(REPO / "train.py")]
    return {
        "import torch": [PY, "-c", "import torch"],
        "import torch + first optimizer (the floor)": [
            PY,
            "-c",
            "import torch; torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)",
        ],
        "the floor, exit without teardown": [
            PY,
            "-c",
            "import os, torch; torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1); os._exit(0)",
        ],
        "train.py --cfg job (start-up, compose)": [*train, "--cfg", "job"],
        "sweep of 1 trial x 1 epoch": [
            *train,
            "search=lr",
            "data=synthetic",
            "trainer.epochs=1",
            "hydra.sweeper.n_trials=1",
            "hydra.sweeper.plots=false",
            f"hydra.sweep.dir={tmp}/sweep",
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {}
    stub: list[float] = []
    for _rep in range(args.reps):
        with tempfile.TemporaryDirectory() as tmp:
            for name, command in arms(tmp).items():
                started = time.perf_counter()
                subprocess.run(command, cwd=tmp, check=True, capture_output=True)
                times.setdefault(name, []).append(time.perf_counter() - started)
        stub.append(float(subprocess.run([PY, "-c", STUB], check=True, capture_output=True, text=True).stdout))
    floor = statistics.median(times["import torch + first optimizer (the floor)"])
    print(f"{args.reps} interleaved repetitions, wall seconds (median, min-max), ratio to the floor")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:44s} {median:6.2f}  ({min(values):.2f}-{max(values):.2f})  {median / floor:5.2f}x")
    print(
        f"importing tensorboard.compat.tensorflow_stub after torch: {statistics.median(stub):.2f} s "
        f"({min(stub):.2f}-{max(stub):.2f})"
    )


if __name__ == "__main__":
    main()
