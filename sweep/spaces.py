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
        out["schedule.gamma"] = trial.suggest_float("schedule.gamma", 0.7, 0.99)
    else:
        out["schedule.floor"] = trial.suggest_float("schedule.floor", 1e-3, 0.3, log=True)
    max_warmup = max(0, min(epochs - 1, epochs // 4))
    out["schedule.warmup_epochs"] = trial.suggest_int("schedule.warmup_epochs", 0, max_warmup)
    return out


def finetune_space(trial: optuna.Trial, cfg: Any) -> dict[str, Any]:
    """Fine-tuning: the schedule space plus layer decay (when the groups have it)."""
    out = schedule_space(trial, cfg)
    if cfg.groups.name == "layer_decay":
        out["groups.decay"] = trial.suggest_float("groups.decay", 0.3, 1.0)
    return out
