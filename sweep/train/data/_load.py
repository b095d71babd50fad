"""The data set a config names: its checks (before anything is loaded), and loading it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sweep.errors import check
from sweep.train.data._csv_file import csv_arrays
from sweep.train.data._kinds import CLASSIFICATION, REGRESSION, TrainValData
from sweep.train.data._tables import (
    SKLEARN_TABLES,
    diabetes_arrays,
    digits_arrays,
    sklearn_table,
    split,
    standardised_split,
    synthetic_arrays,
)
from sweep.train.data._user import user_data

DATASETS = ("digits", "synthetic", *SKLEARN_TABLES, "diabetes", "csv", "custom")


def validate(cfg: Mapping[str, Any]) -> None:
    """Checks of the data config that need no data (run before anything is loaded)."""
    name = cfg.get("name")
    check(name in DATASETS, "data", name, f"one of {', '.join(DATASETS)}")
    vf = cfg.get("val_fraction", 0.2)
    check(isinstance(vf, (int, float)) and 0 < vf < 1, "data.val_fraction", vf, "a fraction in (0, 1)")
    classes = cfg.get("classes")
    if name == "digits" and classes:
        check(
            len(classes) >= 2 and set(classes) <= set(range(10)),
            "data.classes",
            list(classes),
            "a list of at least two digits in 0-9",
        )
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
        check(
            isinstance(target, str) and bool(target) and target != "???",
            "data._target_",
            target,
            "an import path of a callable returning (train, val) datasets",
        )


def load(cfg: Mapping[str, Any]) -> TrainValData:
    """The data set `cfg` names (`cfg["task"]`, when given, is the task's name: csv reads it)."""
    validate(cfg)
    name = cfg["name"]
    if name == "custom":
        return user_data(cfg)
    if name == "csv":
        x, y, kind = csv_arrays(cfg)
        return standardised_split(x, y, cfg, kind)
    if name in SKLEARN_TABLES:
        return standardised_split(*sklearn_table(name), cfg, CLASSIFICATION)
    if name == "diabetes":
        return standardised_split(*diabetes_arrays(), cfg, REGRESSION)
    x, y = digits_arrays() if name == "digits" else synthetic_arrays(cfg)
    return split(x, y, cfg)
