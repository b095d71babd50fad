"""The LR report's findings, computed from a study's trials (no files, no matplotlib): the base-LR
key, the noise that decides ties, the LR band and the divergence boundary, the per-group and the
schedule verdicts. Each finding keeps the trial numbers behind it. `sweep.search.report` reads the
files around a study; `sweep.search.report_checks` adds the budget and the warnings."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from sweep.search import keys

PREFERRED_LR = ("optimizer.lr", "lr")
SCHEDULE_KEYS = ("schedule", "schedule.name")
LAST = 5  # epochs whose spread around their trend measures the noise, without a validation size
Z = 2.0  # ties: within Z standard errors of the difference of two trials' values


def lr_key(param_keys: Sequence[str]) -> str | None:
    """The searched key that is the base LR: optimizer.lr, lr, else any `*.lr` (then `*lr`)."""
    found = list(dict.fromkeys(param_keys))
    for k in PREFERRED_LR:
        if k in found:
            return k
    ends = sorted(k for k in found if k.endswith(".lr")) or sorted(
        k for k in found if k.lower().endswith(("lr", "learning_rate")) and "mult" not in k
    )
    return ends[0] if ends else None


def multiplier_keys(param_keys: Sequence[str]) -> list[str]:
    """Searched keys that set one group's LR relative to the base: `*_mult`, layer decay."""
    out = []
    for k in dict.fromkeys(param_keys):
        last = k.rsplit(".", 1)[-1]
        if "mult" in last or last in ("decay", "layer_decay", "lr_decay"):
            out.append(k)
    return out


@dataclass
class Point:
    """One trial as the report sees it; `value` is a pruned trial's last reported value."""

    number: int
    state: str
    params: dict[str, Any]
    lr: float | None
    value: float | None
    reason: str = ""
    epochs: int = 0
    curve: list[tuple[int, float]] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return self.state == "FAIL" and self.reason.startswith(("diverged", "non-finite"))

    @property
    def complete(self) -> bool:
        return self.state == "COMPLETE" and self.value is not None and math.isfinite(self.value)


def shown_state(t: FrozenTrial) -> str:
    """FAIL for a diverged trial (the study may hold it as PRUNED so the sampler learns), else the state."""
    diverged = bool(t.user_attrs.get(getattr(keys, "DIVERGED", "diverged")))
    return "FAIL" if t.state == TrialState.PRUNED and diverged else t.state.name


def to_point(t: FrozenTrial, key: str | None) -> Point:
    curve = sorted((int(s), float(v)) for s, v in t.intermediate_values.items() if v is not None)
    outcome = t.user_attrs.get(keys.OUTCOME) or {}
    state = shown_state(t)
    value = t.value if state == "COMPLETE" else (curve[-1][1] if curve and state == "PRUNED" else None)
    lr = t.params.get(key) if key else None
    epochs = int(outcome.get("epochs") or 0) if isinstance(outcome, dict) else 0
    return Point(
        t.number,
        state,
        dict(t.params),
        None if lr is None else float(lr),
        value,
        keys.failure_reason(t.user_attrs),
        max(epochs, len(curve)),
        curve,
    )


def study_lr_key(study_attrs: dict[str, Any], trials: Sequence[FrozenTrial]) -> str | None:
    """The study's own `lr_key` attribute where its trials searched it, else `lr_key` of their keys."""
    names = [k for t in trials for k in t.params]
    recorded = study_attrs.get(getattr(keys, "LR_KEY", "lr_key"))
    return recorded if recorded in names else lr_key(names)


def better(a: float, b: float, maximize: bool) -> bool:
    return a > b if maximize else a < b


def ranked(points: Sequence[Point], maximize: bool) -> list[Point]:
    done = [p for p in points if p.complete]
    return sorted(done, key=lambda p: (-p.value if maximize else p.value, p.number))  # type: ignore[operator]


@dataclass
class Noise:
    """The validation noise of one trial's value (`se`), the tie margin and how it was measured."""

    se: float
    how: str

    @property
    def tie(self) -> float:
        return Z * math.sqrt(2.0) * self.se


def trend_spread(values: Sequence[float]) -> float:
    """The standard deviation of `values` around their least-squares line (a curve still improving
    is not noise)."""
    n = len(values)
    xs = range(n)
    mx, my = (n - 1) / 2, statistics.fmean(values)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, values)) / sxx
    residuals = [y - (my + slope * (x - mx)) for x, y in zip(xs, values)]
    return math.sqrt(sum(r * r for r in residuals) / (n - 2))


def noise(points: Sequence[Point], best: Point | None, metric: str, n_val: int | None) -> Noise:
    """Binomial standard error for an accuracy with a known validation size, else the median spread
    of the complete trials' last (up to LAST) epochs around their trend line."""
    if best is not None and n_val and "acc" in metric.lower() and 0.0 <= float(best.value) <= 1.0:  # type: ignore[arg-type]
        p = (float(best.value) * n_val + 1.0) / (n_val + 2.0)  # type: ignore[arg-type]  # 1.0 is never exact
        se = math.sqrt(p * (1.0 - p) / n_val)
        return Noise(
            se,
            f"binomial standard error of {metric}: sqrt(p(1-p)/n) with p = {float(best.value):.4g} "  # type: ignore[arg-type]
            f"(the best, Laplace-smoothed) and n = {n_val} validation samples, SE = {se:.3g}",
        )
    spreads = [trend_spread([v for _, v in p.curve[-LAST:]]) for p in points if p.complete and len(p.curve) >= 3]
    if spreads:
        se = statistics.median(spreads)
        return Noise(
            se,
            f"median over {len(spreads)} complete trials of the spread (standard deviation) of their "
            f"last {LAST} epochs' {metric} around a straight line, SE = {se:.3g}",
        )
    return Noise(0.0, "unknown (no validation size and fewer than 3 epochs per trial): only equal values tie")


def ties(points: Sequence[Point], best: Point, nz: Noise, maximize: bool) -> list[Point]:
    """Complete trials within the tie margin of the best (the best included), best first."""
    return [p for p in ranked(points, maximize) if abs(float(p.value) - float(best.value)) <= nz.tie]  # type: ignore[arg-type]


@dataclass
class Band:
    """Base LRs tied with the best, and the divergence boundary around it."""

    low: float | None
    high: float | None
    numbers: list[int]
    lowest_diverged: Point | None
    highest_ok: Point | None
    best_lr: float | None

    @property
    def decades(self) -> float | None:
        return None if self.low is None or self.high is None else math.log10(self.high / self.low)

    @property
    def headroom(self) -> float | None:
        """Decades from the best LR to the lowest LR that diverged (None: nothing diverged)."""
        if self.best_lr is None or self.lowest_diverged is None or self.lowest_diverged.lr is None:
            return None
        return math.log10(self.lowest_diverged.lr / self.best_lr)


def _lr(p: Point) -> float:
    """The base LR of a point already filtered to have one."""
    assert p.lr is not None
    return p.lr


def band(points: Sequence[Point], tied: Sequence[Point], best: Point | None) -> Band:
    lrs = [_lr(p) for p in tied if p.lr is not None]
    diverged = [p for p in points if p.diverged and p.lr is not None]
    ok = [p for p in points if p.state in ("COMPLETE", "PRUNED") and p.lr is not None]
    return Band(
        min(lrs, default=None),
        max(lrs, default=None),
        sorted(p.number for p in tied if p.lr is not None),
        min(diverged, key=_lr, default=None),
        max(ok, key=_lr, default=None),
        None if best is None else best.lr,
    )


def is_one_lr(p: Point, mults: Sequence[str]) -> bool:
    return all(abs(float(p.params.get(k, 1.0)) - 1.0) < 1e-9 for k in mults)


@dataclass
class Verdict:
    """One comparison: a sentence, and the trials behind it."""

    text: str
    numbers: list[int]


def group_verdict(points: Sequence[Point], mults: Sequence[str], nz: Noise, maximize: bool) -> Verdict:
    """Did a head multiplier or layer decay beat one LR for all groups, by how much, against the noise?"""
    if not mults:
        return Verdict("No multiplier or layer decay was searched: the groups' LRs kept their fixed ratio.", [])
    done = ranked(points, maximize)
    one = [p for p in done if is_one_lr(p, mults)]
    multi = [p for p in done if not is_one_lr(p, mults)]
    if not one:
        return Verdict(
            f"No one-LR trial ({', '.join(f'{k}=1' for k in mults)}) completed, so per-group LRs are "
            "not compared with one LR (the presets enqueue one: hydra.sweeper.enqueue).",
            [],
        )
    if not multi:
        return Verdict(f"Only one-LR trials completed (best #{one[0].number}).", [one[0].number])
    a, b = multi[0], one[0]
    diff = (float(a.value) - float(b.value)) * (1 if maximize else -1)  # type: ignore[arg-type]
    if diff > nz.tie:
        word = "beat one LR"
    elif diff < -nz.tie:
        word = "lost to one LR"
    else:
        word = "tied with one LR (within the noise: prefer one LR, it is simpler)"
    setting = ", ".join(f"{k}={a.params[k]:.3g}" for k in mults if k in a.params)
    return Verdict(
        f"Per-group LRs {word}: the best per-group trial #{a.number} ({setting}) reached {a.value:.4g}, "
        f"the best one-LR trial #{b.number} {b.value:.4g}; difference {diff:+.3g} against a tie margin "
        f"of {nz.tie:.3g}.",
        [a.number, b.number],
    )


def schedule_verdict(points: Sequence[Point], maximize: bool) -> Verdict | None:
    """The best complete trial of each searched schedule kind; None when no kind was searched."""
    key = next((k for k in SCHEDULE_KEYS if any(k in p.params for p in points)), None)
    if key is None:
        return None
    best: dict[str, Point] = {}
    for p in ranked(points, maximize):
        best.setdefault(str(p.params.get(key)), p)
    if not best:
        return Verdict(f"{key} was searched, but no trial completed.", [])
    parts = [f"{kind} #{p.number} {p.value:.4g}" for kind, p in best.items()]
    return Verdict(f"Best of each {key}: " + "; ".join(parts) + ".", [p.number for p in best.values()])
