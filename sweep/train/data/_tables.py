"""The shipped data sets as arrays (scikit-learn's bundled tables, read from its package data
without importing scikit-learn, whose import takes seconds; Gaussian blobs made from a seed), and
the train/validation split of any arrays."""

from __future__ import annotations

import functools
import gzip
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sweep.errors import ConfigError
from sweep.train.data._kinds import CLASSIFICATION, TensorData

SKLEARN_TABLES = ("wine", "breast_cancer", "iris")  # classification tables in scikit-learn's format


def _sklearn_file(name: str) -> Path:
    spec = importlib.util.find_spec("sklearn")
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise ConfigError("data", name, "a data set whose package is installed: pip install scikit-learn")
    return Path(list(locations)[0]) / "datasets" / "data" / name


@functools.cache  # the shipped files: parsed once per process, not per trial
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Scikit-learn's 8x8 digits, pixels scaled to [0, 1]."""
    with gzip.open(_sklearn_file("digits.csv.gz"), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return table[:, :-1] / 16.0, table[:, -1].astype(np.int64)


@functools.cache  # the shipped files: parsed once per process, not per trial
def sklearn_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    """wine, breast_cancer, iris: a header line `n_samples,n_features,class names...`, then rows
    of features and the class index."""
    path = _sklearn_file("wine_data.csv" if name == "wine" else f"{name}.csv")
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    return table[:, :-1].astype(np.float32), table[:, -1].astype(np.int64)


@functools.cache  # the shipped files: parsed once per process, not per trial
def diabetes_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Scikit-learn's diabetes regression set, unscaled; the target is in its own units."""
    x = np.loadtxt(_sklearn_file("diabetes_data_raw.csv.gz"), dtype=np.float32)
    y = np.loadtxt(_sklearn_file("diabetes_target.csv.gz"), dtype=np.float32)
    return x, y


def synthetic_arrays(cfg: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: quick to learn, made from the seed, for fast tests."""
    rng = np.random.default_rng(cfg.get("seed", 0))
    n, d, k = cfg["n_samples"], cfg["n_features"], cfg["n_classes"]
    centers = rng.normal(0.0, 1.0, size=(k, d)).astype(np.float32)
    y = rng.integers(0, k, size=n)
    x = centers[y] + rng.normal(0.0, cfg.get("noise", 1.0), size=(n, d)).astype(np.float32)
    return x, y.astype(np.int64)


# --------------------------------------------------------------------------- splitting


def _split_indices(n: int, cfg: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(cfg.get("seed", 0))
    order = rng.permutation(n)
    n_val = int(round(n * cfg.get("val_fraction", 0.2)))
    return order[n_val:], order[:n_val]


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def split(x: np.ndarray, y: np.ndarray, cfg: Mapping[str, Any]) -> TensorData:
    classes = cfg.get("classes")
    if classes:
        keep = np.isin(y, list(classes))
        x, y = x[keep], np.searchsorted(np.array(sorted(classes)), y[keep])
    train, val = _split_indices(len(y), cfg)
    per_class = cfg.get("train_per_class")
    if per_class:
        train = np.concatenate([train[y[train] == c][:per_class] for c in np.unique(y)])
    return TensorData(_tensor(x[train]), _tensor(y[train]), _tensor(x[val]), _tensor(y[val]), int(y.max()) + 1)


def standardised_split(x: np.ndarray, y: np.ndarray, cfg: Mapping[str, Any], kind: str) -> TensorData:
    """Split, then scale each feature by the TRAINING set's mean and standard deviation, so no
    statistic of the validation rows leaks into training."""
    train, val = _split_indices(len(y), cfg)
    mean, std = x[train].mean(0), x[train].std(0)
    std[std == 0] = 1.0
    x = ((x - mean) / std).astype(np.float32)
    classes = int(y.max()) + 1 if kind == CLASSIFICATION else None
    return TensorData(_tensor(x[train]), _tensor(y[train]), _tensor(x[val]), _tensor(y[val]), classes, kind)
