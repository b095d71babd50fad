"""A search that notices its best on an edge of the base LR's range and widens the range there.

A log-scale range that is too narrow shows itself: the best trial sits at one end. With Adam on
scikit-learn's diabetes set every seed's best sat at the lower edge of an SGD-shaped range (0.001)
while the grid's best was 1e-4-3e-4. `hydra.sweeper.widen_edges=N` (the presets: 2; 0 turns it
off) lets the sweeper move that edge out by a decade, up to N times, within the same `n_trials`:
once at least `MIN_COMPLETE` trials completed and the best one's LR lies in the outer
`EDGE_SHARE` of the range (in log units), the range grows by a decade on that side for the trials
still to come, and one trial is enqueued half a decade past the old edge with the best trial's
other values, so the new region is tried at once rather than when TPE gets round to it. The
widened range is kept in the study (`keys.LR_WIDENED`), so a resumed sweep or a second worker
samples the same one. When it may not widen any more it says so once, with the override that
widens it by hand.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from sweep.search import keys

log = logging.getLogger(__name__)

MIN_COMPLETE = 3  # complete trials before an edge is judged
EDGE_SHARE = 0.1  # the outer tenth of the log range, at either end, is "on the edge"
DECADE = 10.0


def edge_side(value: float, low: float, high: float) -> str | None:
    """ "low" or "high" when `value` lies in the outer `EDGE_SHARE` of [low, high] (log scale), else None."""
    width = math.log(high / low)
    if math.log(value / low) <= EDGE_SHARE * width:
        return "low"
    if math.log(high / value) <= EDGE_SHARE * width:
        return "high"
    return None


def _value(t: optuna.trial.FrozenTrial) -> float:
    """The value of a trial known to have one."""
    assert t.value is not None
    return t.value


def _best(study: optuna.Study, key: str, maximize: bool) -> tuple[optuna.trial.FrozenTrial | None, int]:
    """(the best complete trial that has `key`, how many complete trials have it)."""
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if key in t.params and t.value is not None and math.isfinite(t.value)
    ]
    if not done:
        return None, 0
    pick = max if maximize else min
    return pick(done, key=_value), len(done)


def follow(study: optuna.Study, space: dict[str, Any], key: str, max_widenings: int, maximize: bool) -> None:
    """Apply the study's widened range of `key` to `space`, and widen it again when the best trial
    sits on an edge (at most `max_widenings` times per study). Single-objective studies only."""
    d = space.get(key)
    if not isinstance(d, FloatDistribution) or not d.log or len(study.directions) > 1:
        return
    stored = study.user_attrs.get(keys.LR_WIDENED) or {}
    if stored:
        d = space[key] = FloatDistribution(float(stored["low"]), float(stored["high"]), log=True)
    best, n_complete = _best(study, key, maximize)
    if best is None or n_complete < MIN_COMPLETE:
        return
    value = float(best.params[key])
    side = edge_side(value, d.low, d.high)
    if side is None:
        return
    times = int(stored.get("times", 0))
    if times >= max_widenings:
        _say_once(study, key, side, value, d, max_widenings)
        return
    low, high = (d.low / DECADE, d.high) if side == "low" else (d.low, d.high * DECADE)
    study.set_user_attr(keys.LR_WIDENED, {"low": low, "high": high, "times": times + 1})
    space[key] = FloatDistribution(low, high, log=True)
    probe = d.low / math.sqrt(DECADE) if side == "low" else d.high * math.sqrt(DECADE)
    study.enqueue_trial({**{k: v for k, v in best.params.items() if k in space}, key: probe})
    log.info(
        "best %s=%.3g (trial %d) on the %s edge of [%.3g, %.3g]: searching [%.3g, %.3g] from now on, "
        "next trial at %.3g (hydra.sweeper.widen_edges=0 turns this off)",
        key,
        value,
        best.number,
        side,
        d.low,
        d.high,
        low,
        high,
        probe,
    )


def _say_once(study: optuna.Study, key: str, side: str, value: float, d: FloatDistribution, max_widenings: int) -> None:
    """The warning, once per study, with the override that widens the range by hand."""
    if study.user_attrs.get(keys.LR_EDGE_WARNED):
        return
    study.set_user_attr(keys.LR_EDGE_WARNED, True)
    low, high = (d.low / DECADE, d.high) if side == "low" else (d.low, d.high * DECADE)
    log.warning(
        "best %s=%.3g sits on the %s edge of [%.3g, %.3g], widened %d times already "
        "(hydra.sweeper.widen_edges=%d); to search further: '%s=tag(log, interval(%.3g, %.3g))' "
        "or hydra.sweeper.widen_edges=%d",
        key,
        value,
        side,
        d.low,
        d.high,
        max_widenings,
        max_widenings,
        key,
        low,
        high,
        max_widenings + 1,
    )
