"""The overrides that rerun the best trial as a single run, with everything the trial had.

A search config (`search=lr`, or an app's own `hparams_search=mnist_optuna` written for the Optuna
plugin) both switches a run into a sweep and may set values of the job (`trainer.epochs: 10`, an
`optimized_metric`). The rerun line must drop the first and keep the second: a group choice on the
command line is a search config when leaving it out changes `hydra.sweeper` or `hydra.mode`; it is
dropped, and every job value it set is written as an override instead (the job config composed
with it against the one composed without it). The search config's `hydra.sweeper.fixed` values are
overrides of the sweep already (`sweep.search.plan`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweep.search.results import format_override


def _leaves(node: Any, prefix: str, into: dict[str, Any]) -> dict[str, Any]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            _leaves(value, f"{prefix}{key}.", into)
    else:
        into[prefix[:-1]] = node
    return into


def _sweeps(cfg: DictConfig) -> Any:
    return OmegaConf.to_container(cfg.hydra.sweeper, resolve=False), cfg.hydra.get("mode")


def _job(cfg: DictConfig) -> dict[str, Any]:
    plain = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(plain, dict)  # a DictConfig converts to a dict
    plain.pop("hydra", None)
    return _leaves(plain, "", {})


def rerun_overrides(fixed: Sequence[str], job_cfg: DictConfig, compose: Any) -> list[str]:
    """`fixed` without the search configs' choices, plus the job values those set; `compose(lines)`
    composes the sweep's config from other overrides."""
    choices = job_cfg.hydra.runtime.choices
    searches = []
    for line in fixed:
        key = line.split("=", 1)[0].lstrip("+~")
        if key not in choices or key.startswith("hydra"):
            continue
        try:  # this choice alone left out
            base = compose([other for other in fixed if other != line])
        except Exception:  # noqa: BLE001 - a config that needs this choice: not a search config
            continue
        if _sweeps(base) != _sweeps(job_cfg):
            searches.append(line)
    if not searches:
        return list(fixed)
    kept = [line for line in fixed if line not in searches]
    ours, theirs = _job(job_cfg), _job(compose(kept))
    missing = object()
    extra = []
    for key, value in ours.items():
        before = theirs.get(key, missing)
        line = f"{key}=null" if value is None else format_override(key, value)
        if before is missing:
            extra.append("++" + line)
        elif before != value:
            extra.append(line)
    return kept + extra
