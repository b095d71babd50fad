"""The range test's suggestion: which point of the smoothed loss curve to pick as the base LR, and
the search interval around it.

The suggestion is the steepest fall of the smoothed loss against log LR (`lr_find.rule=steepest`,
Lightning's rule), chosen by measurement: `bench/lr_find_rules.py` trains the default job at 8
base LRs (1e-3 ... 3.2, half-decade steps, 2 seeds, 20 epochs) on digits with the MLP and the CNN
and on the synthetic set, and compares each rule's suggestion with the best of those real runs.
With the default settings `steepest` landed within half a decade of the best base LR in 6 of 6
cases (digits MLP 0.056 vs best 0.1; CNN 0.023-0.032 vs 0.032; synthetic 0.0046 vs 0.0032-0.01);
`minimum` (the LR of the lowest smoothed loss / 10) in 2 of 6 (on the synthetic set the loss keeps
falling almost to divergence, so it lands 1-2 decades too high); fastai's `valley` in 1 of 6 (the
long flat start of these curves makes its "longest fall" start at lr_find.start_lr, 1.5-2 decades
too low). The suggestion depends on the settings together (the smoothing lags by about
1/(1 - smoothing) updates, a fixed share of the sweep's decades), and they were measured together.

The recommended search interval runs from a decade below the suggestion to the LR of the lowest
smoothed loss (the edge beyond which training gets worse), kept between sqrt(10) and 10 x the
suggestion (on the synthetic set the loss falls until 8, far past where 20-epoch runs diverge);
it held the best base LR in 6 of 6 cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sweep.errors import check

RULES = ("valley", "steepest", "minimum")


def valley(lrs: Sequence[float], smoothed: Sequence[float]) -> int:
    """fastai's default: the longest run of falling loss (a longest decreasing subsequence), and the
    point halfway along it (in log LR: the updates are log-spaced)."""
    n = len(smoothed)
    length, first = [1] * n, list(range(n))
    for i in range(n):
        for j in range(i):
            if smoothed[j] > smoothed[i] and length[j] + 1 > length[i]:
                length[i], first[i] = length[j] + 1, first[j]
    end = max(range(n), key=lambda i: (length[i], -i))
    return first[end] + (end - first[end]) // 2


def steepest(lrs: Sequence[float], smoothed: Sequence[float]) -> int:
    """Lightning's suggestion: the steepest fall of the smoothed loss against log LR (skipping the
    first 10 points, where the moving average is still settling)."""
    x, y = np.log10(np.asarray(lrs)), np.asarray(smoothed)
    skip = min(10, max(len(y) - 3, 0))
    slope = np.gradient(y[skip:], x[skip:]) if len(y) - skip >= 2 else np.zeros(1)
    return skip + int(np.argmin(slope))


def minimum(lrs: Sequence[float], smoothed: Sequence[float]) -> int:
    """fastai's `minimum`: the lowest smoothed loss (the caller divides its LR by 10)."""
    return int(np.argmin(smoothed))


def suggest(lrs: Sequence[float], smoothed: Sequence[float], rule: str) -> tuple[float, tuple[float, float]]:
    """(suggested base LR, recommended interval) from the sweep's LRs and smoothed losses."""
    check(
        len(lrs) >= 3,
        "lr_find",
        f"{len(lrs)} finite updates",
        "at least 3 updates before the loss diverged: lower lr_find.start_lr",
    )
    lrs = [float(v) for v in lrs]
    at_min = lrs[minimum(lrs, smoothed)]
    if rule == "minimum":
        lr = at_min / 10
    else:
        lr = lrs[{"valley": valley, "steepest": steepest}[rule](lrs, smoothed)]
    high = min(max(at_min, lr * math.sqrt(10)), lr * 10)  # holds the suggestion; at most 2 decades wide
    return lr, (lr / 10, high)
