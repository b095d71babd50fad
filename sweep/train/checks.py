"""Checks of the whole job config, run before any data is loaded or any model is built."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from sweep.errors import check
from sweep.lr import groups
from sweep.lr import optimizer as optim
from sweep.lr import schedule as schedules
from sweep.resolvers import register
from sweep.train import data, task

register()  # ${lr_sweep.direction:...} in conf/train.yaml

DEVICES = ("auto", "cpu", "cuda")
MODES = ("train", "preview", "lr_find")  # train; draw the schedule; LR range test


def validate(cfg: Mapping[str, Any]) -> None:
    """Raise ConfigError (key, value, what is allowed) for the first bad setting.

    Each part is checked by its owner. train.py's config (it has `mode`) is checked whole; a user's
    own Hydra app that composes some of lr-sweep's config groups gets those checked (optimizer,
    groups, schedule, with `trainer.epochs` where it has one), and its own nodes are its own.
    """
    own_job = "mode" in cfg
    tr = cfg.get("trainer")
    epochs = tr.get("epochs") if tr is not None else None
    if own_job:
        mode = cfg.get("mode")
        check(mode in MODES, "mode", mode, f"one of {', '.join(MODES)}")
        validate_trainer(cfg["trainer"])  # train.py's config always composes trainer
    if cfg.get("optimizer") is not None:
        optim.validate(cfg["optimizer"])
        if cfg.get("schedule") is not None and isinstance(epochs, int):
            schedules.validate(cfg["schedule"], cfg["optimizer"]["lr"], epochs)
    if cfg.get("groups") is not None:
        groups.validate(cfg["groups"], epochs if isinstance(epochs, int) else None)
    if not own_job:
        return
    task_cfg = cfg.get("task") or {"name": task.CLASSIFICATION}
    task.validate(task_cfg)
    data.validate(cfg["data"])
    validate_objective(cfg["objective"], task.METRICS[task_cfg["name"]], task_cfg["name"])
    validate_model(cfg["model"])


def validate_trainer(tr: Mapping[str, Any]) -> None:
    check(tr.get("device") in DEVICES, "trainer.device", tr.get("device"), f"one of {', '.join(DEVICES)}")
    if tr["device"] == "cuda":
        check(
            torch.cuda.is_available(),
            "trainer.device",
            "cuda",
            "auto or cpu: this machine has no CUDA device (torch.cuda.is_available() is False)",
        )
    check(
        isinstance(tr.get("epochs"), int) and tr["epochs"] >= 1, "trainer.epochs", tr.get("epochs"), "an integer >= 1"
    )
    check(
        isinstance(tr.get("batch_size"), int) and tr["batch_size"] >= 1,
        "trainer.batch_size",
        tr.get("batch_size"),
        "an integer >= 1",
    )
    check(
        tr.get("precision") in ("auto", "32", 32, "bf16"), "trainer.precision", tr.get("precision"), "auto, 32 or bf16"
    )
    threads = tr.get("threads")
    check(
        threads is None or (isinstance(threads, int) and threads >= 1),
        "trainer.threads",
        threads,
        "null (torch's default) or an integer >= 1",
    )
    sync_every = tr.get("sync_every", 50)
    check(isinstance(sync_every, int) and sync_every >= 1, "trainer.sync_every", sync_every, "an integer >= 1")
    clip = tr.get("grad_clip")
    check(
        clip is None or (isinstance(clip, (int, float)) and clip > 0), "trainer.grad_clip", clip, "null or a number > 0"
    )
    validate_devices(tr)


def validate_devices(tr: Mapping[str, Any]) -> None:
    """`trainer.devices` (processes of one run) and `trainer.rank_timeout_s`; on CUDA, one GPU per
    process, so no more than this machine has visible (docs/multi-device.md)."""
    devices = tr.get("devices", 1)
    check(
        isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1,
        "trainer.devices",
        devices,
        "an integer >= 1 (processes, one device each)",
    )
    cuda = tr.get("device") == "cuda" or (tr.get("device") == "auto" and torch.cuda.is_available())
    if cuda and devices > 1:
        visible = torch.cuda.device_count()
        check(
            devices <= visible,
            "trainer.devices",
            devices,
            f"at most {visible}: the CUDA devices visible here (CUDA_VISIBLE_DEVICES), one per process",
        )
    check(
        tr["batch_size"] >= devices,
        "trainer.batch_size",
        tr["batch_size"],
        f"at least trainer.devices={devices} (it is the global batch, split across the devices)",
    )
    timeout = tr.get("rank_timeout_s", 300)
    check(
        isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0,
        "trainer.rank_timeout_s",
        timeout,
        "a number of seconds > 0",
    )


def validate_objective(obj: Mapping[str, Any], metrics: tuple[str, ...], task_name: str) -> None:
    check(
        obj.get("metric") in metrics,
        "objective.metric",
        obj.get("metric"),
        f"one of {', '.join(metrics)} (task={task_name})",
    )
    check(
        obj.get("direction") in ("maximize", "minimize"),
        "objective.direction",
        obj.get("direction"),
        "maximize or minimize",
    )
    check(obj.get("reduce") in ("last", "best"), "objective.reduce", obj.get("reduce"), "last or best")


def validate_model(model: Mapping[str, Any]) -> None:
    target = model.get("_target_")
    check(
        isinstance(target, str) and bool(target) and target != "???",
        "model._target_",
        target,
        "an import path of an nn.Module class, e.g. model=custom model._target_=mypackage.Net",
    )
    path = model.get("init_from")
    check(
        path is None or os.path.isfile(str(path)),
        "model.init_from",
        path,
        "the path of an existing checkpoint (python train.py experiment=pretrain writes one)",
    )
