"""Config -> every object a run needs: data, task, model (with its pretrained weights), groups,
optimizer, schedule. The job, the LR tools, batched trials and the benchmarks all build through
`build(cfg)`, so what they measure or preview is what training uses."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from sweep.errors import ConfigError
from sweep.lr.groups import build_groups, group_table
from sweep.lr.optimizer import build_optimizer
from sweep.lr.schedule import Schedule
from sweep.train import checks, process
from sweep.train import data as datasets
from sweep.train.loop import pick_device
from sweep.train.models import build_model, load_backbone
from sweep.train.task import Task, build_task


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@dataclass
class Built:
    """Everything a run needs, made from the config (before any training).

    `data` is a `sweep.train.data.TensorData` (tensors) or `sweep.train.data.UserDatasets`;
    iterate it with `sweep.train.loop.train_batches(built.data, batch_size, built.device, seed)` and
    compute a batch's loss with `sweep.train.loop.batch_loss(built.model, batch, built.task, autocast)`.
    `settings` is the run's config resolved into plain dicts, with what the data told filled in:
    what the run reads its settings from, and what its checkpoint records.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    data: datasets.TrainValData
    device: torch.device
    table: str
    task: Task
    settings: dict[str, Any]


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The whole config as plain dicts, every `${...}` resolved: done once per run, since each read
    of an interpolated DictConfig value parses it again (most of a short trial's config cost)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def data_config(settings: dict[str, Any]) -> dict[str, Any]:
    """The data node, with the task's name (data=csv reads it)."""
    task_cfg = settings.get("task")
    return {**settings["data"], "task": task_cfg.get("name") if task_cfg is not None else None}


def fill_data_info(cfg: DictConfig, settings: dict[str, Any], data: datasets.TrainValData, task: Task) -> bool:
    """Write what the data knows (num_features, num_classes, num_outputs) into `cfg.data`, where the
    user left it null, so the model config's `${data.num_outputs}` and the like resolve. The output
    width is the class count (the user's, where they set one) or 1 for regression. Says whether
    it filled anything in (the config's resolved values are then stale)."""
    known = {"num_features": data.num_features, "num_classes": data.num_classes}
    filled = {k: v for k, v in known.items() if settings["data"].get(k) is None}
    if settings["data"].get("num_outputs") is None:
        filled["num_outputs"] = 1 if task.regression else filled.get("num_classes", settings["data"]["num_classes"])
    with open_dict(cfg.data):
        for key, value in filled.items():
            cfg.data[key] = value
    return bool(filled)


def model_config(cfg: DictConfig, settings: dict[str, Any]) -> dict[str, Any]:
    """The model node resolved; a size it takes from the data that the data does not know (a
    custom dataset without `classes`) is a one-line error saying which key to set."""
    raw = cast("dict[str, Any]", OmegaConf.to_container(cfg.model, resolve=False))  # a node: a dict
    model = settings["model"]
    for key, value in raw.items():
        if isinstance(value, str) and "${data.num_" in value and model.get(key) is None:
            name = value[value.index("${") + 2 : value.index("}")]
            hint = "data.num_classes" if name == "data.num_outputs" else name  # outputs follow the classes
            raise ConfigError(name, None, f"a number for model.{key}; the data does not say, so set {hint}=...")
    return model


def first_update_lr(settings: dict[str, Any], schedule: Schedule) -> float:
    """optimizer.lr times the schedule's factor at the first update: the base LR the group table
    shows (a piecewise list or a warmup starts elsewhere than optimizer.lr)."""
    return float(settings["optimizer"]["lr"]) * schedule.factor(0)


def build(cfg: DictConfig) -> Built:
    """Check the config, then make data, task, model (with its pretrained weights), groups,
    optimizer, schedule. Fills `cfg.data.num_features/num_classes/num_outputs` from the data."""
    settings = resolved(cfg)
    checks.validate(settings)
    tr = settings["trainer"]
    seed_everything(int(tr["seed"]), bool(tr["deterministic"]))
    if tr.get("threads"):
        torch.set_num_threads(int(tr["threads"]))
    device = pick_device(tr["device"])
    data = datasets.load(data_config(settings))
    task = build_task(settings.get("task"), lambda: datasets.train_targets(data))
    data_name = settings["data"].get("name")
    if data.kind and data.kind != task.name and data_name != "custom":
        raise ConfigError(
            "task",
            task.name,
            f"task={data.kind} for data={data_name}, whose target is "
            f"{'a class label' if data.kind == 'classification' else 'a number'}",
        )
    if fill_data_info(cfg, settings, data, task):
        settings = resolved(cfg)  # again, whole: any value may read the sizes, directly or through another
    model = build_model(model_config(cfg, settings))
    model.to(device)
    model_cfg = settings["model"]
    if model_cfg.get("init_from"):
        load_backbone(model, str(model_cfg["init_from"]), model_cfg.get("init_prefix"))
    groups_cfg = settings["groups"]
    groups = build_groups(model, groups_cfg)
    decay_norm_bias = bool(groups_cfg.get("decay_norm_bias", False))
    optimizer = build_optimizer(settings["optimizer"], groups, decay_norm_bias)
    process.startup_done()  # the first optimizer imported the last of what runs need (sweep/train/process.py)
    tr = settings["trainer"]
    schedule = Schedule(
        settings["schedule"],
        float(settings["optimizer"]["lr"]),
        datasets.steps_per_epoch(data, int(tr["batch_size"])),
        int(tr["epochs"]),
    )
    table = group_table(
        groups,
        first_update_lr(settings, schedule),
        float(settings["optimizer"].get("weight_decay", 0.0)),
        decay_norm_bias,
    )
    return Built(model, optimizer, schedule, data, device, table, task, settings)
