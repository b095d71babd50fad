"""The search space grammar, samplers and pruners.

Grammar (as in Hydra's Optuna plugin, with exact meanings):
- `interval(a, b)`: a float in [a, b]; `int(interval(a, b))`: an int in [a, b];
- `tag(log, interval(a, b))`: the same on a log scale (needs a > 0);
- `choice(x, y, ...)`: one of the values (also config-group options: `schedule=choice(step,cosine)`);
- `range(start, stop[, step])`: Python's and Hydra's range, stopping *before* `stop`
  (`range(1, 3)` gives 1 or 2).
A sweep override on the command line replaces the key's range from `hydra.sweeper.params`.
Trial parameter names are the config keys.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any, cast

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from sweep.errors import ConfigError, check

SpaceHook = Callable[[optuna.Trial, Any], dict[str, Any]]

SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "grid": optuna.samplers.GridSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "qmc": optuna.samplers.QMCSampler,
    "gp": optuna.samplers.GPSampler,
}

PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "none": optuna.pruners.NopPruner,
}

# Defaults chosen for epoch-level reports on short runs; `hydra.sweeper.pruner_options` overrides.
# median and percentile also take hydra.sweeper.n_startup_trials and hydra.sweeper.n_warmup_steps.
EARLIEST_RUNG = 2  # successive halving's first rung never before epoch 2 (`first_rung`)
PRUNER_DEFAULTS: dict[str, dict[str, Any]] = {
    "median": {},
    "percentile": {"percentile": 25.0},
    "successive_halving": {"reduction_factor": 3},  # min_resource: `first_rung` of the run's epochs
    "hyperband": {"min_resource": 1, "reduction_factor": 3},
    "none": {},
}


def _line(override: Override) -> str:
    """The override as typed (`key=value`); OverridesParser always sets it."""
    assert override.input_line is not None
    return override.input_line


def _distribution(key: str, override: Override) -> BaseDistribution:
    value = override.value()
    text = _line(override).split("=", 1)[-1]
    if isinstance(value, ChoiceSweep):
        check(not value.tags, key, text, "choice(...) takes no tags")
        # Hydra's parsed elements as given (Optuna warns on a choice that is not a plain value)
        return CategoricalDistribution(cast(list[CategoricalChoiceType], list(value.list)))
    if isinstance(value, RangeSweep):
        check(not value.tags, key, text, "range(...) takes no tags (log needs interval)")
        start, stop, step = value.start, value.stop, value.step
        assert start is not None and stop is not None  # Hydra's range() always sets both
        check(
            step is not None and step > 0 and stop > start,
            key,
            text,
            "range(start, stop, step) with start < stop and step > 0 (stop is excluded)",
        )
        last = start + math.ceil((stop - start) / step - 1) * step
        if all(isinstance(v, int) for v in (start, stop, step)):
            return IntDistribution(int(start), int(last), step=int(step))
        return FloatDistribution(float(start), float(last), step=float(step))
    if isinstance(value, IntervalSweep):
        low, high, log = value.start, value.end, "log" in value.tags
        assert low is not None and high is not None  # Hydra's interval() always sets both
        check(low < high, key, text, "interval(low, high) with low < high")
        check(not log or low > 0, key, text, "tag(log, interval(low, high)) with low > 0")
        if isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, log=log)
        return FloatDistribution(float(low), float(high), log=log)
    raise ConfigError(key, text, "a sweep: interval(...), tag(log, interval(...)), int(...), choice(...) or range(...)")


GRAMMAR = (
    "a value, or a sweep: interval(low, high), tag(log, interval(low, high)), int(interval(low, high)), "
    "choice(a, b, ...) or range(start, stop[, step])"
)
FUNCTIONS = ("interval", "tag", "choice", "range", "int", "float", "str", "bool", "glob", "shuffle", "sort")


def _grammar_hint(value: str, why: str) -> str:
    """The nearest valid form of a sweep Hydra could not parse, and Hydra's reason in short."""
    import difflib
    import re

    near = re.sub(r"(?<=[\w.)])\s+(?=[-+\w.(])", ", ", value.strip())  # `interval(1e-3 0.5)`: commas
    for name in set(re.findall(r"([A-Za-z_]\w*)\s*\(", near)) - set(FUNCTIONS):
        match = difflib.get_close_matches(name, FUNCTIONS, n=1, cutoff=0.6)
        if match:
            near = re.sub(rf"\b{name}\s*\(", match[0] + "(", near)
    near += ")" * max(0, near.count("(") - near.count(")"))
    lines = [ln for ln in why.strip().splitlines()[1:] if ln and not ln.startswith("See ")]
    reason = lines[0].split("': ", 1)[-1] if lines else "unbalanced parentheses or a stray character"
    return (f"; did you mean {near}?" if near != value.strip() else "") + (f" (Hydra: {reason})" if reason else "")


def parse_overrides(lines: list[str], prefix: str = "") -> list[Override]:
    """Hydra's overrides of `lines`; a line Hydra cannot parse is a ConfigError naming its key
    (`prefix` + key), its value, the grammar and the nearest valid form."""
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    out: list[Override] = []
    for line in lines:
        try:
            out.extend(parser.parse_overrides([line]))
        except OverrideParseException as err:
            key, _, value = line.partition("=")
            raise ConfigError(prefix + key, value, GRAMMAR + _grammar_hint(value, str(err))) from None
    return out


def parse_space(params: Mapping[str, str], arguments: list[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """(search space from `params` updated by the sweep overrides in `arguments`, the fixed overrides)."""
    lines = [f"{k}={v}" for k, v in (params or {}).items() if v is not None]  # null: dropped
    space: dict[str, BaseDistribution] = {}
    for override in parse_overrides(lines, "hydra.sweeper.params."):
        space[override.get_key_element()] = _distribution(override.get_key_element(), override)
    fixed = []
    for override in parse_overrides(arguments):
        key = override.get_key_element()
        if override.is_sweep_override():
            space[key] = _distribution(key, override)
        else:
            space.pop(key, None)
            fixed.append(_line(override))
    return space, fixed


def check_keys(space: Mapping[str, BaseDistribution], cfg: Any, app: str = "train.py") -> None:
    """Every searched key must exist in the job's config (a value, or a config group)."""
    from omegaconf import OmegaConf

    groups = cfg.hydra.runtime.choices if "hydra" in cfg else {}
    missing = object()
    for key in space:
        bare = key.lstrip("+~")
        if key.startswith("+") or bare in groups:
            continue
        check(
            OmegaConf.select(cfg, bare, default=missing) is not missing,
            "hydra.sweeper.params",
            key,
            f"keys of the job's config (python {app} --cfg job lists them), or +key to add one; an "
            "lr-sweep preset's key is mapped by the app's lr_sweep node (docs/adopting.md)",
        )


def suggest(trial: optuna.Trial, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """Sample every parameter of `space` (public Trial API only)."""
    out: dict[str, Any] = {}
    for key, d in space.items():
        if isinstance(d, CategoricalDistribution):
            out[key] = trial.suggest_categorical(key, d.choices)
        elif isinstance(d, IntDistribution):
            out[key] = trial.suggest_int(key, d.low, d.high, step=d.step, log=d.log)
        else:
            assert isinstance(d, FloatDistribution)  # parse_space makes only these three
            out[key] = trial.suggest_float(key, d.low, d.high, step=d.step, log=d.log)
    return out


def grid_of(space: Mapping[str, BaseDistribution]) -> dict[str, list[Any]]:
    """The grid sampler's values: choices and ranges only."""
    grid = {}
    for key, d in space.items():
        if isinstance(d, CategoricalDistribution):
            grid[key] = list(d.choices)
        elif isinstance(d, (IntDistribution, FloatDistribution)) and d.step is not None:
            n = int(round((d.high - d.low) / d.step)) + 1
            grid[key] = [d.low + i * d.step for i in range(n)]
        else:
            raise ConfigError(key, str(d), "choice(...) or range(...) with hydra.sweeper.sampler=grid")
    return grid


def build_sampler(
    name: Any, options: Mapping[str, Any], seed: int | None, space: Mapping[str, BaseDistribution]
) -> optuna.samplers.BaseSampler:
    """A short name (`tpe`, with `sampler_options`) or the Optuna plugin's `{_target_: ..., seed: ...}`
    (its seed replaced by `seed`, which the caller offsets for resumes and workers)."""
    from sweep.search.optuna_forms import build_object, is_target

    if is_target(name):
        extra: dict[str, Any] = {"seed": seed} if "seed" in name else {}
        if str(name["_target_"]).endswith("GridSampler") and "search_space" not in name:
            extra["search_space"] = grid_of(space)
        return build_object(name, "hydra.sweeper.sampler", **extra)
    check(
        name in SAMPLERS,
        "hydra.sweeper.sampler",
        name,
        f"one of {', '.join(SAMPLERS)}, or {{_target_: optuna.samplers.X, ...}}",
    )
    kwargs = dict(options or {})
    if name == "grid":
        return optuna.samplers.GridSampler(grid_of(space), seed=seed)
    if name == "tpe":  # workers sharing a study do not all sample the point a running trial holds
        kwargs.setdefault("constant_liar", True)
    try:
        return SAMPLERS[name](seed=seed, **kwargs)
    except TypeError as err:
        raise ConfigError(
            "hydra.sweeper.sampler_options", kwargs, f"arguments the {name} sampler takes ({err})"
        ) from None


def first_rung(epochs: Any, paused: bool = False) -> int:
    """Successive halving's first rung (`min_resource`) for runs of `epochs`: a sixth of the run, a
    quarter where trials pause at rungs, at least epoch 2 (2 where the epochs are unknown). The
    short-horizon bias (a rung early in the run favours fast starters) follows the share of the run,
    not the epoch: at 24 epochs a rung at epoch 2 cost diabetes/Adam 8% of RMSE over 6 seeds, epoch 4
    0.6%. Pausing stops more trials at each rung (each is ranked against all, not only the earlier
    ones), and spends that saving on a later rung (docs/benchmarks.md: Time to a good learning rate)."""
    try:
        n = int(epochs)
    except (TypeError, ValueError):
        return EARLIEST_RUNG
    return max(EARLIEST_RUNG, round(n / (4 if paused else 6)))


def pruner_spec(
    name: Any,
    options: Mapping[str, Any],
    n_startup_trials: int = 5,
    n_warmup_steps: int = 2,
    epochs: Any = None,
    pause: bool = False,
) -> dict[str, Any]:
    """The pruner as plain data (stored in the study, so jobs in other processes rebuild it); a
    `{_target_: optuna.pruners.X, ...}` is kept as it is. Successive halving's first rung follows
    the run's `epochs` (`first_rung`) unless the options name it."""
    from sweep.search.optuna_forms import is_target
    from sweep.search.pausing import PAUSE_KEY

    if is_target(name):
        return dict(name)
    check(
        name in PRUNERS,
        "hydra.sweeper.pruner",
        name,
        f"one of {', '.join(PRUNERS)}, or {{_target_: optuna.pruners.X, ...}}",
    )
    spec = {"name": name, **PRUNER_DEFAULTS[name]}
    if name == "none":  # pruning off: a preset's options for the pruner it named do not apply
        return spec
    if name in ("median", "percentile"):
        spec.update(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps)
    if name == "successive_halving":  # pause: the pausing trials' first rung (a named min_resource is everyone's)
        spec["min_resource"] = first_rung(epochs)
        spec.update({PAUSE_KEY: dict(options or {}).get("min_resource", first_rung(epochs, True))} if pause else {})
    return {**spec, **dict(options or {})}


def build_pruner(spec: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """The pruner from its plain-data spec (as stored in the study for jobs in other processes)."""
    from sweep.search.optuna_forms import build_object, is_target
    from sweep.search.pausing import PAUSE_KEY, PausingHalving, reduction_factor
    from sweep.search.pruning import FLOOR_KEY, with_floor

    floor = int(spec.get(FLOOR_KEY) or 0)  # hydra.sweeper.min_complete_trials, on any pruner
    pause = spec.get(PAUSE_KEY)  # hydra.sweeper.pause_trials: the pausing trials' first rung
    spec = {k: v for k, v in spec.items() if k not in (FLOOR_KEY, PAUSE_KEY)}
    if is_target(spec):
        return with_floor(build_object(spec, "hydra.sweeper.pruner"), floor)
    name = spec.get("name", "none")
    check(name in PRUNERS, "hydra.sweeper.pruner", name, f"one of {', '.join(PRUNERS)}")
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    try:
        built = with_floor(PRUNERS[name](**kwargs), floor)
    except TypeError as err:
        raise ConfigError(
            "hydra.sweeper.pruner_options", kwargs, f"arguments the {name} pruner takes ({err})"
        ) from None
    if isinstance(pause, int) and not isinstance(pause, bool) and name == "successive_halving":
        return PausingHalving(built, pause, reduction_factor(kwargs))
    return built


def load_hook(
    path: str | None, key: str = "hydra.sweeper.space_hook", short_names: Mapping[str, str] | None = None
) -> Callable[..., Any] | None:
    """`module.function` (or one of `short_names`, which name such a path) -> the function: the
    conditional-space hook, or another hook named by the setting `key`."""
    if not path:
        return None
    module, _, name = (short_names or {}).get(path, path).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        allowed = " or ".join([*(short_names or {}), "an importable module.function"])
        raise ConfigError(key, path, allowed) from None
