"""The two kinds of data that reach the loop, and the facts each tells the model builder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

CLASSIFICATION, REGRESSION = "classification", "regression"


@dataclass
class TensorData:
    """Feature tensors (n, ...) and target tensors (n,) for training and validation: batched by
    indexing, on the device when they fit."""

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
class UserDatasets:
    """The user's own map-style (train, val) datasets, streamed through a DataLoader."""

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


TrainValData = TensorData | UserDatasets  # what `load` returns and the loop trains on
