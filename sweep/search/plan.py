"""The set-up checks: every `hydra.sweeper.*` setting, the search space and the job's own config
checked before the first trial, and what they build (a `Plan`), which the sweep then uses as built:
the space, the hooks, the pruner, where the study lives and how jobs run.

Hooks are functions named by a string (`module.function`) and loaded here once:
- `space_hook(trial, job config) -> overrides`: a conditional space (`sweep.search.space_hooks`);
- `config_check(job config)`: the job's own checks, raising on a bad fixed setting, run once here;
- `lr_bounds(job config, sweep dir) -> (low, high)`, or a result with an `interval` (low, high):
  the interval `optimizer.lr` is searched in, measured once per study (`sweep.search.study`).
  `lr_find` is short for the LR range test, `sweep.tools.range_test.find`: the sweeper knows it only
  by this name, so it imports nothing about models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import optuna
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution

from sweep.errors import check
from sweep.search import space as search
from sweep.search.processes import resolve_workers
from sweep.search.runners import task_config
from sweep.search.settings import SweeperConf
from sweep.search.space import SpaceHook
from sweep.search.storage import is_url

BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
LR_BOUNDS_HOOKS = {"lr_find": "sweep.tools.range_test.find"}  # short names for hydra.sweeper.lr_bounds

LRBoundsHook = Callable[[DictConfig, str], Any]


@dataclass
class Plan:
    """Everything the set-up checks build, used as built by the sweep."""

    space: dict[str, BaseDistribution]
    fixed: list[str]
    job_cfg: DictConfig
    hook: SpaceHook | None
    lr_bounds: LRBoundsHook | None
    pruner_spec: dict[str, Any]
    pruner: optuna.pruners.BasePruner
    sweep_dir: str
    storage_spec: str
    study_name: str
    in_process: bool  # jobs run in the sweep's process (Hydra's basic launcher is configured)
    n_workers: int


def in_process(config: DictConfig) -> bool:
    """Jobs run in this process (Hydra's basic launcher), with their trials handed over directly."""
    return OmegaConf.select(config, "hydra.launcher._target_") == BASIC_LAUNCHER


def check_settings(c: SweeperConf, jobs_in_process: bool) -> int:
    """The checks of the plain settings; returns the number of worker processes."""
    check(isinstance(c.n_trials, int) and c.n_trials >= 1, "hydra.sweeper.n_trials", c.n_trials,
          "an integer >= 1")
    check(isinstance(c.trials_per_job, int) and c.trials_per_job >= 1, "hydra.sweeper.trials_per_job",
          c.trials_per_job, "an integer >= 1")
    check(isinstance(c.n_jobs, int) and c.n_jobs >= 1, "hydra.sweeper.n_jobs", c.n_jobs, "an integer >= 1")
    check(c.direction in ("maximize", "minimize"), "hydra.sweeper.direction", c.direction,
          "maximize or minimize")
    check(c.max_consecutive_failures >= 1, "hydra.sweeper.max_consecutive_failures",
          c.max_consecutive_failures, "an integer >= 1")
    check(c.keep_checkpoints is None or (isinstance(c.keep_checkpoints, int) and c.keep_checkpoints >= 0),
          "hydra.sweeper.keep_checkpoints", c.keep_checkpoints, "null (keep all) or an integer >= 0")
    check(c.trials_per_job == 1 or jobs_in_process, "hydra.sweeper.trials_per_job", c.trials_per_job,
          "1 with a Hydra launcher other than the basic one (trials trained together run in the sweep's process)")
    return resolve_workers(c.workers)


def make_plan(c: SweeperConf, config: DictConfig, hydra_context: HydraContext, arguments: list[str]) -> Plan:
    """Every check before the first trial (see the module docstring), and what they build."""
    jobs_in_process = in_process(config)
    n_workers = check_settings(c, jobs_in_process)
    lr_bounds = search.load_hook(c.lr_bounds, "hydra.sweeper.lr_bounds", LR_BOUNDS_HOOKS)
    space, fixed = search.parse_space(dict(c.params or {}), arguments)
    check(bool(space) or bool(c.space_hook) or c.lr_bounds is not None, "hydra.sweeper.params",
          dict(c.params or {}), "at least one searched key (or a space_hook)")
    job_cfg = hydra_context.config_loader.load_sweep_config(config, list(fixed))
    search.check_keys(space, job_cfg)
    if c.config_check:  # the job's own checks, so a bad fixed setting fails once, not per trial
        check_config = search.load_hook(c.config_check, "hydra.sweeper.config_check")
        check_config(task_config(job_cfg))
    pruner_spec = search.pruner_spec(c.pruner, c.pruner_options, c.n_startup_trials, c.n_warmup_steps)
    pruner = search.build_pruner(pruner_spec)
    sweep_dir = os.path.abspath(str(config.hydra.sweep.dir))
    storage_spec = c.storage or os.path.join(sweep_dir, "study.journal")
    if not is_url(storage_spec):
        storage_spec = os.path.abspath(storage_spec)
    study_name = c.study_name or os.path.basename(sweep_dir.rstrip("/")) or "lr-sweep"
    return Plan(space, list(fixed), job_cfg, search.load_hook(c.space_hook), lr_bounds, pruner_spec, pruner,
                sweep_dir, storage_spec, study_name, jobs_in_process, n_workers)
