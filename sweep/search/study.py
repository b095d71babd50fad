"""Opening the study a sweep runs on: create it or load it (resume, or another worker made it),
with a sampler that does not replay a resumed study's trials, the pruner stored for jobs in other
processes, and the LR bounds measured once per study."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from sweep.errors import check
from sweep.search import keys, resume
from sweep.search import space as search
from sweep.search.optuna_forms import directions, sampler_seed
from sweep.search.plan import Plan
from sweep.search.runners import task_config
from sweep.search.settings import SweeperConf
from sweep.search.storage import create_or_load_study, masked, open_storage

log = logging.getLogger(__name__)

SEED_STRIDE = 7919  # between the seeds of workers on one study (a prime: no two workers meet)


def count(study: optuna.Study, states: Sequence[TrialState]) -> int:
    """Trials in `states`; a diverged trial (held as PRUNED) is a failure and is not counted."""
    return sum(not keys.diverged(t.user_attrs) for t in study.get_trials(deepcopy=False, states=tuple(states)))


def open_study(c: SweeperConf, plan: Plan) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    """Create or load the study, with a sampler that does not replay a resumed study's trials."""
    storage = open_storage(plan.storage_spec)
    try:
        n_before = len(optuna.load_study(study_name=plan.study_name, storage=storage).get_trials(deepcopy=False))
    except KeyError:
        n_before = 0
    first_seed = sampler_seed(c.sampler, c.seed)
    seed = None if first_seed is None else first_seed + n_before + SEED_STRIDE * c.worker_index
    sampler = search.build_sampler(c.sampler, c.sampler_options, seed, plan.space)
    wanted = directions(c.direction)
    study = create_or_load_study(storage, plan.study_name, wanted, sampler, plan.pruner)
    existing = [d.name.lower() for d in study.directions]
    check(
        existing == wanted,
        "hydra.sweeper.direction",
        c.direction,
        f"the direction of the existing study '{plan.study_name}' ({'/'.join(existing)})",
    )
    if study.user_attrs.get(keys.LR_KEY) != plan.lr_key:
        study.set_user_attr(keys.LR_KEY, plan.lr_key)  # plots and results read the LR from this key
    searched = [*plan.space, *([plan.lr_key] if plan.lr_bounds is not None else [])]
    resume.check_settings(study, resume.fixed_settings(plan.job_cfg, searched), c.allow_changed_settings)
    if study.user_attrs.get(keys.PRUNER) != plan.pruner_spec:
        study.set_user_attr(keys.PRUNER, plan.pruner_spec)  # jobs in other processes rebuild it from here
    if c.enqueue_current and n_before == 0:
        current = {k: OmegaConf.select(plan.job_cfg, k) for k in plan.space}
        study.enqueue_trial({k: v for k, v in current.items() if v is not None}, skip_if_exists=True)
    for partial in plan.enqueue if n_before == 0 else []:  # e.g. the one-LR baseline of the presets
        inside = {k: v for k, v in partial.items() if k not in plan.space or fits(plan.space[k], v)}
        if inside:  # a range the command line narrowed past the value (head_lr_mult from 2) drops it
            study.enqueue_trial(inside, skip_if_exists=True)
    log.info(
        "study '%s' in %s: %d trials so far, %d finished of %d",
        plan.study_name,
        masked(plan.storage_spec),
        n_before,
        count(study, keys.FINISHED),
        c.n_trials,
    )
    return study, storage


def fits(dist: object, value: object) -> bool:
    """Whether `value` is one `dist` can sample (an enqueued value outside it would run anyway)."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return value in dist.choices
    low, high = getattr(dist, "low", None), getattr(dist, "high", None)
    return isinstance(value, (int, float)) and low is not None and low <= value <= high  # type: ignore[operator]


def interval_of(found: object) -> tuple[float, float]:
    """(low, high) from what an lr_bounds hook returns: a pair, or a result with an `interval`."""
    pair: Any = getattr(found, "interval", found)
    low, high = pair
    return float(low), float(high)


def apply_lr_bounds(name: str | None, plan: Plan, study: optuna.Study) -> None:
    """`lr_bounds=NAME`: search optimizer.lr in the hook's interval, measured once per study (kept
    in the study, so a resumed or second worker uses the same bounds)."""
    if plan.lr_bounds is None:
        return
    bounds = study.user_attrs.get(keys.LR_BOUNDS)
    if bounds is None:
        low, high = interval_of(plan.lr_bounds(task_config(plan.job_cfg), plan.sweep_dir))
        check(
            0 < low < high,
            "hydra.sweeper.lr_bounds",
            name,
            f"a hook whose interval has 0 < low < high (it returned [{low:.3g}, {high:.3g}])",
        )
        study.set_user_attr(keys.LR_BOUNDS, [low, high])
        bounds = study.user_attrs[keys.LR_BOUNDS]  # read back: a worker that wrote first wins for all
        log.info("%s: optimizer.lr searched in [%.3g, %.3g] (its files, if any, in %s)", name, *bounds, plan.sweep_dir)
    else:
        log.info("%s: the study's interval [%.3g, %.3g], measured before", name, *bounds)
    plan.space[plan.lr_key] = FloatDistribution(float(bounds[0]), float(bounds[1]), log=True)
