"""The LR report's budget and warnings: what the sweep spent, and what to fix, each warning with
the command that fixes it."""

from __future__ import annotations

import math
import shlex
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

from sweep.search.report_analysis import Point

MIN_COMPLETE = 5  # fewer complete trials than this cannot tell a band from luck
EDGE = 0.1  # "on the edge": within this share of the range (in log space for log ranges)


@dataclass
class Warning_:
    text: str
    command: str
    numbers: list[int]


def reason_kind(reason: str) -> str:
    """ "diverged at epoch 1/3, update 5/7: loss=nan" -> "diverged"."""
    head = reason.split(":", 1)[0].split(" at ", 1)[0].split(" after ", 1)[0].strip()
    return head or "no reason recorded"


def budget(points: Sequence[Point], trials: Sequence[FrozenTrial]) -> dict[str, Any]:
    """Trials by state, epochs trained, epochs pruning saved, failures by kind, wall time."""
    full = max((p.epochs for p in points if p.state == "COMPLETE"), default=0)
    pruned = [p for p in points if p.state == "PRUNED"]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    durations = [t.duration.total_seconds() for t in trials if t.duration]
    fails = Counter(reason_kind(p.reason) for p in points if p.state == "FAIL")
    return {
        "states": dict(Counter(p.state for p in points)),
        "epochs": sum(p.epochs for p in points),
        "full_epochs": full,
        "saved": sum(max(0, full - p.epochs) for p in pruned),
        "pruned": [p.number for p in pruned],
        "failures": {k: [p.number for p in points if p.state == "FAIL" and reason_kind(p.reason) == k] for k in fails},
        "wall_s": (max(ends) - min(starts)).total_seconds() if starts and ends else None,
        "trial_s": sum(durations),
    }


def with_override(command: str, key: str, text: str, sweep_dir: str | None = None, suffix: str = "") -> str:
    """The sweep's command with `key=text` in place of the key's own override; with `suffix`, in a
    new sweep dir `<sweep dir><suffix>` (a new study)."""
    bare = key.lstrip("+~")
    drop = (f"{bare}=", "hydra.sweep.dir=") if suffix and sweep_dir else (f"{bare}=",)
    parts = [p for p in shlex.split(command) if not p.lstrip("+~").startswith(drop)]
    parts.append(f"{key}={text}")
    if suffix and sweep_dir:
        parts.append(f"hydra.sweep.dir={sweep_dir.rstrip('/')}{suffix}")
    return shlex.join(parts)


def _widened(d: FloatDistribution | IntDistribution, side: str) -> str:
    if d.log:
        low, high = (d.low / 10, d.high) if side == "low" else (d.low, d.high * 10)
        return f"tag(log, interval({low:g}, {high:g}))"
    span = d.high - d.low
    low, high = (d.low - span / 2, d.high) if side == "low" else (d.low, d.high + span / 2)
    return f"interval({low:g}, {high:g})"


def edge_of(value: float, d: BaseDistribution) -> str | None:
    """ "low"/"high" when `value` lies within EDGE of that end of the range `d`, else None."""
    if not isinstance(d, (FloatDistribution, IntDistribution)) or d.high <= d.low:
        return None
    if d.log and value > 0 and d.low > 0:
        where = (math.log(value) - math.log(d.low)) / (math.log(d.high) - math.log(d.low))
    else:
        where = (value - d.low) / (d.high - d.low)
    return "low" if where <= EDGE else "high" if where >= 1 - EDGE else None


def edge_warnings(best: FrozenTrial, command: str, sweep_dir: str | None, mults: Sequence[str]) -> list[Warning_]:
    out = []
    for key, d in best.distributions.items():
        if not isinstance(d, FloatDistribution):  # a choice, or an int (epochs, steps) has natural ends
            continue
        side = edge_of(float(best.params[key]), d)
        if side is None or (key in mults and (d.low if side == "low" else d.high) == 1):
            continue  # a multiplier or decay at its bound 1 is one LR: the group verdict says so
        out.append(
            Warning_(
                f"The best trial #{best.number} has {key}={best.params[key]:.4g}, on the {side} edge "
                f"of its range [{d.low:g}, {d.high:g}] (within {EDGE:.0%}): the optimum may lie "
                "outside it. Widen the range:",
                with_override(command, key, _widened(d, side), sweep_dir, "-wider"),
                [best.number],
            )
        )
    return out


LATER = {False: "hydra.sweeper.n_warmup_steps", True: "+hydra.sweeper.pruner_options.min_resource"}


def horizon_warning(
    points: Sequence[Point], maximize: bool, command: str, sweep_dir: str | None, pruner: str = "median"
) -> Warning_ | None:
    """A pruned trial that was improving faster at its last epoch than every trial that went on; the
    fix moves the first pruning point (successive halving's first rung, else the warm-up epochs)."""
    sign = 1 if maximize else -1

    def gain(p: Point, upto: int) -> float | None:
        vals = [v for s, v in p.curve if s <= upto]
        return sign * (vals[-1] - vals[-2]) if len(vals) >= 2 else None

    for p in [p for p in points if p.state == "PRUNED" and len(p.curve) >= 2]:
        step = p.curve[-1][0]
        mine = gain(p, step)
        others = [g for q in points if q.complete and (g := gain(q, step)) is not None]
        if mine and mine > 0 and others and mine > max(others):
            return Warning_(
                f"Trial #{p.number} (LR {p.lr:.3g}) was pruned after {len(p.curve)} epochs while improving "
                f"fastest ({mine:+.3g} in its last epoch; the complete trials at most {max(others):+.3g}): "
                "pruning on early epochs favours small LRs (short-horizon bias). Prune later, or not:",
                with_override(
                    command, LATER[pruner == "successive_halving"], str(len(p.curve) * 2), sweep_dir, "-later"
                )
                + "   # or hydra.sweeper.pruner=none",
                [p.number],
            )
    return None


def warnings(
    points: Sequence[Point],
    best: FrozenTrial | None,
    maximize: bool,
    command: str,
    sweep_dir: str | None,
    mults: Sequence[str],
    changed: Sequence[str],
    pruner: str = "median",
) -> list[Warning_]:
    """Every warning that applies, each with the command that fixes it (`pruner`: the study's)."""
    out: list[Warning_] = edge_warnings(best, command, sweep_dir, mults) if best is not None else []
    n_done = sum(p.complete for p in points)
    if n_done < MIN_COMPLETE:
        n = sum(p.state in ("COMPLETE", "PRUNED") for p in points)
        out.append(
            Warning_(
                f"Only {n_done} complete trials: too few to tell a band or a tie from luck. Run more "
                "(the same command resumes the study):",
                with_override(command, "hydra.sweeper.n_trials", str(n + 10)),
                [],
            )
        )
    if (h := horizon_warning(points, maximize, command, sweep_dir, pruner)) is not None:
        out.append(h)
    if changed:
        out.append(
            Warning_(
                "This study mixes trials run with different fixed settings: "
                + "; ".join(changed)
                + ". Compare like with like: a new study (its own sweep dir) for the new settings:",
                with_override(command, "hydra.sweeper.n_trials", "20", sweep_dir, "-new"),
                [],
            )
        )
    return out
