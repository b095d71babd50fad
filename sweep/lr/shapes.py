"""Each schedule's shape: `shape(u, n, **params) -> factor`, the LR at update `u` of `n` as a fraction
of the group's peak. Pure functions, no state (plateau's reductions live in `Schedule`); which
parameters each takes and how they are checked: `sweep.lr.schedule`."""

from __future__ import annotations

import bisect
import math
from typing import Any


def constant(u: int, n: int) -> float:
    return 1.0


def step(u: int, n: int, *, step_size: int, gamma: float) -> float:
    return gamma ** (u // step_size)


def multistep(u: int, n: int, *, milestones: list[int], gamma: float) -> float:
    return gamma ** bisect.bisect_right(milestones, u)


def exponential(u: int, n: int, *, gamma: float) -> float:
    return gamma**u


def piecewise(u: int, n: int, *, pieces: list[list[float]], base_lr: float) -> float:
    end: float = 0
    for n_epochs, lr in pieces:
        end += n_epochs
        if u < end:
            return lr / base_lr
    return pieces[-1][1] / base_lr


def cosine(u: int, n: int, *, floor: float) -> float:
    progress = min(u, n) / max(n, 1)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def poly(u: int, n: int, *, power: float, floor: float) -> float:
    return floor + (1.0 - floor) * (1.0 - min(u, n) / max(n, 1)) ** power


def linear(u: int, n: int, *, floor: float) -> float:
    return poly(u, n, power=1.0, floor=floor)


def _anneal(start: float, end: float, pct: float, kind: str) -> float:
    if kind == "linear":
        return start + (end - start) * pct
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


def onecycle(
    u: int,
    n: int,
    *,
    pct_start: float,
    div_factor: float,
    final_div_factor: float,
    anneal: str,
    three_phase: bool,
) -> float:
    initial = 1.0 / div_factor
    lowest = initial / final_div_factor
    rise_end = pct_start * n - 1
    if three_phase:
        phases = [(rise_end, initial, 1.0), (2 * pct_start * n - 2, 1.0, initial), (n - 1, initial, lowest)]
    else:
        phases = [(rise_end, initial, 1.0), (n - 1, 1.0, lowest)]
    u = min(u, n - 1)
    start = 0.0
    for i, (end, lr_from, lr_to) in enumerate(phases):
        if u <= end or i == len(phases) - 1:
            return _anneal(lr_from, lr_to, (u - start) / (end - start), anneal)
        start = end
    raise AssertionError("unreachable")


def plateau(u: int, n: int, **_: Any) -> float:
    return 1.0  # the reduction is state, applied by Schedule.scale
