"""Data sets: the shipped ones, a CSV file, or the user's own `(train, val)` datasets.

Two kinds of data reach the loop:
- `DataSet`: feature and target tensors (the shipped sets, CSV files, and a user's
  `TensorDataset`s). They are batched by indexing, on the training device when they fit in
  `data.on_device_max_mb` (a DataLoader over the same tensors costs 1.33x per update here), else
  one batch at a time from host memory.
- `Datasets`: any other map-style `torch.utils.data.Dataset` pair, whose items are
  `(input, target)` with inputs that may be tensors, tuples or dicts. They go through a DataLoader
  (`data.num_workers`, `data.pin_memory`); each batch is moved to the device as a whole, copied
  without blocking from pinned memory.

Either way the data tells the model builder what it knows, as `num_features`, `num_classes` and
`num_outputs` (the model's output width: the class count, or 1 for a regression target), and its
`kind` ("classification" or "regression"). The job writes them into the config's `data` node, so a
model config passes them by interpolation (`num_classes: ${data.num_outputs}`); a value the user
set in the config wins.

Scikit-learn's bundled tables (digits, wine, breast_cancer, iris, diabetes) are read from its
package data without importing scikit-learn, whose import takes seconds.
"""

from __future__ import annotations

import csv
import functools
import gzip
import importlib.util
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from sweep.errors import ConfigError, check

log = logging.getLogger(__name__)

CLASSIFICATION, REGRESSION = "classification", "regression"
SKLEARN_TABLES = ("wine", "breast_cancer", "iris")  # classification tables in scikit-learn's format
DATASETS = ("digits", "synthetic", *SKLEARN_TABLES, "diabetes", "csv", "custom")
# keys of the data config that lr-sweep reads; the others are keyword arguments of `data._target_`
OWN_KEYS = ("name", "_target_", "num_workers", "pin_memory", "on_device_max_mb", "num_features",
            "num_classes", "num_outputs", "val_fraction", "seed", "task")


@dataclass
class DataSet:
    """Tensor data: features (n, ...) and targets (n,) for training and validation."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int | None
    kind: str = CLASSIFICATION

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1]) if self.x_train.ndim == 2 else int(self.x_train[0].numel())

    @property
    def num_outputs(self) -> int:
        return self.num_classes if self.kind == CLASSIFICATION and self.num_classes else 1

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_val(self) -> int:
        return len(self.y_val)


@dataclass
class Datasets:
    """The user's own map-style datasets, streamed through a DataLoader."""

    train: Dataset
    val: Dataset
    num_features: int | None = None
    num_classes: int | None = None
    kind: str | None = None
    num_workers: int = 0
    pin_memory: bool | str = "auto"

    @property
    def num_outputs(self) -> int | None:
        return self.num_classes if self.kind != REGRESSION else 1

    @property
    def n_train(self) -> int:
        return len(self.train)  # type: ignore[arg-type]

    @property
    def n_val(self) -> int:
        return len(self.val)  # type: ignore[arg-type]


Data = DataSet | Datasets


# --------------------------------------------------------------------------- reading the tables

def _sklearn_file(name: str) -> Path:
    spec = importlib.util.find_spec("sklearn")
    check(spec is not None and bool(spec.submodule_search_locations), "data", name,
          "a data set whose package is installed: pip install scikit-learn")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name  # type: ignore[union-attr]


@functools.lru_cache(maxsize=None)  # the shipped files: parsed once per process, not per trial
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Scikit-learn's 8x8 digits, pixels scaled to [0, 1]."""
    with gzip.open(_sklearn_file("digits.csv.gz"), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return table[:, :-1] / 16.0, table[:, -1].astype(np.int64)


@functools.lru_cache(maxsize=None)  # the shipped files: parsed once per process, not per trial
def _sklearn_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    """wine, breast_cancer, iris: a header line `n_samples,n_features,class names...`, then rows
    of features and the class index."""
    path = _sklearn_file("wine_data.csv" if name == "wine" else f"{name}.csv")
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    return table[:, :-1].astype(np.float32), table[:, -1].astype(np.int64)


@functools.lru_cache(maxsize=None)  # the shipped files: parsed once per process, not per trial
def _diabetes_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Scikit-learn's diabetes regression set, unscaled; the target is in its own units."""
    x = np.loadtxt(_sklearn_file("diabetes_data_raw.csv.gz"), dtype=np.float32)
    y = np.loadtxt(_sklearn_file("diabetes_target.csv.gz"), dtype=np.float32)
    return x, y


def _synthetic_arrays(cfg: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: quick to learn, made from the seed, for fast tests."""
    rng = np.random.default_rng(cfg.get("seed", 0))
    n, d, k = cfg["n_samples"], cfg["n_features"], cfg["n_classes"]
    centers = rng.normal(0.0, 1.0, size=(k, d)).astype(np.float32)
    y = rng.integers(0, k, size=n)
    x = centers[y] + rng.normal(0.0, cfg.get("noise", 1.0), size=(n, d)).astype(np.float32)
    return x, y.astype(np.int64)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _csv_arrays(cfg: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, str]:
    """Features (the numeric columns other than the target), the target, and its kind.

    A target of strings, or of integers under task=classification, becomes class indices (sorted
    labels); rows with an empty cell are dropped, columns that are not numbers are left out.
    """
    path, target = cfg.get("path"), cfg.get("target")
    check(bool(path) and os.path.isfile(str(path)), "data.path", path, "the path of an existing CSV file")
    with open(str(path), newline="") as f:
        rows = list(csv.reader(f))
    check(len(rows) > 2, "data.path", path, "a CSV file with a header row and data rows")
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if any(c.strip() for c in r)]
    check(target in header, "data.target", target, f"one of the CSV's columns: {', '.join(header)}")
    complete = [r for r in body if len(r) == len(header) and all(c.strip() for c in r)]
    if len(complete) < len(body):
        log.info("data.path %s: dropped %d of %d rows with empty cells", path, len(body) - len(complete), len(body))
    check(len(complete) >= 4, "data.path", path, "a CSV with at least 4 complete rows")
    columns = {h: [r[i].strip() for r in complete] for i, h in enumerate(header)}
    numeric = {h: [_number(v) for v in vals] for h, vals in columns.items()}
    features = [h for h in header if h != target and all(v is not None for v in numeric[h])]
    skipped = [h for h in header if h != target and h not in features]
    if skipped:
        log.info("data.path %s: columns that are not numbers are left out: %s", path, ", ".join(skipped))
    check(bool(features), "data.path", path, f"a CSV with at least one numeric column besides '{target}'")
    x = np.array([numeric[h] for h in features], dtype=np.float32).T
    y_num = numeric[target]
    task = cfg.get("task")
    if any(v is None for v in y_num) or task == CLASSIFICATION:
        if task == CLASSIFICATION and all(v is not None for v in y_num):
            check(all(float(v).is_integer() for v in y_num), "task", task,  # type: ignore[arg-type]
                  f"task=regression for the numeric target '{target}' "
                  "(classification needs class labels: strings or integers)")
        labels = sorted(set(columns[target]), key=lambda s: (_number(s) is None, _number(s) or 0.0, s))
        index = {label: i for i, label in enumerate(labels)}
        log.info("data.target %s: %d classes %s", target, len(labels), labels[:10])
        return x, np.array([index[v] for v in columns[target]], dtype=np.int64), CLASSIFICATION
    return x, np.array(y_num, dtype=np.float32), REGRESSION


# --------------------------------------------------------------------------- splitting

def _split_indices(n: int, cfg: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(cfg.get("seed", 0))
    order = rng.permutation(n)
    n_val = int(round(n * cfg.get("val_fraction", 0.2)))
    return order[n_val:], order[:n_val]


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _split(x: np.ndarray, y: np.ndarray, cfg: Mapping[str, Any]) -> DataSet:
    classes = cfg.get("classes")
    if classes:
        keep = np.isin(y, list(classes))
        x, y = x[keep], np.searchsorted(np.array(sorted(classes)), y[keep])
    train, val = _split_indices(len(y), cfg)
    per_class = cfg.get("train_per_class")
    if per_class:
        train = np.concatenate([train[y[train] == c][:per_class] for c in np.unique(y)])
    return DataSet(_tensor(x[train]), _tensor(y[train]), _tensor(x[val]), _tensor(y[val]), int(y.max()) + 1)


def _standardised_split(x: np.ndarray, y: np.ndarray, cfg: Mapping[str, Any], kind: str) -> DataSet:
    """Split, then scale each feature by the TRAINING set's mean and standard deviation, so no
    statistic of the validation rows leaks into training."""
    train, val = _split_indices(len(y), cfg)
    mean, std = x[train].mean(0), x[train].std(0)
    std[std == 0] = 1.0
    x = ((x - mean) / std).astype(np.float32)
    classes = int(y.max()) + 1 if kind == CLASSIFICATION else None
    return DataSet(_tensor(x[train]), _tensor(y[train]), _tensor(x[val]), _tensor(y[val]), classes, kind)


# --------------------------------------------------------------------------- the user's datasets

def import_object(key: str, path: Any) -> Any:
    """The object an import path names (`pkg.module.name`, nested attributes allowed); a path that
    does not import is a ConfigError naming `key`. Errors raised inside the user's module go up."""
    check(isinstance(path, str) and bool(path) and path != "???" and "." in str(path), key, path,
          "an import path such as mypackage.module.name (installed, or on PYTHONPATH)")
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and (module_name == err.name or module_name.startswith(err.name + ".")):
                continue  # this prefix is not a module; try a shorter one
            raise
        for i, attr in enumerate(parts[cut:]):
            if not hasattr(obj, attr):
                raise ConfigError(key, path, f"an importable name; module {module_name} has no "
                                  f"{'.'.join(parts[cut:cut + i + 1])}") from None
            obj = getattr(obj, attr)
        return obj
    raise ConfigError(key, path, f"an importable name; no module {parts[0]} is installed or on PYTHONPATH")


def check_arguments(key: str, target: str, fn: Any, kwargs: Mapping[str, Any]) -> None:
    """A ConfigError, before anything runs, when `fn` does not accept the configured keywords."""
    import inspect

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        raise ConfigError(key, target,
                          f"a callable that accepts the configured arguments {sorted(kwargs)}; {err}") from None


def _check_item(ds: Any, which: str, target: str) -> tuple[Any, Any]:
    try:
        item = ds[0]
    except Exception as err:  # noqa: BLE001
        raise ConfigError("data._target_", target, f"datasets whose items can be read; {which}[0] raised "
                          f"{type(err).__name__}: {err}") from None
    check(isinstance(item, (tuple, list)) and len(item) == 2, "data._target_", target,
          f"datasets whose items are (input, target) pairs; {which}[0] is a {type(item).__name__}"
          + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else ""))
    return item[0], item[1]


def _tensor_pair(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    if isinstance(ds, TensorDataset) and len(ds.tensors) == 2:
        return ds.tensors[0], ds.tensors[1]
    return None


def _custom(cfg: Mapping[str, Any]) -> Data:
    target = cfg.get("_target_")
    fn = import_object("data._target_", target)
    kwargs = {k: v for k, v in cfg.items() if k not in OWN_KEYS}
    check_arguments("data._target_", target, fn, kwargs)
    made = fn(**kwargs)
    ok = isinstance(made, (tuple, list)) and len(made) == 2 and all(
        hasattr(d, "__getitem__") and hasattr(d, "__len__") for d in made)
    check(ok, "data._target_", target,
          f"a callable that returns (train, val) map-style datasets; it returned a {type(made).__name__}"
          + (f" of length {len(made)}" if isinstance(made, (tuple, list)) else ""))
    train, val = made
    check(len(train) > 0 and len(val) > 0, "data._target_", target, "non-empty train and val datasets")
    x0, y0 = _check_item(train, "train", target)
    _check_item(val, "val", target)
    num_classes = None
    for source in (train, getattr(train, "dataset", None)):
        classes = getattr(source, "classes", None)
        if classes is not None:
            num_classes = len(classes)
            break
    num_features = int(x0.shape[-1]) if isinstance(x0, torch.Tensor) and x0.ndim >= 1 else None
    kind = None
    if isinstance(y0, torch.Tensor) or isinstance(y0, (int, float)):
        kind = REGRESSION if torch.as_tensor(y0).is_floating_point() else CLASSIFICATION
    pair_train, pair_val = _tensor_pair(train), _tensor_pair(val)
    if pair_train and pair_val:  # plain tensors: the fast indexed path
        if num_classes is None and kind == CLASSIFICATION:
            num_classes = int(max(pair_train[1].max(), pair_val[1].max())) + 1
        return DataSet(*pair_train, *pair_val, num_classes, kind or CLASSIFICATION)
    return Datasets(train, val, num_features, num_classes, kind, int(cfg.get("num_workers", 0)),
                    cfg.get("pin_memory", "auto"))


# --------------------------------------------------------------------------- entry point

def validate(cfg: Mapping[str, Any]) -> None:
    """Checks of the data config that need no data (run before anything is loaded)."""
    name = cfg.get("name")
    check(name in DATASETS, "data", name, f"one of {', '.join(DATASETS)}")
    vf = cfg.get("val_fraction", 0.2)
    check(isinstance(vf, (int, float)) and 0 < vf < 1, "data.val_fraction", vf, "a fraction in (0, 1)")
    classes = cfg.get("classes")
    if name == "digits" and classes:
        check(len(classes) >= 2 and set(classes) <= set(range(10)), "data.classes", list(classes),
              "a list of at least two digits in 0-9")
    workers = cfg.get("num_workers", 0)
    check(isinstance(workers, int) and workers >= 0, "data.num_workers", workers, "an integer >= 0")
    pin = cfg.get("pin_memory", "auto")
    check(pin in ("auto", True, False), "data.pin_memory", pin, "auto (on CUDA), true or false")
    if name == "csv":
        path = cfg.get("path")
        check(bool(path) and os.path.isfile(str(path)), "data.path", path, "the path of an existing CSV file")
        check(bool(cfg.get("target")), "data.target", cfg.get("target"), "the name of the CSV's target column")
    if name == "custom":
        target = cfg.get("_target_")
        check(isinstance(target, str) and bool(target) and target != "???", "data._target_", target,
              "an import path of a callable returning (train, val) datasets")


def load(cfg: Mapping[str, Any]) -> Data:
    """The data set `cfg` names (`cfg["task"]`, when given, is the task's name: csv reads it)."""
    validate(cfg)
    name = cfg["name"]
    if name == "custom":
        return _custom(cfg)
    if name == "csv":
        x, y, kind = _csv_arrays(cfg)
        return _standardised_split(x, y, cfg, kind)
    if name in SKLEARN_TABLES:
        return _standardised_split(*_sklearn_table(name), cfg, CLASSIFICATION)
    if name == "diabetes":
        return _standardised_split(*_diabetes_arrays(), cfg, REGRESSION)
    x, y = _digits_arrays() if name == "digits" else _synthetic_arrays(cfg)
    return _split(x, y, cfg)


# --------------------------------------------------------------------------- batches

def to_device(obj: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """`obj` with every tensor in it (nested tuples, lists, dicts) moved to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        return type(obj)({k: to_device(v, device, non_blocking) for k, v in obj.items()})  # type: ignore[call-arg]
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(to_device(v, device, non_blocking) for v in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(v, device, non_blocking) for v in obj)
    return obj


class Batches:
    """Mini-batches of (x, y) tensors on `device`; reshuffled each epoch by `generator` when `shuffle`.

    Data that fits in `on_device_max_mb` lives on the device and is batched by indexing; larger
    data stays on the host, and each batch is copied without blocking from pinned memory on CUDA.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device,
                 shuffle: bool, on_device_max_mb: float, generator: torch.Generator | None = None):
        self.on_device = (x.numel() * x.element_size()) / 2**20 <= on_device_max_mb
        self.x, self.y = (x.to(device), y.to(device)) if self.on_device else (x, y)
        self.device, self.batch_size, self.shuffle, self.generator = device, batch_size, shuffle, generator
        self.pin = device.type == "cuda"

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        if order is not None and self.on_device and self.device.type != "cpu":
            order = order.pin_memory().to(self.device, non_blocking=True) if self.pin else order.to(self.device)
        for i in range(0, n, self.batch_size):
            if order is None:
                xb, yb = self.x[i:i + self.batch_size], self.y[i:i + self.batch_size]
            else:
                idx = order[i:i + self.batch_size]
                xb, yb = self.x[idx], self.y[idx]
            if not self.on_device:
                if self.pin:
                    xb, yb = xb.pin_memory(), yb.pin_memory()
                xb = xb.to(self.device, non_blocking=self.pin)
                yb = yb.to(self.device, non_blocking=self.pin)
            yield xb, yb


class DeviceLoader:
    """A DataLoader whose batches (nested tensors) arrive on `device`; non-blocking from pinned memory."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.loader, self.device = loader, device
        self.non_blocking = bool(loader.pin_memory) and device.type == "cuda"

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            yield to_device(batch, self.device, self.non_blocking)


def _pin(setting: bool | str, device: torch.device) -> bool:
    return device.type == "cuda" if setting == "auto" else bool(setting)


def train_batches(data: Data, batch_size: int, device: torch.device, seed: int,
                  on_device_max_mb: float = 256) -> Batches | DeviceLoader:
    """The training batches of one run, reshuffled each epoch from `seed`; `len()` is the
    number of updates per epoch."""
    generator = torch.Generator().manual_seed(int(seed))
    if isinstance(data, DataSet):
        return Batches(data.x_train, data.y_train, batch_size, device, True, on_device_max_mb, generator)
    loader = DataLoader(data.train, batch_size=batch_size, shuffle=True, generator=generator,
                        num_workers=data.num_workers, pin_memory=_pin(data.pin_memory, device),
                        persistent_workers=data.num_workers > 0)
    return DeviceLoader(loader, device)


def val_batches(data: Data, device: torch.device, batch_size: int = 4096,
                on_device_max_mb: float = 256) -> Batches | DeviceLoader:
    """The validation batches, in order."""
    if isinstance(data, DataSet):
        return Batches(data.x_val, data.y_val, batch_size, device, False, on_device_max_mb)
    loader = DataLoader(data.val, batch_size=batch_size, shuffle=False, num_workers=data.num_workers,
                        pin_memory=_pin(data.pin_memory, device), persistent_workers=data.num_workers > 0)
    return DeviceLoader(loader, device)


def steps_per_epoch(data: Data, batch_size: int) -> int:
    return -(-data.n_train // int(batch_size))


def train_targets(data: Data) -> torch.Tensor:
    """Every training target (for a regression target's statistics); reads the whole set once."""
    if isinstance(data, DataSet):
        return data.y_train
    return torch.stack([torch.as_tensor(data.train[i][1]) for i in range(data.n_train)])
