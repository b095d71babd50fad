"""The shipped data sets: scikit-learn's handwritten digits (no download) and a synthetic set.

Small sets live on the training device and are batched by indexing, which costs less than a
DataLoader over the same tensors; sets larger than `data.on_device_max_mb` stay in host memory and
stream one batch at a time.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from sweep.errors import check

DATASETS = ("digits", "synthetic")


@dataclass
class DataSet:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Read the CSV that scikit-learn ships, without importing scikit-learn (3 s cold)."""
    spec = importlib.util.find_spec("sklearn")
    check(spec is not None and spec.submodule_search_locations, "data", "digits",
          "a data set whose package is installed: pip install scikit-learn")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return table[:, :-1] / 16.0, table[:, -1].astype(np.int64)


def _synthetic_arrays(cfg: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: quick to learn, made from the seed, for fast tests."""
    rng = np.random.default_rng(cfg.get("seed", 0))
    n, d, k = cfg["n_samples"], cfg["n_features"], cfg["n_classes"]
    centers = rng.normal(0.0, 1.0, size=(k, d)).astype(np.float32)
    y = rng.integers(0, k, size=n)
    x = centers[y] + rng.normal(0.0, cfg.get("noise", 1.0), size=(n, d)).astype(np.float32)
    return x, y.astype(np.int64)


def _split(x: np.ndarray, y: np.ndarray, cfg: Mapping[str, Any]) -> DataSet:
    classes = cfg.get("classes")
    if classes:
        keep = np.isin(y, list(classes))
        x, y = x[keep], np.searchsorted(np.array(sorted(classes)), y[keep])
    rng = np.random.default_rng(cfg.get("seed", 0))
    order = rng.permutation(len(y))
    n_val = int(round(len(y) * cfg.get("val_fraction", 0.2)))
    val, train = order[:n_val], order[n_val:]
    per_class = cfg.get("train_per_class")
    if per_class:
        train = np.concatenate([train[y[train] == c][:per_class] for c in np.unique(y)])
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return DataSet(t(x[train]), t(y[train]), t(x[val]), t(y[val]), int(y.max()) + 1)


def load(cfg: Mapping[str, Any]) -> DataSet:
    name = cfg.get("name")
    check(name in DATASETS, "data", name, f"one of {', '.join(DATASETS)}")
    vf = cfg.get("val_fraction", 0.2)
    check(0 < vf < 1, "data.val_fraction", vf, "a fraction in (0, 1)")
    classes = cfg.get("classes")
    if name == "digits" and classes:
        check(len(classes) >= 2 and set(classes) <= set(range(10)), "data.classes", list(classes),
              "a list of at least two digits in 0-9")
    x, y = _digits_arrays() if name == "digits" else _synthetic_arrays(cfg)
    return _split(x, y, cfg)


class Batches:
    """Mini-batches of (x, y) on `device`; reshuffled each epoch by `generator` when `shuffle`."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device,
                 shuffle: bool, on_device_max_mb: float, generator: torch.Generator | None = None):
        self.on_device = (x.numel() * x.element_size()) / 2**20 <= on_device_max_mb
        self.x, self.y = (x.to(device), y.to(device)) if self.on_device else (x, y)
        self.device, self.batch_size, self.shuffle, self.generator = device, batch_size, shuffle, generator

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        if order is not None and self.on_device:
            order = order.to(self.device)
        for i in range(0, n, self.batch_size):
            if order is None:
                xb, yb = self.x[i:i + self.batch_size], self.y[i:i + self.batch_size]
            else:
                idx = order[i:i + self.batch_size]
                xb, yb = self.x[idx], self.y[idx]
            if not self.on_device:
                xb = xb.to(self.device, non_blocking=True)
                yb = yb.to(self.device, non_blocking=True)
            yield xb, yb
