"""The Hydra Optuna plugin's config forms, read as the plugin reads them, so a search config written
for `hydra-optuna-sweeper` runs with one changed line (`override /hydra/sweeper: lr_sweep`):

- `sampler`/`pruner` as `{_target_: optuna.samplers.TPESampler, seed: 1234, ...}` (lr-sweep's short
  names, `sampler: tpe`, stay); the objects are built here, with the sampler's `seed` offset as
  lr-sweep offsets its own (a resumed study does not replay its first trials);
- `direction` as a string or a list (several objectives: a multi-objective study, no pruning);
- `search_space`, the plugin's older form (`key: {type: float, low: .., high: .., log: true}`),
  turned into the grammar `params` uses;
- `custom_search_space`: `module.function(job config, trial)` that suggests more keys itself; the
  keys it suggested become the trial's overrides (a key the config lacks is written `+key`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from sweep.errors import ConfigError, check

DIRECTIONS = ("maximize", "minimize")


def directions(value: Any) -> list[str]:
    """`direction` as a list of `maximize`/`minimize` (one entry: a single-objective study)."""
    listed = [value] if isinstance(value, str) or value is None else list(value)
    for d in listed:
        check(
            str(d).lower() in DIRECTIONS and bool(listed),
            "hydra.sweeper.direction",
            value,
            "maximize or minimize, or a list of them (several objectives); lr-sweep's presets read it "
            "from the app's lr_sweep.direction",
        )
    return [str(d).lower() for d in listed]


def is_target(value: Any) -> bool:
    return isinstance(value, Mapping) and "_target_" in value


def build_object(spec: Mapping[str, Any], key: str, **extra: Any) -> Any:
    """`{_target_: module.Class, **kwargs}` -> module.Class(**kwargs, **extra); one line on a bad name
    or a bad argument."""
    target = str(spec["_target_"])
    module, _, name = target.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"{key}._target_", target, "an importable module.Class") from None
    kwargs = {k: v for k, v in spec.items() if not k.startswith("_")}
    kwargs.update(extra)
    try:
        return factory(**kwargs)
    except TypeError as err:
        raise ConfigError(key, dict(spec), f"arguments {name} takes ({err})") from None


def sampler_seed(spec: Any, own_seed: int | None) -> int | None:
    """The seed a sampler starts from: a `_target_` sampler's own `seed`, else hydra.sweeper.seed."""
    return spec.get("seed", own_seed) if is_target(spec) else own_seed


SPACE_TYPES = ("float", "int", "categorical")


def search_space_params(search_space: Mapping[str, Any] | None) -> dict[str, str]:
    """The plugin's older `search_space` (key -> {type, low, high, step, log, choices}) as `params`
    lines in the override grammar."""
    out: dict[str, str] = {}
    for key, d in (search_space or {}).items():
        kind = d.get("type") if isinstance(d, Mapping) else None
        check(
            kind in SPACE_TYPES,
            f"hydra.sweeper.search_space.{key}",
            d,
            "{type: float|int|categorical, ...} (low/high/step/log or choices)",
        )
        if kind == "categorical":
            out[key] = "choice(" + ", ".join(repr(c) if isinstance(c, str) else str(c) for c in d["choices"]) + ")"
            continue
        low, high = d["low"], d["high"]
        if d.get("step") is not None:  # the plugin includes `high` in a stepped space
            out[key] = (
                f"range({low}, {high + d['step']}, {d['step']})"
                if kind == "int"
                else f"range({float(low)}, {float(high) + float(d['step']) / 2}, {float(d['step'])})"
            )
            continue
        inner = f"interval({low}, {high})" if kind == "int" else f"interval({float(low)}, {float(high)})"
        inner = f"int({inner})" if kind == "int" else inner
        out[key] = f"tag(log, {inner})" if d.get("log") else inner
    return out


def custom_overrides(trial: Any, before: set[str], job_keys: Any) -> dict[str, Any]:
    """The keys a `custom_search_space` function suggested (trial params it added), as overrides."""
    from omegaconf import OmegaConf

    missing = object()
    out = {}
    for key, value in trial.params.items():
        if key in before:
            continue
        bare = key.lstrip("+")
        known = key.startswith("+") or OmegaConf.select(job_keys, bare, default=missing) is not missing
        out[key if known else f"+{bare}"] = value
    return out
