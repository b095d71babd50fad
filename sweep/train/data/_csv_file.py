"""A CSV file as arrays: the numeric columns as features, one column as the target, and whether
that target is class labels or a regression value."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from sweep.errors import ConfigError, check
from sweep.train.data._kinds import CLASSIFICATION, REGRESSION

log = logging.getLogger(__name__)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def csv_arrays(cfg: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, str]:
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
    if target not in header:
        raise ConfigError("data.target", target, f"one of the CSV's columns: {', '.join(header)}")
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
            check(
                all(v.is_integer() for v in y_num if v is not None),
                "task",
                task,
                f"task=regression for the numeric target '{target}' "
                "(classification needs class labels: strings or integers)",
            )
        labels = sorted(set(columns[target]), key=lambda s: (_number(s) is None, _number(s) or 0.0, s))
        index = {label: i for i, label in enumerate(labels)}
        log.info("data.target %s: %d classes %s", target, len(labels), labels[:10])
        return x, np.array([index[v] for v in columns[target]], dtype=np.int64), CLASSIFICATION
    return x, np.array(y_num, dtype=np.float32), REGRESSION
