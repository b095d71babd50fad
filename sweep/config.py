"""Checks of the whole job config, run before any data is loaded or any model is built."""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch

from sweep import optim, schedules
from sweep.errors import check

METRICS = ("val/acc", "val/loss", "train/loss")
DEVICES = ("auto", "cpu", "cuda")


def validate(cfg: Mapping[str, Any]) -> None:
    """Raise ConfigError (key, value, what is allowed) for the first bad setting."""
    mode = cfg.get("mode", "train")
    check(mode == "train", "mode", mode, "train (mode=preview and mode=lr_find are planned, not yet built)")
    tr = cfg["trainer"]
    check(tr.get("device") in DEVICES, "trainer.device", tr.get("device"), f"one of {', '.join(DEVICES)}")
    if tr["device"] == "cuda":
        check(torch.cuda.is_available(), "trainer.device", "cuda",
              "auto or cpu: this machine has no CUDA device (torch.cuda.is_available() is False)")
    check(isinstance(tr.get("epochs"), int) and tr["epochs"] >= 1, "trainer.epochs", tr.get("epochs"),
          "an integer >= 1")
    check(isinstance(tr.get("batch_size"), int) and tr["batch_size"] >= 1, "trainer.batch_size",
          tr.get("batch_size"), "an integer >= 1")
    check(tr.get("precision") in ("auto", "32", 32, "bf16"), "trainer.precision", tr.get("precision"),
          "auto, 32 or bf16")
    threads = tr.get("threads")
    check(threads is None or (isinstance(threads, int) and threads >= 1), "trainer.threads", threads,
          "null (torch's default) or an integer >= 1")
    clip = tr.get("grad_clip")
    check(clip is None or (isinstance(clip, (int, float)) and clip > 0), "trainer.grad_clip", clip,
          "null or a number > 0")
    optim.validate(cfg["optimizer"])
    schedules.validate(cfg["schedule"], cfg["optimizer"]["lr"], tr["epochs"])
    obj = cfg["objective"]
    check(obj.get("metric") in METRICS, "objective.metric", obj.get("metric"), f"one of {', '.join(METRICS)}")
    check(obj.get("direction") in ("maximize", "minimize"), "objective.direction", obj.get("direction"),
          "maximize or minimize")
    check(obj.get("reduce") in ("last", "best"), "objective.reduce", obj.get("reduce"), "last or best")
    g = cfg["groups"]
    mult = g.get("head_lr_mult", 1.0)
    check(isinstance(mult, (int, float)) and mult > 0, "groups.head_lr_mult", mult, "a number > 0")
    fe = g.get("freeze_epochs", 0)
    check(isinstance(fe, int) and 0 <= fe < tr["epochs"], "groups.freeze_epochs", fe,
          f"an integer >= 0 and < trainer.epochs ({tr['epochs']})")
    path = cfg["model"].get("init_from")
    check(path is None or os.path.isfile(str(path)), "model.init_from", path,
          "the path of an existing checkpoint (python train.py experiment=pretrain writes one)")
