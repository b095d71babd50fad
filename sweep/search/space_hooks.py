"""Conditional search spaces: typed hooks `(trial, job config) -> overrides` for `hydra.sweeper.space_hook`.

A hook samples with the public Trial API and returns config overrides; the parameter names are the
config keys, so a trial's params rerun it as overrides. Use them where one choice decides which
other parameters exist (the schedule kind and its decay parameters) or bounds another (warmup
shorter than the run).
"""

from __future__ import annotations

from typing import Any

import optuna


def schedule_space(trial: optuna.Trial, cfg: Any) -> dict[str, Any]:
    """The schedule kind, its decay parameters and a warmup shorter than the run."""
    epochs = int(cfg.trainer.epochs)
    kind = trial.suggest_categorical("schedule", ["step", "exponential", "cosine"])
    out: dict[str, Any] = {"schedule": kind}
    if kind == "step":
        out["schedule.step_size"] = trial.suggest_int("schedule.step_size", 1, max(1, epochs // 2))
        out["schedule.gamma"] = trial.suggest_float("schedule.gamma", 0.05, 0.9, log=True)
    elif kind == "exponential":
        # log like step's gamma: Optuna refuses one name with two log settings in a study
        out["schedule.gamma"] = trial.suggest_float("schedule.gamma", 0.7, 0.99, log=True)
    else:
        out["schedule.floor"] = trial.suggest_float("schedule.floor", 1e-3, 0.3, log=True)
    max_warmup = max(0, min(epochs - 1, epochs // 4))
    out["schedule.warmup_epochs"] = trial.suggest_int("schedule.warmup_epochs", 0, max_warmup)
    return out


def _fixed_keys(cfg: Any) -> set[str]:
    """Keys the command line set to one value (the job config's task overrides)."""
    try:
        task = list(cfg.hydra.overrides.task)
    except Exception:  # a config without the hydra node (a test, a script)
        return set()
    return {o.split("=", 1)[0].lstrip("+~") for o in task if "=" in o}


def finetune_space(trial: optuna.Trial, cfg: Any) -> dict[str, Any]:
    """Fine-tuning: the schedule space, the head multiplier where the groups have one
    (backbone_head, layer_decay) and the layer decay (layer_decay); `search=finetune` adds the
    base LR. With groups=single the same hook searches the schedule only, so the three layer-group
    setups can be compared under one search config.

    A key the command line fixes (groups.head_lr_mult=10) or gives its own range
    ('groups.decay=interval(0.5, 1)') is left to it.
    """
    out = schedule_space(trial, cfg)
    taken = _fixed_keys(cfg) | set(trial.params)
    groups = cfg.groups
    if "head_lr_mult" in groups and "groups.head_lr_mult" not in taken:
        # the new head's LR over the backbone's, log-uniform: 1 (one LR) as reachable as 30 (the head
        # learns, the backbone barely moves). In [1, 100] 1.5-71 was drawn and 1 hardly ever, where
        # the fine-tune grid's best had 1 (bench/search_efficiency.py)
        out["groups.head_lr_mult"] = trial.suggest_float("groups.head_lr_mult", 1.0, 30.0, log=True)
    if groups.get("name") == "layer_decay" and "groups.decay" not in taken:
        # per parameter layer from the head; 1 = backbone_head. The fine-tuning CNN has 6 (conv and
        # norm of 3 blocks), so 0.5 already gives its first conv 0.5 ** 6 ~ 0.016 of the head's LR
        out["groups.decay"] = trial.suggest_float("groups.decay", 0.5, 1.0)
    return out
