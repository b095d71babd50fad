"""Pruning rules replayed on the search-efficiency grids' learning curves: what each would cost and
lose, over thousands of draws instead of the 3 seeds a live search affords.

The 40 runs of each cached grid (bench/search_efficiency.py: 10 base LRs x 4 head multipliers,
seeds 0-5) logged their validation metric after every epoch. A replayed search draws 12 of the
grid's points inside the preset's LR range for the optimizer (the first with multiplier 1, as the
preset's one-LR trial), lets a rule decide how far each trains, and picks the best complete one:

- none: every trial trains its whole run;
- halving: Optuna's successive halving (first rung a sixth of the run, the top third goes on, a
  trial the best so far always goes on) with a floor of 3 complete trials, `search=lr` before
  `hydra.sweeper.pause_trials`;
- paused: the same rungs with trials paused instead of stopped (asynchronous successive halving as
  published, `sweep.search.pausing`: a paused trial resumes from its rung once it ranks in the top
  third there, and the best paused ones finish the run at the end until 3 are complete), the first
  rung at a sixth of the run, or at a quarter (what `pause_trials` ships).

Draws: `random` (each point at random, as TPE's first trials) or `even` (the LRs in the range
cycled in a shuffled order, the multipliers likewise: a space-filling start). Gap: the grid's best
minus the pick, points of accuracy or % of RMSE, mean over draws and seeds; compute: the grid's
epochs over the replay's. The lattice is coarser than a live search (half-decade LRs), so its gaps
are larger; the rules' differences are what it measures.

    .venv/bin/python bench/search_efficiency.py --grid-only --seeds 0 1 2 3 4 5   # the grids, once (cached)
    .venv/bin/python bench/halving_replay.py                                      # seconds
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import _common as c
import search_efficiency as se

from sweep import resolvers
from sweep.search.space import first_rung

EPOCH_LINE = re.compile(r"epoch (\d+)/\d+ .*?val/(?:acc|rmse) (\S+)")
DRAWS = 300  # per seed and arm
MULTS = [float(m) for m in se.MULTS]
Run = tuple[float, float, list[float]]  # base LR, head multiplier, the metric after each epoch (higher is better)


@dataclass(frozen=True)
class Rule:
    """The search's budget and halving settings; the defaults are the preset's."""

    trials: int = 12
    floor: int = 3  # complete trials before anything is pruned
    eta: int = 3  # the reduction factor: the top 1/eta goes on at each rung
    first_rung: int = 0  # an epoch; 0: sweep.search.space.first_rung (a sixth of the run, at least 2)


def curves(setting: list[str], epochs: int, seed: int, maximize: bool) -> list[Run]:
    """The grid's runs with their per-epoch metric, signed so that higher is better (NaN: -inf)."""
    se.grid(setting, epochs, seed, maximize)  # cached, or run now
    _, out = se.grid_args(setting, epochs, seed)
    runs = []
    for job in glob.glob(os.path.join(out, "[0-9]*")):
        overrides = dict(line[2:].strip().split("=", 1) for line in open(os.path.join(job, ".hydra", "overrides.yaml")))
        values = [float(m.group(2)) for m in EPOCH_LINE.finditer(open(os.path.join(job, "train.log")).read())]
        signed = [(v if maximize else -v) if v == v else float("-inf") for v in values]
        runs.append((float(overrides["optimizer.lr"]), float(overrides["groups.head_lr_mult"]), signed))
    return runs


def in_range(runs: list[Run], setting: list[str]) -> list[Run]:
    """The grid points inside the preset's LR range for the setting's optimizer."""
    optimizer = next((s.split("=", 1)[1] for s in setting if s.startswith("optimizer=")), "sgd")
    low, high = (float(v) for v in resolvers.lr_range(optimizer).split("interval(", 1)[1].rstrip(")").split(","))
    return [r for r in runs if low * 0.999 <= r[0] <= high * 1.001]


def at(run: Run, epoch: int) -> float:
    return run[2][epoch - 1] if epoch <= len(run[2]) else float("-inf")


def rungs(epochs: int, rule: Rule, paused: bool = False) -> list[int]:
    r, out = rule.first_rung or first_rung(epochs, paused), []
    while r < epochs:
        out.append(r)
        r *= rule.eta
    return out


def no_pruning(trials: list[Run], epochs: int, rule: Rule) -> tuple[float, int]:
    return max(at(t, epochs) for t in trials), sum(min(epochs, len(t[2])) for t in trials)


def halving(trials: list[Run], epochs: int, rule: Rule) -> tuple[float, int]:
    """Optuna's SuccessiveHalvingPruner (a trial goes on when it ranks within the top third of the
    values reported at the rung so far, or is the best there) under the floor of complete trials."""
    seen: dict[int, list[float]] = {r: [] for r in rungs(epochs, rule)}
    finals, trained = [], 0
    for t in trials:
        stop = None
        for r in seen:
            if r > len(t[2]):
                break
            seen[r].append(at(t, r))
            ranked = sorted(seen[r], reverse=True)
            goes_on = at(t, r) >= ranked[max(len(ranked) // rule.eta - 1, 0)]
            if not goes_on and len(finals) >= rule.floor:
                stop = r
                break
        if stop is None and len(t[2]) < epochs:  # diverged before the end
            stop = len(t[2])
        if stop is None:
            finals.append(at(t, epochs))
        trained += epochs if stop is None else stop
    return max(finals, default=float("-inf")), trained


def paused_at_a_quarter(trials: list[Run], epochs: int, rule: Rule) -> tuple[float, int]:
    """`hydra.sweeper.pause_trials` as shipped: pausing, its first rung at a quarter of the run."""
    return halving_resumed(trials, epochs, rule, rungs(epochs, rule, paused=True))


def halving_resumed(
    trials: list[Run], epochs: int, rule: Rule, rung_epochs: list[int] | None = None
) -> tuple[float, int]:
    """Asynchronous successive halving with paused trials: before each new trial, resume a paused
    one that ranks within the top third of its rung; at the end finish the best paused ones."""
    stops = [*(rungs(epochs, rule) if rung_epochs is None else rung_epochs), epochs]
    reached: dict[int, dict[int, float]] = {r: {} for r in stops}
    promoted: dict[int, set[int]] = {r: set() for r in stops}
    trained_to: dict[int, int] = {}

    def train(i: int, upto: int) -> None:
        end = min(upto, len(trials[i][2]))
        trained_to[i] = end
        reached[upto][i] = at(trials[i], upto) if end == upto else float("-inf")

    def promotable() -> tuple[int, int] | None:
        for k in range(len(stops) - 2, -1, -1):
            r = stops[k]
            top = sorted(reached[r], key=lambda i: -reached[r][i])[: len(reached[r]) // rule.eta]
            for i in top:
                if i not in promoted[r] and reached[r][i] > float("-inf"):
                    return i, k
        return None

    started = 0
    while True:
        step = promotable()
        if step is not None:
            i, k = step
            promoted[stops[k]].add(i)
            train(i, stops[k + 1])
        elif started < len(trials):
            train(started, stops[0])
            started += 1
        else:
            break
    while sum(v > float("-inf") for v in reached[epochs].values()) < rule.floor:
        waiting = [
            (reached[r][i], r, i)
            for r in reversed(stops[:-1])
            for i in reached[r]
            if i not in promoted[r] and reached[r][i] > float("-inf")
        ]
        if not waiting:
            break
        _, r, i = max(waiting, key=lambda w: (w[1], w[0]))  # the furthest trained, then the best
        promoted[r].add(i)
        train(i, epochs)
    return max(reached[epochs].values(), default=float("-inf")), sum(trained_to.values())


def draw_random(space: list[Run], rng: random.Random, n: int) -> list[Run]:
    first = rng.choice([r for r in space if r[1] == 1.0])
    return [first, *(rng.choice(space) for _ in range(n - 1))]


def draw_even(space: list[Run], rng: random.Random, n: int) -> list[Run]:
    lrs = sorted({r[0] for r in space})
    by_point = {(r[0], r[1]): r for r in space}
    chosen: list[Run] = []
    while len(chosen) < n:
        order, mults = rng.sample(lrs, len(lrs)), rng.sample(MULTS, len(MULTS))
        for k, lr in enumerate(order):
            chosen.append(by_point[(lr, 1.0 if not chosen else mults[k % len(mults)])])
    return chosen[:n]


ARMS: dict[str, tuple[Callable, Callable]] = {
    "none, random": (no_pruning, draw_random),
    "none, even": (no_pruning, draw_even),
    "halving": (halving, draw_random),
    "paused, rung E/6": (halving_resumed, draw_random),
    "paused, rung E/4": (paused_at_a_quarter, draw_random),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--trials", type=int, default=Rule.trials)
    ap.add_argument("--floor", type=int, default=Rule.floor, help="complete trials before any pruning")
    ap.add_argument("--eta", type=int, default=Rule.eta, help="the reduction factor: the top 1/eta goes on")
    ap.add_argument("--first-rung", type=int, default=0, help="an epoch (0: a sixth of the run, at least 2)")
    args = ap.parse_args()
    rule = Rule(args.trials, args.floor, args.eta, args.first_rung)
    rows = []
    for name, (setting, epochs) in se.SETTINGS.items():
        maximize = "data=diabetes" not in setting
        gaps: dict[str, list[float]] = {a: [] for a in ARMS}
        ratios: dict[str, list[float]] = {a: [] for a in ARMS}
        rng = random.Random(0)
        for seed in args.seeds:
            runs = curves(setting, epochs, seed, maximize)
            space, best = in_range(runs, setting), max(at(r, epochs) for r in runs)
            grid_epochs = sum(min(epochs, len(r[2])) for r in runs)
            for _ in range(DRAWS):
                for arm, (decide, draw) in ARMS.items():
                    value, trained = decide(draw(space, rng, rule.trials), epochs, rule)
                    gaps[arm].append(100 * (best - value) if maximize else 100 * (value - best) / best)
                    ratios[arm].append(grid_epochs / trained)
        unit = "pts" if maximize else "% RMSE"
        cells = [f"{statistics.mean(gaps[a]):.2f}, 1/{statistics.mean(ratios[a]):.1f}" for a in ARMS]
        rows.append([f"{name} ({unit})", *cells])
    print(f"gap, compute (mean of {DRAWS} draws x seeds {args.seeds}; {rule})")
    print(c.table(["setting", *ARMS], rows))


if __name__ == "__main__":
    main()
