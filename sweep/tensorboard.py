"""What each run writes to TensorBoard, and under which tags.

Tags: `lr/<group>` against the global update count, `train/loss`, `val/loss`, `val/acc` each
epoch, `best/val_acc` at the end, and the run's hyperparameters in the HPARAMS tab, all in the
run's own directory (torch's `add_hparams` would make a timestamped sub-folder per call and split a
trial in two).

LR curves are written as the knots of the curve each update really used: at each epoch's end the
epoch's per-update LRs are reduced to the fewest points whose straight-line joins stay within
`tolerance` (a fraction of the largest LR in the epoch) of every update's value. Piecewise-constant
and linear curves come out exact in 2-4 points an epoch; a cosine needs a few more. Writing one
point per update would cost 60-90 us per point against a 0.6 ms update.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summaries


def knots(values: Sequence[float], tolerance: float) -> list[int]:
    """Indices of the points to keep so that linear interpolation between them is within tolerance."""
    n = len(values)
    if n <= 2:
        return list(range(n))
    tol = tolerance * max(max(abs(v) for v in values), 1e-300)
    keep, anchor = [0], 0
    for end in range(2, n):
        va, ve = values[anchor], values[end]
        span = end - anchor
        if any(abs(va + (ve - va) * (i - anchor) / span - values[i]) > tol for i in range(anchor + 1, end)):
            anchor = end - 1
            keep.append(anchor)
    keep.append(n - 1)
    return keep


def _hparam_value(v: Any) -> Any:
    return v if isinstance(v, (bool, int, float, str)) else str(v)


class RunWriter:
    """One trial's TensorBoard run."""

    def __init__(self, log_dir: str, lr_tolerance: float = 1e-3) -> None:
        self.writer = SummaryWriter(log_dir, max_queue=1000, flush_secs=30)
        self.lr_tolerance = lr_tolerance

    def lr_curves(self, first_update: int, curves: Mapping[str, Sequence[float]]) -> None:
        """Write `lr/<group>` for an epoch whose first update is `first_update`."""
        for name, values in curves.items():
            for i in knots(values, self.lr_tolerance):
                self.writer.add_scalar(f"lr/{name}", values[i], first_update + i)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, v in values.items():
            if v is not None and math.isfinite(v):
                self.writer.add_scalar(tag, v, step)

    def hparams(self, hparams: Mapping[str, Any], metric_tags: Sequence[str]) -> None:
        """HPARAMS tab entry: the run's hyperparameters, compared on `metric_tags`."""
        clean = {k: _hparam_value(v) for k, v in hparams.items()}
        exp, ssi, sei = hparams_summaries(clean, {t: 0.0 for t in metric_tags})
        for summary in (exp, ssi, sei):
            self.writer.file_writer.add_summary(summary)

    def close(self) -> None:
        self.writer.close()


def write_experiment(log_dir: str, hparams: Mapping[str, Any], metric_tags: Sequence[str]) -> None:
    """The experiment config at a sweep's root: the HPARAMS columns shared by every trial."""
    clean = {k: _hparam_value(v) for k, v in hparams.items()}
    exp, _, _ = hparams_summaries(clean, {t: 0.0 for t in metric_tags})
    with SummaryWriter(log_dir) as writer:
        writer.file_writer.add_summary(exp)
