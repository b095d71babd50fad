"""Where a sweep's trial goes, step by step, and what the cyclic GC costs a sweep.

Runs train.py's sweep (search=lr, TPE, no pruning, plots off, digits) inside a fresh subprocess with
a wall-clock timer on each step, twice:
- as `python train.py` runs it: the GC paused while it starts up, then frozen and back on once the
  first optimizer is built (sweep/train/process.py);
- with the GC on throughout (what it was before);
and prints, for the first, the median milliseconds of each step over trials 1 .. n-1 (trial 0
imports torch._dynamo) and of a whole trial's cycle less its epochs (one `ask` to the next); for
both, the wall time and the time spent in the GC (gc.callbacks), in start-up (trial 0 included) and
in trials 1 .. n-1.

    .venv/bin/python bench/trial_steps.py [--trials 32] [--epochs 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import re
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as c

# (label, module, attribute): the steps timed, each where the sweep looks it up at call time
STEPS = [
    ("ask (Optuna: TPE, journal writes)", "sweep.search.sweeper", "LRSweeper.ask"),
    ("prepare (config copy, .hydra/ records)", "sweep.search.runners", "InProcessJobs.prepare"),
    ("build (all of it)", "sweep.train.job", "build"),
    ("  resolve the config (each of its 2 calls)", "sweep.train.build", "resolved"),
    ("  load the data (cached arrays)", "sweep.train.data", "load"),
    ("  build the model", "sweep.train.build", "build_model"),
    ("  build the optimizer", "sweep.train.build", "build_optimizer"),
    ("TensorBoard run: open", "sweep.train.job", "open_writer"),
    ("TensorBoard run: close (HPARAMS session)", "sweep.train.job", "close_writer"),
    ("train (epochs and their set-up)", "sweep.train.job", "train"),
    ("conclude (status, checkpoint)", "sweep.train.job", "conclude"),
    ("record (Optuna tell)", "sweep.search.sweeper", "LRSweeper.record"),
    ("finish (results, CSV, HPARAMS experiment)", "sweep.search.sweeper", "LRSweeper.finish"),
]
EPOCH_MS = re.compile(r"\((\d+(?:\.\d+)?) ms\)")


def timed(calls: dict[str, list[float]], label: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            calls[label].append(time.perf_counter() - started)

    return wrapper


def child(mode: str, trials: int, epochs: int, out: str) -> None:
    """One sweep in this process; prints its figures as JSON on the last line."""
    import importlib

    if mode == "paused":  # what sweep.train.process.pause_gc() does when train.py is the program
        import sweep.train.process

        gc.disable()
        sweep.train.process._paused = True
    calls: dict[str, list[float]] = {label: [] for label, _, _ in STEPS}
    for label, module, attr in STEPS:
        owner = importlib.import_module(module)
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, timed(calls, label, getattr(owner, name)))
    import sweep.search.sweeper

    asks: list[float] = []
    ask = sweep.search.sweeper.LRSweeper.ask
    sweep.search.sweeper.LRSweeper.ask = lambda self, *a, **k: (asks.append(time.perf_counter()), ask(self, *a, **k))[1]
    gc_time = {"start-up": 0.0, "trials": 0.0}  # start-up: until trial 1 (trial 0 imports torch._dynamo)
    gc_started = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_time["trials" if len(asks) > 1 else "start-up"] += time.perf_counter() - gc_started[0]

    gc.callbacks.append(on_gc)
    os.chdir(c.REPO)
    sys.argv = [
        str(c.REPO / "train.py"),
        "-m",
        "search=lr",
        "hydra.sweeper.pruner=none",
        "hydra.sweeper.plots=false",
        f"trainer.epochs={epochs}",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweep.dir={out}",
    ]
    started = time.perf_counter()
    runpy.run_path(sys.argv[0], run_name="__main__")
    wall = time.perf_counter() - started
    asks.append(asks[-1] + calls["record (Optuna tell)"][-1])  # the last cycle ends with its tell
    logs = [Path(out) / str(n) / "train.log" for n in range(trials)]
    epoch_s = [sum(float(x) for x in EPOCH_MS.findall(p.read_text())) / 1000 for p in logs]
    cycles = [asks[k + 1] - asks[k] - epoch_s[k] for k in range(1, trials)]
    steps = {label: 1000 * statistics.median(v[1:] or v) for label, v in calls.items() if v}
    print(json.dumps({"wall": wall, "cycle_ms": 1000 * statistics.median(cycles), "steps": steps, "gc": gc_time}))


def run(mode: str, args: argparse.Namespace) -> dict:
    out = tempfile.mkdtemp(prefix=f"trial-steps-{mode}-")
    env = {**os.environ, **(c.threads(args.threads) if args.threads else {})}
    proc = subprocess.run(
        [c.PY, __file__, "--child", mode, "--trials", str(args.trials), "--epochs", str(args.epochs), "--out", out],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default 0: torch's default)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.trials, args.epochs, args.out)
    paused, always_on = run("paused", args), run("on", args)
    print(
        f"a sweep of {args.trials} trials x {args.epochs} epoch(s), in one process; medians over trials "
        f"1..{args.trials - 1}\n"
    )
    rows = [[label, ms] for label, ms in paused["steps"].items()]
    rows.append(["a trial's whole cycle, less its epochs", paused["cycle_ms"]])
    print(c.table(["step (GC paused at start-up, as train.py)", "ms"], rows))
    print()
    print(
        c.table(
            ["GC", "wall s", "GC in start-up and trial 0 s", "GC in the other trials s"],
            [
                [name, r["wall"], r["gc"]["start-up"], r["gc"]["trials"]]
                for name, r in (("paused at start-up (train.py)", paused), ("on throughout", always_on))
            ],
        )
    )


if __name__ == "__main__":
    main()
