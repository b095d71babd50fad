"""Old import paths of the flat layout (`sweep.schedules`, `sweep.job`, ...) keep working, with a
DeprecationWarning that names the new path: configs and scripts written for the flat layout
(`model._target_: sweep.models.MLP`, `space_hook: sweep.spaces.finetune_space`) still run. Two old
names are packages now and keep no alias: `sweep.search` (the grammar is `sweep.search.space`) and
`sweep.batched` (the stacked model is `sweep.batched.stack`)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

MOVED = {
    "sweep.batched_check": "sweep.batched.check",
    "sweep.batched_forward": "sweep.batched.forward",
    "sweep.batched_job": "sweep.batched.job",
    "sweep.batched_optim": "sweep.batched.optimizer",
    "sweep.batched_task": "sweep.batched.metrics",
    "sweep.cli": "sweep.app.command_line",
    "sweep.config": "sweep.train.checks",
    "sweep.data": "sweep.train.data",
    "sweep.depth": "sweep.lr.depth",
    "sweep.groups": "sweep.lr.groups",
    "sweep.job": "sweep.train.job",
    "sweep.launch": "sweep.search.runners",
    "sweep.loop": "sweep.train.loop",
    "sweep.lr_find": "sweep.tools.range_test",
    "sweep.models": "sweep.train.models",
    "sweep.optim": "sweep.lr.optimizer",
    "sweep.plots": "sweep.search.plots",
    "sweep.preview": "sweep.tools.preview",
    "sweep.process": "sweep.train.process",
    "sweep.results": "sweep.search.results",
    "sweep.scheduler": "sweep.lr.torch_scheduler",
    "sweep.schedules": "sweep.lr.schedule",
    "sweep.spaces": "sweep.search.space_hooks",
    "sweep.status": "sweep.search.status",
    "sweep.storage": "sweep.search.storage",
    "sweep.sweeper": "sweep.search.sweeper",
    "sweep.sweeper_conf": "sweep.search.settings",
    "sweep.task": "sweep.train.task",
    "sweep.tensorboard": "sweep.logs.tensorboard",
    "sweep.tfrecord": "sweep.logs.tfrecord",
    "sweep.workers": "sweep.search.workers",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: Any) -> ModuleType:
        warnings.warn(f"{spec.name} moved to {self.new}", DeprecationWarning, stacklevel=3)
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """The new module is already executed."""


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Sequence[str] | None = None, target: Any = None) -> Any:
        new = MOVED.get(name)
        return importlib.util.spec_from_loader(name, _Alias(new)) if new else None


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
