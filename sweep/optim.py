"""The optimizer, built from the config and the layer groups.

Each named group becomes one or two torch param groups (weights with weight decay, norm and bias
parameters without, unless asked). Every param group carries `name`, `base_lr`, `mult` and
`start_epoch`, so any consumer (schedules, logging, an LR finder) reads the ratios from one place.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from sweep.errors import check
from sweep.groups import Group

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def validate(cfg: Mapping[str, Any]) -> None:
    check(cfg.get("name") in OPTIMIZERS, "optimizer", cfg.get("name"), f"one of {', '.join(OPTIMIZERS)}")
    lr = cfg.get("lr")
    check(isinstance(lr, (int, float)) and lr > 0, "optimizer.lr", lr, "a number > 0")
    fused = cfg.get("fused", "auto")
    check(fused in ("auto", True, False), "optimizer.fused", fused, "auto, true or false")
    wd = cfg.get("weight_decay", 0.0)
    check(isinstance(wd, (int, float)) and wd >= 0, "optimizer.weight_decay", wd, "a number >= 0")


def param_groups(groups: Sequence[Group], base_lr: float, weight_decay: float,
                 decay_norm_bias: bool) -> list[dict[str, Any]]:
    out = []
    for g in groups:
        decayed = [p for _, p in g.params if decay_norm_bias or p.ndim > 1]
        plain = [p for _, p in g.params if not (decay_norm_bias or p.ndim > 1)]
        for params, wd in ((decayed, weight_decay), (plain, 0.0)):
            if params:
                out.append({"params": params, "name": g.name, "mult": g.mult, "base_lr": base_lr,
                            "start_epoch": g.start_epoch, "frozen": g.frozen,
                            "lr": 0.0 if g.frozen else base_lr * g.mult, "weight_decay": wd})
    return out


def build_optimizer(cfg: Mapping[str, Any], groups: Sequence[Group], decay_norm_bias: bool) -> torch.optim.Optimizer:
    validate(cfg)
    kwargs = {k: v for k, v in cfg.items() if k not in ("name", "lr", "weight_decay", "fused")}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    for g in groups:
        if g.frozen:
            for _, p in g.params:
                p.requires_grad_(False)
    pgs = param_groups(groups, cfg["lr"], cfg.get("weight_decay", 0.0), decay_norm_bias)
    cls, fused = OPTIMIZERS[cfg["name"]], cfg.get("fused", "auto")
    if fused in ("auto", True):
        try:  # one kernel for all parameters: the step costs 2/3 of the for-loop's (bench/job_vs_hand_loop.py)
            return cls(pgs, lr=cfg["lr"], fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            if fused is True:
                raise
    return cls(pgs, lr=cfg["lr"], **kwargs)
