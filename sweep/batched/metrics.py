"""A task's validation metrics for K members at once, as sums that vmap and add up over batches.

Mirrors `sweep.train.task.Task.evaluate` step for step (the same casts and reductions, and its own
`Task.val_metrics` for the last step), so a member's `val/loss`, `val/acc` or `val/rmse` equal those
of the same trial evaluated alone.
"""

from __future__ import annotations

from typing import Any

import torch

from sweep.train.task import Task


def val_sums(task: Task, output: Any, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """One member's loss sum and score sum over a batch (traced under vmap)."""
    return task.val_sums(output, target)


def add_sums(total: dict[str, torch.Tensor] | None, sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return dict(sums) if total is None else {k: total[k] + v for k, v in sums.items()}


def val_metrics(task: Task, total: dict[str, torch.Tensor] | None, count: int) -> list[dict[str, float]]:
    """Per member, the metrics Task.evaluate reports; one host sync."""
    if not total or not count:
        return []
    loss, score = torch.stack([total["loss"].float(), total["score"].float()]).tolist()
    return [task.val_metrics(lo, sc, count) for lo, sc in zip(loss, score)]
