"""A user's own model and data sets, as a user would write them, for `_target_` in the tests.

The model's parts are called `features` and `classifier` (not lr-sweep's backbone/head). Put this
folder on PYTHONPATH and name them: model._target_=user_parts.Net data._target_=user_parts.blobs.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset


class Net(nn.Module):
    """features -> classifier; `out` picks the output's form: a tensor, a tuple, or `.logits`."""

    def __init__(self, in_features: int = 8, num_classes: int = 3, width: int = 32, out: str = "tensor") -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(in_features, width), nn.ReLU())
        self.classifier = nn.Linear(width, num_classes)
        self.out = out

    def forward(self, x: torch.Tensor):
        logits = self.classifier(self.features(x))
        if self.out == "tuple":
            return logits, x
        if self.out == "logits":
            return SimpleNamespace(logits=logits)
        return logits


class Branchy(Net):
    """Data-dependent control flow (a branch on its own activations), which vmap cannot stack."""

    def forward(self, x: torch.Tensor):  # type: ignore[override]
        h = self.features(x)
        if h.sum() > 0:
            return self.classifier(h)
        return self.classifier(-h)


class DictNet(Net):
    """Takes its inputs as keywords, as transformers models do: model(**{"x": ..., "scale": ...})."""

    def forward(self, x: torch.Tensor, scale: torch.Tensor):  # type: ignore[override]
        return super().forward(x * scale[:, None])


def _blobs(n: int, d: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * 3
    y = torch.randint(0, k, (n,), generator=g)
    return centers[y] + torch.randn(n, d, generator=g), y


class Blobs(Dataset):
    """A map-style dataset that is not a TensorDataset: it goes through a DataLoader."""

    classes = ("a", "b", "c")

    def __init__(self, x: torch.Tensor, y: torch.Tensor, as_dict: bool = False) -> None:
        self.x, self.y, self.as_dict = x, y, as_dict

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        if self.as_dict:
            return {"x": self.x[i], "scale": torch.tensor(1.0)}, int(self.y[i])
        return self.x[i], int(self.y[i])


def blobs(n: int = 240, d: int = 8, seed: int = 0, as_dict: bool = False) -> tuple[Dataset, Dataset]:
    """(train, val): 3 well separated Gaussian blobs in d dimensions."""
    x, y = _blobs(n, d, 3, seed)
    cut = n * 3 // 4
    return Blobs(x[:cut], y[:cut], as_dict), Blobs(x[cut:], y[cut:], as_dict)


def tensor_blobs(n: int = 240, d: int = 8, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """The same blobs as TensorDatasets: lr-sweep batches them by indexing, on the device."""
    x, y = _blobs(n, d, 3, seed)
    cut = n * 3 // 4
    return TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:], y[cut:])


def only_one() -> Dataset:
    """Wrong: one dataset, not (train, val)."""
    return blobs()[0]


class Bare(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.zeros(3)


def bare_items() -> tuple[Dataset, Dataset]:
    """Wrong: items are tensors, not (input, target) pairs."""
    return Bare(), Bare()
