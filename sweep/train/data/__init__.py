"""Data sets: the shipped ones, a CSV file, or the user's own `(train, val)` datasets.

Two kinds of data reach the loop (`TrainValData` is either):
- `TensorData`: feature and target tensors (the shipped sets, CSV files, and a user's
  `TensorDataset`s), batched by indexing (`_batches.py`).
- `UserDatasets`: any other map-style `torch.utils.data.Dataset` pair, whose items are
  `(input, target)` with inputs that may be tensors, tuples or dicts, batched by a DataLoader.

Either way the data tells the model builder what it knows, as `num_features`, `num_classes` and
`num_outputs` (the model's output width: the class count, or 1 for a regression target), and its
`kind` ("classification" or "regression"). The job writes them into the config's `data` node, so a
model config passes them by interpolation (`num_classes: ${data.num_outputs}`); a value the user
set in the config wins.

One job per module: `_kinds` (the two kinds), `_tables` (the shipped sets and the split),
`_csv_file` (a CSV file), `_user` (the user's datasets), `_load` (checks and loading by name),
`_batches` (batches on the device).
"""

from sweep.train.data._batches import (
    Batches,
    DeviceLoader,
    steps_per_epoch,
    to_device,
    train_batches,
    train_targets,
    val_batches,
)
from sweep.train.data._kinds import CLASSIFICATION, REGRESSION, TensorData, TrainValData, UserDatasets
from sweep.train.data._load import DATASETS, load, validate
from sweep.train.data._tables import SKLEARN_TABLES
from sweep.train.data._user import OWN_KEYS

__all__ = [
    "CLASSIFICATION",
    "DATASETS",
    "OWN_KEYS",
    "REGRESSION",
    "SKLEARN_TABLES",
    "Batches",
    "DeviceLoader",
    "TensorData",
    "TrainValData",
    "UserDatasets",
    "load",
    "steps_per_epoch",
    "to_device",
    "train_batches",
    "train_targets",
    "val_batches",
    "validate",
]
