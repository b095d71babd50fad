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

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution

from sweep.errors import app_name, check
from sweep.search import declaration as declared_keys
from sweep.search import optuna_forms
from sweep.search import space as search
from sweep.search.processes import is_worker, job_devices, resolve_workers
from sweep.search.pruning import FLOOR_KEY
from sweep.search.results import format_override
from sweep.search.runners import task_config
from sweep.search.settings import SweeperConf
from sweep.search.space import SpaceHook
from sweep.search.storage import is_url

BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
LR_BOUNDS_HOOKS = {"lr_find": "sweep.tools.range_test.find"}  # short names for hydra.sweeper.lr_bounds

LRBoundsHook = Callable[[DictConfig, str], Any]

log = logging.getLogger(__name__)


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
    directions: list[str] = field(default_factory=lambda: ["maximize"])  # several: a multi-objective study
    custom_space: Callable[..., Any] | None = None  # the Optuna plugin's custom_search_space(job config, trial)
    enqueue: list[dict[str, Any]] = field(default_factory=list)  # hydra.sweeper.enqueue, keys as the app names them
    lr_key: str = "optimizer.lr"  # the key that is the base LR (the app's lr_sweep.lr)
    rerun: list[str] = field(default_factory=list)  # the fixed overrides a single rerun needs (sweep.search.rerun)


def in_process(config: DictConfig) -> bool:
    """Jobs run in this process (Hydra's basic launcher), with their trials handed over directly."""
    return OmegaConf.select(config, "hydra.launcher._target_") == BASIC_LAUNCHER


def check_settings(c: SweeperConf, jobs_in_process: bool) -> int:
    """The checks of the plain settings; returns the number of worker processes."""
    check(isinstance(c.n_trials, int) and c.n_trials >= 1, "hydra.sweeper.n_trials", c.n_trials, "an integer >= 1")
    check(
        isinstance(c.trials_per_job, int) and c.trials_per_job >= 1,
        "hydra.sweeper.trials_per_job",
        c.trials_per_job,
        "an integer >= 1",
    )
    check(isinstance(c.n_jobs, int) and c.n_jobs >= 1, "hydra.sweeper.n_jobs", c.n_jobs, "an integer >= 1")
    optuna_forms.directions(c.direction)
    check(
        c.max_failure_rate is None or 0 <= c.max_failure_rate <= 1,
        "hydra.sweeper.max_failure_rate",
        c.max_failure_rate,
        "null (off) or a number in [0, 1]",
    )
    check(
        c.max_consecutive_failures >= 1,
        "hydra.sweeper.max_consecutive_failures",
        c.max_consecutive_failures,
        "an integer >= 1",
    )
    check(
        c.keep_checkpoints is None or (isinstance(c.keep_checkpoints, int) and c.keep_checkpoints >= 0),
        "hydra.sweeper.keep_checkpoints",
        c.keep_checkpoints,
        "null (keep all) or an integer >= 0",
    )
    check(
        c.trials_per_job == 1 or jobs_in_process,
        "hydra.sweeper.trials_per_job",
        c.trials_per_job,
        "1 with a Hydra launcher other than the basic one (trials trained together run in the sweep's process)",
    )
    return resolve_workers(c.workers)


def compose_job(
    c: SweeperConf, config: DictConfig, hydra_context: HydraContext, arguments: list[str]
) -> tuple[DictConfig, list[str], dict[str, Any]]:
    """(the job config composed from the fixed overrides, those overrides, the app's lr_sweep
    declaration): the command line's fixed overrides, then the search config's `fixed` values (as
    the app names the keys) where the command line does not set them."""
    _, fixed = search.parse_space({}, arguments)
    job_cfg = hydra_context.config_loader.load_sweep_config(config, list(fixed))
    declaration = declared_keys.declared(job_cfg)
    given = {line.split("=", 1)[0].lstrip("+~") for line in fixed}
    preset = {
        k: v
        for k, v in declared_keys.mapped(c.fixed, declaration).items()
        if v is not None and k.lstrip("+~") not in given
    }
    if preset:
        declared_keys.check_fixed(preset, job_cfg, app_name())
        fixed = [format_override(k, v) for k, v in preset.items()] + list(fixed)
        job_cfg = hydra_context.config_loader.load_sweep_config(config, list(fixed))
    return job_cfg, list(fixed), declaration


def pruning(c: SweeperConf, directions: list[str], epochs: Any = None, alone: bool = True) -> dict[str, Any]:
    """The pruner's spec for trials of `epochs` (the app's, where it declares them); none for
    several objectives (Optuna prunes on one value), said once. Successive halving pauses trials
    (`pause_trials`) where the sweep is `alone`: one process, no other worker on its study, its jobs
    in that process one at a time (a paused trial waits for the process that paused it, and resumes
    alone)."""
    if len(directions) > 1:
        if c.pruner not in ("none", None):
            log.info("pruning is off: a study with %d objectives cannot be pruned", len(directions))
        return search.pruner_spec("none", {})
    check(isinstance(c.pause_trials, bool), "hydra.sweeper.pause_trials", c.pause_trials, "true or false")
    pause = c.pause_trials and alone and c.n_jobs == 1 and c.trials_per_job == 1
    spec = search.pruner_spec(c.pruner, c.pruner_options, c.n_startup_trials, c.n_warmup_steps, epochs, pause)
    check(
        isinstance(c.min_complete_trials, int) and c.min_complete_trials >= 0,
        "hydra.sweeper.min_complete_trials",
        c.min_complete_trials,
        "an integer >= 0 (0: no floor)",
    )
    return {**spec, FLOOR_KEY: c.min_complete_trials} if c.min_complete_trials and spec.get("name") != "none" else spec


def make_plan(c: SweeperConf, config: DictConfig, hydra_context: HydraContext, arguments: list[str]) -> Plan:
    """Every check before the first trial (see the module docstring), and what they build."""
    jobs_in_process = in_process(config)
    n_workers = check_settings(c, jobs_in_process)
    directions = optuna_forms.directions(c.direction)
    lr_bounds = search.load_hook(c.lr_bounds, "hydra.sweeper.lr_bounds", LR_BOUNDS_HOOKS)
    job_cfg, fixed, declaration = compose_job(c, config, hydra_context, list(arguments))
    devices = job_devices(job_cfg)  # trainer.devices: the processes (GPUs) each trial trains on
    check(
        devices == 1 or c.trials_per_job == 1,
        "hydra.sweeper.trials_per_job",
        c.trials_per_job,
        f"1 with trainer.devices={devices} (trials trained together are one stacked model on one device)",
    )
    n_workers = resolve_workers(c.workers, devices) if devices > 1 else n_workers
    params = {**optuna_forms.search_space_params(c.search_space), **dict(c.params or {})}
    space, _ = search.parse_space(declared_keys.mapped(params, declaration), arguments)
    check(
        bool(space) or bool(c.space_hook) or bool(c.custom_search_space) or c.lr_bounds is not None,
        "hydra.sweeper.params",
        dict(c.params or {}),
        "at least one searched key (or a space_hook)",
    )
    search.check_keys(space, job_cfg, app_name())
    if c.config_check:  # the job's own checks, so a bad fixed setting fails once, not per trial
        check_config = search.load_hook(c.config_check, "hydra.sweeper.config_check")
        assert check_config is not None  # a named hook loads or raises ConfigError
        parts = any(declaration.get(part) for part in declared_keys.PREFIXES)
        check_config(declared_keys.check_view(job_cfg, declaration) if parts else task_config(job_cfg))
    alone = n_workers == 1 and jobs_in_process and not is_worker()  # workers run with workers=1
    pruner_spec = pruning(c, directions, declared_keys.run_epochs(job_cfg, declaration), alone)
    pruner = search.build_pruner(pruner_spec)
    sweep_dir = os.path.abspath(str(config.hydra.sweep.dir))
    storage_spec = c.storage or os.path.join(sweep_dir, "study.journal")
    if not is_url(storage_spec):
        storage_spec = os.path.abspath(storage_spec)
    study_name = c.study_name or os.path.basename(sweep_dir.rstrip("/")) or "lr-sweep"
    enqueue = [e for e in (declared_keys.mapped(dict(p), declaration) for p in c.enqueue or []) if e]
    return Plan(
        space,
        list(fixed),
        job_cfg,
        search.load_hook(c.space_hook),
        lr_bounds,
        pruner_spec,
        pruner,
        sweep_dir,
        storage_spec,
        study_name,
        jobs_in_process,
        n_workers,
        directions,
        search.load_hook(c.custom_search_space, "hydra.sweeper.custom_search_space"),
        enqueue,
        declared_keys.lr_key(declaration),
    )
