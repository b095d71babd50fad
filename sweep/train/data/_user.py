"""The user's own `(train, val)` datasets, made by `data._target_`: checked before training (a
callable that takes the configured keywords and returns two non-empty map-style datasets of
`(input, target)` items), and their facts (features, classes, kind) read from the first item."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from sweep.errors import ConfigError, check
from sweep.train.data._kinds import CLASSIFICATION, REGRESSION, TensorData, TrainValData, UserDatasets
from sweep.train.user_code import check_arguments, import_object

# keys of the data config that lr-sweep reads; the others are keyword arguments of `data._target_`
OWN_KEYS = (
    "name",
    "_target_",
    "num_workers",
    "pin_memory",
    "on_device_max_mb",
    "num_features",
    "num_classes",
    "num_outputs",
    "val_fraction",
    "seed",
    "task",
)


def _check_item(ds: Any, which: str, target: object) -> tuple[Any, Any]:
    try:
        item = ds[0]
    except Exception as err:  # noqa: BLE001
        raise ConfigError(
            "data._target_", target, f"datasets whose items can be read; {which}[0] raised {type(err).__name__}: {err}"
        ) from None
    check(
        isinstance(item, (tuple, list)) and len(item) == 2,
        "data._target_",
        target,
        f"datasets whose items are (input, target) pairs; {which}[0] is a {type(item).__name__}"
        + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else ""),
    )
    return item[0], item[1]


def _tensor_pair(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    if isinstance(ds, TensorDataset) and len(ds.tensors) == 2:
        return ds.tensors[0], ds.tensors[1]
    return None


def _made(cfg: Mapping[str, Any]) -> tuple[Any, Any]:
    """`data._target_(**the other keys)`, checked: two non-empty map-style datasets."""
    target = cfg.get("_target_")
    fn = import_object("data._target_", target)
    kwargs = {k: v for k, v in cfg.items() if k not in OWN_KEYS}
    check_arguments("data._target_", target, fn, kwargs)
    made = fn(**kwargs)
    ok = (
        isinstance(made, (tuple, list))
        and len(made) == 2
        and all(hasattr(d, "__getitem__") and hasattr(d, "__len__") for d in made)
    )
    check(
        ok,
        "data._target_",
        target,
        f"a callable that returns (train, val) map-style datasets; it returned a {type(made).__name__}"
        + (f" of length {len(made)}" if isinstance(made, (tuple, list)) else ""),
    )
    train, val = made
    check(len(train) > 0 and len(val) > 0, "data._target_", target, "non-empty train and val datasets")
    return train, val


def _declared_classes(train: Any) -> int | None:
    """The class count a dataset declares (`classes`, as torchvision's do; or its Subset's dataset's)."""
    for source in (train, getattr(train, "dataset", None)):
        classes = getattr(source, "classes", None)
        if classes is not None:
            return len(classes)
    return None


def user_data(cfg: Mapping[str, Any]) -> TrainValData:
    """The user's datasets: `TensorData` when both are two-tensor `TensorDataset`s (the fast
    indexed path), else `UserDatasets`; their facts read from the first training item."""
    target = cfg.get("_target_")
    train, val = _made(cfg)
    x0, y0 = _check_item(train, "train", target)
    _check_item(val, "val", target)
    num_classes = _declared_classes(train)
    num_features = int(x0.shape[-1]) if isinstance(x0, torch.Tensor) and x0.ndim >= 1 else None
    kind = None
    if isinstance(y0, torch.Tensor) or isinstance(y0, (int, float)):
        kind = REGRESSION if torch.as_tensor(y0).is_floating_point() else CLASSIFICATION
    pair_train, pair_val = _tensor_pair(train), _tensor_pair(val)
    if pair_train and pair_val:  # plain tensors: the fast indexed path
        if num_classes is None and kind == CLASSIFICATION:
            num_classes = int(max(pair_train[1].max(), pair_val[1].max())) + 1
        return TensorData(*pair_train, *pair_val, num_classes, kind or CLASSIFICATION)
    return UserDatasets(
        train, val, num_features, num_classes, kind, int(cfg.get("num_workers", 0)), cfg.get("pin_memory", "auto")
    )
