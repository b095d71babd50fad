"""Which LR range-test suggestion rule points at the base LR that real training finds best?

For each shipped data set (digits with the MLP, digits with the CNN, the synthetic blobs; every
other setting the default job's: SGD momentum 0.9, backbone_head groups with the head at 10x,
step decay, 20 epochs), this
1. trains the job at every base LR of a grid (10^-3 ... 10^0.5, half-decade steps) for each seed,
   and reads the last epoch's val/acc and val/loss from its TensorBoard run (a diverged run scores
   val/acc 0); the best base LR is the one with the highest mean val/acc (and, printed beside it,
   the lowest mean val/loss, which separates LRs where accuracy saturates);
2. runs the range test (sweep.tools.range_test.measure, `lr_find.*` as configured plus the overrides given
   here) once per seed and reads off each rule's suggestion and interval: valley (fastai's
   default), steepest (Lightning's), minimum (the LR of the lowest smoothed loss / 10, fastai's);
3. prints per data set the grid, the best base LRs, each rule's suggestions with their distance to
   the best in decades and its intervals, and at the end how often each rule landed within half a
   decade of the best and how often its interval held it.

Measured (2 seeds, 20 epochs, default settings): steepest within half a decade 6/6, minimum 2/6,
valley 1/6; every steepest interval held the best (README, "LR tools", has the table).

    .venv/bin/python bench/lr_find_rules.py                        # 2 seeds, 20 epochs
    .venv/bin/python bench/lr_find_rules.py --quick                # 1 seed, 8 epochs
    .venv/bin/python bench/lr_find_rules.py lr_find.smoothing=0.9  # other range-test settings
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile

import _common as c

DATASETS = {"digits-mlp": [], "digits-cnn": ["model=cnn"], "synthetic": ["data=synthetic"]}
GRID = [10 ** (k / 2) for k in range(-6, 2)]  # 1e-3, 3.2e-3, ..., 1, 3.2


def last_scalars(log_dir: str, tags: tuple[str, ...] = ("val/acc", "val/loss")) -> dict[str, float]:
    """The last logged value of each tag in a job's TensorBoard run (the job's public record)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    events.Reload()
    have = events.Tags()["scalars"]
    return {t: events.Scalars(t)[-1].value if t in have else float("nan") for t in tags}


def real_run(overrides: list[str], cache: dict[str, dict[str, float]]) -> dict[str, float]:
    """Last-epoch val/acc and val/loss of the training job itself, run in a throwaway job dir.
    A run that diverged scores val/acc 0 and val/loss inf."""
    from sweep.train.job import train_job

    key = " ".join(overrides)
    if key not in cache:
        here = os.getcwd()
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            try:
                value = train_job(c.compose(overrides))
                last = last_scalars(os.path.join(tmp, "tensorboard"))
            finally:
                os.chdir(here)
        cache[key] = last if value == value else {"val/acc": 0.0, "val/loss": math.inf}
    return cache[key]


def range_tests(overrides: list[str]) -> dict[str, tuple[float, tuple[float, float]]]:
    """Each rule's (suggestion, interval) from one range test."""
    from sweep.tools.lr_suggestion import RULES, suggest
    from sweep.tools.range_test import measure

    curve, _, _ = measure(c.compose(overrides))
    return {rule: suggest(curve.base_lrs, curve.smoothed, rule) for rule in RULES}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="1 seed, 8 epochs")
    p.add_argument("--only", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    p.add_argument("--cache", help="JSON file that keeps the grid's real runs between invocations")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for the range test only (lr_find.*)")
    a = p.parse_args()
    seeds, epochs = ([0], 8) if a.quick else (a.seeds, a.epochs)
    c.threads(1)
    logging.disable(logging.WARNING)  # the per-epoch lines of dozens of runs, and the diverged ones
    cache = json.load(open(a.cache)) if a.cache and os.path.isfile(a.cache) else {}
    rules = ("valley", "steepest", "minimum")
    near = {(rule, m): 0 for rule in rules for m in ("val/acc", "val/loss")}
    held = {(rule, m): 0 for rule in rules for m in ("val/acc", "val/loss")}
    for name in a.only:
        common = DATASETS[name] + [f"trainer.epochs={epochs}", "trainer.threads=1"]
        runs = {
            lr: [real_run(common + [f"optimizer.lr={lr:.6g}", f"trainer.seed={s}"], cache) for s in seeds]
            for lr in GRID
        }
        if a.cache:
            json.dump(cache, open(a.cache, "w"))
        acc = {lr: sum(r["val/acc"] for r in rs) / len(rs) for lr, rs in runs.items()}
        loss = {lr: sum(r["val/loss"] for r in rs) / len(rs) for lr, rs in runs.items()}
        best = {"val/acc": max(GRID, key=lambda lr: (acc[lr], -loss[lr])), "val/loss": min(GRID, key=loss.get)}
        print(f"\n== {name}: {' '.join(DATASETS[name]) or 'the default job'}, {epochs} epochs, seeds {seeds}")
        print(
            c.table(["base LR", "val/acc (mean)", "val/loss (mean)"], [[f"{lr:.3g}", acc[lr], loss[lr]] for lr in GRID])
        )
        print(f"best base LR: {best['val/acc']:.3g} by val/acc, {best['val/loss']:.3g} by val/loss")
        found = [range_tests(common + [f"trainer.seed={s}", *a.overrides]) for s in seeds]
        rows = []
        for rule in rules:
            lrs = [f[rule][0] for f in found]
            row = [rule, " ".join(f"{lr:.3g}" for lr in lrs)]
            for metric, b in best.items():
                row.append(" ".join(f"{math.log10(lr / b):+.2f}" for lr in lrs))
                near[rule, metric] += sum(abs(math.log10(lr / b)) <= 0.5 for lr in lrs)
                held[rule, metric] += sum(f[rule][1][0] <= b <= f[rule][1][1] for f in found)
            row.append(" ".join(f"[{f[rule][1][0]:.2g}, {f[rule][1][1]:.2g}]" for f in found))
            rows.append(row)
        print(
            c.table(
                [
                    "rule",
                    "suggestion per seed",
                    "decades from best (acc)",
                    "decades from best (loss)",
                    "interval per seed",
                ],
                rows,
            )
        )
    n = len(a.only) * len(seeds)
    print(f"\nrange-test settings: {' '.join(a.overrides) or 'the defaults (conf/lr_find/default.yaml)'}")
    print(
        c.table(
            ["rule", "within 1/2 decade of best acc", "of best loss", "interval holds best acc", "holds best loss"],
            [
                [
                    rule,
                    f"{near[rule, 'val/acc']}/{n}",
                    f"{near[rule, 'val/loss']}/{n}",
                    f"{held[rule, 'val/acc']}/{n}",
                    f"{held[rule, 'val/loss']}/{n}",
                ]
                for rule in rules
            ],
        )
    )


if __name__ == "__main__":
    main()
