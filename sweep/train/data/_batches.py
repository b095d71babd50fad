"""Batches of either kind of data on the training device.

`TensorData` is batched by indexing, on the training device when it fits in
`data.on_device_max_mb` (a DataLoader over the same tensors costs 1.33x per update here), else one
batch at a time from host memory. `UserDatasets` go through a DataLoader (`data.num_workers`,
`data.pin_memory`); each batch (tensors, tuples or dicts) is moved to the device as a whole,
copied without blocking from pinned memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader

from sweep.train.data._kinds import TensorData, TrainValData


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

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        device: torch.device,
        shuffle: bool,
        on_device_max_mb: float,
        generator: torch.Generator | None = None,
    ):
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
                xb, yb = self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]
            else:
                idx = order[i : i + self.batch_size]
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


def train_batches(
    data: TrainValData, batch_size: int, device: torch.device, seed: int, on_device_max_mb: float = 256
) -> Batches | DeviceLoader:
    """The training batches of one run, reshuffled each epoch from `seed`; `len()` is the
    number of updates per epoch."""
    generator = torch.Generator().manual_seed(int(seed))
    if isinstance(data, TensorData):
        return Batches(data.x_train, data.y_train, batch_size, device, True, on_device_max_mb, generator)
    loader = DataLoader(
        data.train,
        batch_size=batch_size,
        shuffle=True,
        generator=generator,
        num_workers=data.num_workers,
        pin_memory=_pin(data.pin_memory, device),
        persistent_workers=data.num_workers > 0,
    )
    return DeviceLoader(loader, device)


def val_batches(
    data: TrainValData, device: torch.device, batch_size: int = 4096, on_device_max_mb: float = 256
) -> Batches | DeviceLoader:
    """The validation batches, in order."""
    if isinstance(data, TensorData):
        return Batches(data.x_val, data.y_val, batch_size, device, False, on_device_max_mb)
    loader = DataLoader(
        data.val,
        batch_size=batch_size,
        shuffle=False,
        num_workers=data.num_workers,
        pin_memory=_pin(data.pin_memory, device),
        persistent_workers=data.num_workers > 0,
    )
    return DeviceLoader(loader, device)


def steps_per_epoch(data: TrainValData, batch_size: int) -> int:
    return -(-data.n_train // int(batch_size))


def train_targets(data: TrainValData) -> torch.Tensor:
    """Every training target (for a regression target's statistics); reads the whole set once."""
    if isinstance(data, TensorData):
        return data.y_train
    return torch.stack([torch.as_tensor(data.train[i][1]) for i in range(data.n_train)])
