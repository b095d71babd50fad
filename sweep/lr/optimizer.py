"""The optimizer, built from the config and the layer groups; the optimizer config's checks.

Each named group becomes one or two torch param groups (weights with weight decay, norm and bias
parameters without, unless the groups config asks). Every param group carries `group` (the named
group it belongs to: what lr-sweep's logs, preview and tables are keyed by), `name` (unique in the
optimizer: the named group's first param group is called as the group, its undecayed one
`<group>/no_decay`, so Lightning's `LearningRateMonitor` logs `lr-<Optimizer>/backbone`,
`.../backbone/no_decay`, `.../head`), `base_lr`, `mult`, `start_epoch` and `frozen`, so any consumer
(schedules, logging, an LR finder) reads the ratios from one place.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from sweep.errors import ConfigError, check
from sweep.lr.groups import Group
from sweep.plain import is_list, is_number, plain

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
OWN_KEYS = ("name", "lr", "weight_decay", "fused")  # read here, not passed through as they are
NO_DECAY = "no_decay"  # the suffix of a named group's undecayed param group: `backbone/no_decay`


def _settings(cls: type) -> list[str]:
    """The keyword arguments of a torch optimizer class, besides params and lr."""
    return [p for p in inspect.signature(cls).parameters if p not in ("params", "lr")]


def validate(cfg: Mapping[str, Any]) -> None:
    """Check an optimizer config (conf/optimizer/*.yaml); raise ConfigError naming the key."""
    cfg = plain(cfg)
    name = cfg.get("name")
    if name not in OPTIMIZERS:
        raise ConfigError("optimizer", name, f"one of {', '.join(OPTIMIZERS)}")
    lr = cfg.get("lr")
    check(is_number(lr) and lr > 0, "optimizer.lr", lr, "a number > 0")
    fused = cfg.get("fused", "auto")
    check(fused in ("auto", True, False), "optimizer.fused", fused, "auto, true or false")
    wd = cfg.get("weight_decay", 0.0)
    check(is_number(wd) and wd >= 0, "optimizer.weight_decay", wd, "a number >= 0")
    settings = _settings(OPTIMIZERS[name])
    for key in cfg:
        check(
            key in OWN_KEYS or key in settings,
            f"optimizer.{key}",
            cfg[key],
            f"a setting of torch.optim.{OPTIMIZERS[name].__name__}: {', '.join(settings)}",
        )
    momentum = cfg.get("momentum", 0.0)
    check(is_number(momentum) and 0 <= momentum < 1, "optimizer.momentum", momentum, "a number in [0, 1)")
    if cfg.get("nesterov"):
        check(
            momentum > 0 and cfg.get("dampening", 0) == 0,
            "optimizer.nesterov",
            True,
            "false unless optimizer.momentum > 0 and optimizer.dampening = 0",
        )
    betas = cfg.get("betas", (0.9, 0.999))
    ok = is_list(betas) and len(betas) == 2 and all(is_number(b) and 0 <= b < 1 for b in betas)
    check(ok, "optimizer.betas", betas, "two numbers in [0, 1), e.g. [0.9, 0.999]")
    eps = cfg.get("eps", 1e-8)
    check(is_number(eps) and eps > 0, "optimizer.eps", eps, "a number > 0")


def param_groups(
    groups: Sequence[Group], base_lr: float, weight_decay: float, decay_norm_bias: bool | None = None
) -> list[dict[str, Any]]:
    """Torch param groups: per named group, decayed weights and (unless asked) undecayed norm/bias.
    `group` is the named group; `name` is unique (`<group>` for its first, `<group>/no_decay` for a
    second)."""
    out = []
    for g in groups:
        decays_all = g.decay_norm_bias if decay_norm_bias is None else decay_norm_bias
        decayed = [p for _, p in g.params if decays_all or p.ndim > 1]
        plain_params = [p for _, p in g.params if not (decays_all or p.ndim > 1)]
        first = True
        for params, wd in ((decayed, weight_decay), (plain_params, 0.0)):
            if params:
                name = g.name if first else f"{g.name}/{NO_DECAY}"
                first = False
                out.append(
                    {
                        "params": params,
                        "name": name,
                        "group": g.name,
                        "mult": g.mult,
                        "base_lr": base_lr,
                        "start_epoch": g.start_epoch,
                        "frozen": g.frozen,
                        "lr": 0.0 if g.frozen else base_lr * g.mult,
                        "weight_decay": wd,
                    }
                )
    return out


def build_optimizer(
    cfg: Mapping[str, Any], groups: Sequence[Group], decay_norm_bias: bool | None = None
) -> torch.optim.Optimizer:
    """The optimizer over `groups` (from `build_groups`); `cfg` is an optimizer config (a DictConfig
    node or a dict). Whether norm and bias parameters get weight decay comes from the groups config
    (each Group carries it); `decay_norm_bias` overrides that for all groups."""
    cfg = plain(cfg)
    validate(cfg)
    kwargs = {k: v for k, v in cfg.items() if k not in OWN_KEYS}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    for g in groups:
        if g.frozen:
            for _, p in g.params:
                p.requires_grad_(False)
    groups_of_params = param_groups(groups, cfg["lr"], cfg.get("weight_decay", 0.0), decay_norm_bias)
    cls, fused = OPTIMIZERS[cfg["name"]], cfg.get("fused", "auto")
    if fused in ("auto", True):
        try:  # one kernel for all parameters: the step costs 2/3 of the for-loop's (bench/job_vs_hand_loop.py)
            return cls(groups_of_params, lr=cfg["lr"], fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            if fused is True:
                raise
    return cls(groups_of_params, lr=cfg["lr"], **kwargs)
