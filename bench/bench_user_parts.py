"""A user's own model and data for bench/search_efficiency.py, as a user would write them for
`model=custom model._target_=bench_user_parts.Net data=custom data._target_=bench_user_parts.blobs`.

Overlapping Gaussian blobs (5 classes in 16 dimensions, ~85% reachable accuracy), so the LR
matters; the model's parts are called `features` and `classifier` (not lr-sweep's backbone/head).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset


class Net(nn.Module):
    def __init__(self, in_features: int = 16, num_classes: int = 5, width: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def blobs(
    n: int = 2000, d: int = 16, k: int = 5, spread: float = 0.9, seed: int = 0
) -> tuple[TensorDataset, TensorDataset]:
    """(train, val), 3:1: k Gaussian blobs whose centres lie `spread` standard deviations apart per axis."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * spread
    y = torch.randint(0, k, (n,), generator=g)
    x = centers[y] + torch.randn(n, d, generator=g)
    cut = n * 3 // 4
    return TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:], y[cut:])
