"""Models for the multi-device tests, imported by `model._target_` in every rank's process."""

from __future__ import annotations

import os

import torch
from torch import nn


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


class Mlp(nn.Module):
    """A small MLP with a `head` child (the backbone_head groups find it)."""

    def __init__(self, in_features: int = 16, num_classes: int = 4, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, width), nn.ReLU())
        self.head = nn.Linear(width, num_classes)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.head(self.body(x))


class RaisesOnRankOne(Mlp):
    """Raises on rank 1 at its 5th training forward (rank 0 and one-process runs train on)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and _rank() == 1 and self.calls >= 4:
            raise ValueError("boom on rank 1")
        return super().forward(x)


class DiesOnRankOne(Mlp):
    """Rank 1's process ends at once (no exception, no word) at its 5th training forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and _rank() == 1 and self.calls >= 4:
            os._exit(7)
        return super().forward(x)


class DivergesOnRankOne(Mlp):
    """A NaN output on rank 1 only, from its 5th training forward: the loss diverges there."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.training and _rank() == 1 and self.calls >= 5:
            out = out * float("nan")
        return out
