"""One training job: config -> data, model, groups, optimizer, schedule -> loop -> logs and a metric."""

from __future__ import annotations

import logging
import os
import random
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from sweep import config, data as datasets, trial as trials
from sweep.errors import ConfigError
from sweep.groups import build_groups, group_table
from sweep.loop import DIVERGED, PRUNED, pick_device, save_checkpoint, train
from sweep.models import build_model, load_backbone
from sweep.optim import build_optimizer
from sweep.schedules import Schedule
from sweep.tensorboard import RunWriter

log = logging.getLogger(__name__)

HPARAM_KEYS = ("optimizer.name", "optimizer.lr", "optimizer.weight_decay", "groups.name",
               "groups.head_lr_mult", "schedule.name", "trainer.epochs", "trainer.batch_size")


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def hparams_of(cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """The core settings plus every key the command line or the sweeper set."""
    keys = list(HPARAM_KEYS) + [o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o]
    out = {}
    for key in dict.fromkeys(keys):
        if key.startswith(("trial.", "hydra.")):
            continue
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, DictConfig):
            value = value.get("name", str(value))
        out[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def job_dir() -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else os.getcwd()


def task_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def write_status(out: str, status: str, reason: str, epochs: int) -> None:
    """`status.yaml` in the job dir: completed, diverged or pruned, and why."""
    OmegaConf.save(OmegaConf.create({"status": status, "reason": reason, "epochs": epochs}),
                   os.path.join(out, "status.yaml"))


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@dataclass
class Built:
    """Everything a run needs, made from the config (before any training)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    data: datasets.DataSet
    device: torch.device
    table: str


def build(cfg: DictConfig) -> Built:
    """Check the config, then make data, model (with its pretrained backbone), groups, optimizer, schedule."""
    config.validate(cfg)
    tr = cfg.trainer
    seed_everything(int(tr.seed), bool(tr.deterministic))
    if tr.get("threads"):
        torch.set_num_threads(int(tr.threads))
    device = pick_device(tr.device)
    data = datasets.load(OmegaConf.to_container(cfg.data, resolve=True))
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), data.num_features, data.num_classes)
    model.to(device)
    if cfg.model.get("init_from"):
        load_backbone(model, str(cfg.model.init_from))
    groups_cfg = OmegaConf.to_container(cfg.groups, resolve=True)
    groups = build_groups(model, groups_cfg)
    decay_norm_bias = bool(groups_cfg.get("decay_norm_bias", False))
    optimizer = build_optimizer(OmegaConf.to_container(cfg.optimizer, resolve=True), groups, decay_norm_bias)
    steps_per_epoch = -(-len(data.y_train) // int(tr.batch_size))
    schedule = Schedule(OmegaConf.to_container(cfg.schedule, resolve=True), float(cfg.optimizer.lr),
                        steps_per_epoch, int(tr.epochs))
    table = group_table(groups, float(cfg.optimizer.lr), float(cfg.optimizer.get("weight_decay", 0.0)),
                        decay_norm_bias)
    return Built(model, optimizer, schedule, data, device, table)


def train_job(cfg: DictConfig) -> float:
    """Train one model as `cfg` says and return the objective (NaN for a diverged run)."""
    b = build(cfg)
    model, optimizer, schedule, data, tr = b.model, b.optimizer, b.schedule, b.data, cfg.trainer
    trial = trials.from_config(cfg.get("trial"))
    out = job_dir()
    log.info("device %s, %d train / %d val samples, %d updates per epoch\n%s", b.device, len(data.y_train),
             len(data.y_val), schedule.steps_per_epoch, b.table)
    writer = RunWriter(os.path.join(out, "tensorboard"), float(tr.lr_log_tolerance))
    metric, maximize = cfg.objective.metric, cfg.objective.direction == "maximize"
    hparams = hparams_of(cfg, task_overrides())
    writer.hparams(hparams, ["val/acc", "val/loss", "best/val_acc"])
    trial.set_attr("hparams", hparams)
    try:
        result = train(model, optimizer, schedule, data, OmegaConf.to_container(tr, resolve=True),
                       writer, trial, metric)
        if result.history:
            writer.scalars({"best/val_acc": max(h["val/acc"] for h in result.history)}, result.epochs - 1)
    finally:
        writer.close()
    write_status(out, result.status, result.reason, result.epochs)
    if result.status == DIVERGED:
        trial.set_attr(trials.FAIL_ATTR, result.reason)
        return float("nan")
    if result.status == PRUNED:
        raise trial.pruned(result.reason)
    meta = {"epochs": result.epochs, "updates": result.updates,
            "config": OmegaConf.to_container(cfg, resolve=True)}
    save_checkpoint(os.path.join(out, "checkpoint.pt"), model, meta)
    if tr.get("save_to"):  # a fixed path (relative to the launch dir) that model.init_from can name
        os.makedirs(os.path.dirname(os.path.abspath(str(tr.save_to))), exist_ok=True)
        save_checkpoint(str(tr.save_to), model, meta)
        log.info("checkpoint saved to %s", tr.save_to)
    value = result.metric(metric, cfg.objective.reduce, maximize)
    log.info("%s (%s) = %.4f", metric, cfg.objective.reduce, value)
    return value


def run(cfg: DictConfig) -> float:
    """Hydra task: in a single run a bad setting is one line on stderr and exit 2, a diverged run
    exit 3; in a sweep both reach the sweeper (an error, a NaN), which records the trial as failed."""
    try:
        value = train_job(cfg)
    except ConfigError as err:
        if in_multirun():
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if value != value and not in_multirun():  # NaN: the run diverged; say so in the exit status
        print(f"error: the run diverged (see {job_dir()}/status.yaml); try a lower optimizer.lr",
              file=sys.stderr)
        sys.exit(3)
    return value
