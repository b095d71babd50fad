"""Trials per minute: K trials trained together (sweep/batched/stack.py) against the same trials one by one.

The default job's search: digits, MLP 64-256-256-10, batch 64, backbone/head groups, SGD with
momentum, step decay, 20 epochs; each trial draws its base LR and head multiplier on a log scale.
Every trial is built as the job builds it (sweep.train.build.build: seed, data, model, groups, optimizer,
schedule), in both arms; the batched arms load the data once for all members. The sequential
arm runs sweep.train.loop.train per trial (before and after the batched arms, to average out drift on a
shared machine); the batched arms run train_members with K = 1, 4, 16, 64, through batched matrix
products (the shipped MLP's fast path) and through vmap.

    .venv/bin/python bench/batched_trials.py [--epochs 20] [--ks 1 4 16 64] [--sequential 8] [--threads 0]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import time

from _common import compose, table, threads


def trial_values(n: int, seed: int = 0) -> list[tuple[float, float]]:
    """(optimizer.lr, groups.head_lr_mult) per trial, log-uniform in [1e-3, 0.3] and [1, 30]."""
    rng = random.Random(seed)
    return [(10 ** rng.uniform(-3, math.log10(0.3)), 10 ** rng.uniform(0, math.log10(30))) for _ in range(n)]


def build(base, lr: float, mult: float):
    from omegaconf import OmegaConf

    from sweep.train.build import build as build_job

    cfg = OmegaConf.create(OmegaConf.to_container(base))
    cfg.optimizer.lr, cfg.groups.head_lr_mult = lr, mult
    return build_job(cfg), OmegaConf.to_container(cfg.trainer, resolve=True)


def sequential(base, values) -> float:
    """Seconds to build and train each trial alone, as the job does (no TensorBoard)."""
    from sweep.train.loop import train

    started = time.perf_counter()
    for lr, mult in values:
        b, trainer = build(base, lr, mult)
        train(b.model, b.optimizer, b.schedule, b.data, trainer, None, task=b.task)
    return time.perf_counter() - started


@contextlib.contextmanager
def data_loaded_once():
    """sweep.train.build.build with one data load for all members: a batched job trains them on one data set."""
    import sweep.train.job

    load, loaded = sweep.train.build.datasets.load, []

    def load_once(cfg):
        if not loaded:
            loaded.append(load(cfg))
        return loaded[0]

    sweep.train.build.datasets.load = load_once
    try:
        yield
    finally:
        sweep.train.build.datasets.load = load


def batched(base, values, batched_layers: bool) -> tuple[float, int]:
    """Seconds to build the trials and train them as one stack; how many completed."""
    from sweep.batched.stack import Member, Status, train_members

    started = time.perf_counter()
    with data_loaded_once():
        built = [build(base, lr, mult) for lr, mult in values]
    members = [Member(b.model, b.optimizer, b.schedule) for b, _ in built]
    first, trainer = built[0]
    results = train_members(members, first.data, trainer, first.task, batched_layers=batched_layers)
    return time.perf_counter() - started, sum(r.status == Status.COMPLETE for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--sequential", type=int, default=8, help="trials in each sequential arm")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in every arm (0: torch's default)")
    args = parser.parse_args()
    threads(args.threads)
    import torch

    base = compose([f"trainer.epochs={args.epochs}", "trainer.device=cpu"])
    values = trial_values(max(max(args.ks), args.sequential))
    batched(base, values[:2], True)  # warm-up: imports, first vmap and allocator
    before = sequential(base, values[: args.sequential])
    print(f"sequential: {before:.1f} s for {args.sequential} trials", flush=True)
    rows = []
    arms = [(k, layers) for k in args.ks for layers in (True, False)]
    timings = {}
    for k, layers in arms:
        timings[(k, layers)] = batched(base, values[:k], layers)
        print(f"K={k} {'batched matmuls' if layers else 'vmap'}: {timings[(k, layers)][0]:.1f} s", flush=True)
    after = sequential(base, values[: args.sequential])
    per_minute_seq = 60 * 2 * args.sequential / (before + after)
    rows.append(
        ("sequential", "-", f"{(before + after) / (2 * args.sequential):.2f} s/trial", per_minute_seq, 1.0, "-")
    )
    for (k, layers), (seconds, completed) in timings.items():
        per_minute = 60 * k / seconds
        rows.append(
            (
                f"K={k}",
                "batched matmuls" if layers else "vmap",
                f"{seconds:.1f} s",
                per_minute,
                per_minute / per_minute_seq,
                f"{completed}/{k}",
            )
        )
    print(
        f"{args.epochs}-epoch digits MLP trials, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"sequential arm {before:.1f} s before and {after:.1f} s after"
    )
    print(table(["arm", "forward", "time", "trials/min", "ratio", "completed"], rows))


if __name__ == "__main__":
    main()
