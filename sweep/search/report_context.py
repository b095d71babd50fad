"""What the LR report reads around a study, from the sweep dir: the objective's name, the sweep's
command, the rerun command, the validation size, the range test's curve, the trials' fixed settings
and their TensorBoard LR curves. Every file is optional: a missing one leaves its item out."""

from __future__ import annotations

import csv
import os
import re
import shlex
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial

from sweep.search import keys

VAL_SAMPLES = re.compile(r"(\d+) val samples")


def trial_job_dir(t: FrozenTrial, sweep_dir: str) -> str:
    """`<sweep dir>/<number>`, unless a worker elsewhere recorded its own (as the results say)."""
    return str(t.user_attrs.get(keys.JOB_DIR) or os.path.join(sweep_dir, str(t.number)))


@dataclass
class Context:
    sweep_dir: str | None
    metric: str = "objective"
    command: str = "python train.py -m"
    rerun: str | None = None
    lr_find: list[tuple[float, float]] | None = None
    changed: list[str] = field(default_factory=list)


def _load(path: str) -> Any:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.load(path) if os.path.isfile(path) else None
    except Exception:  # noqa: BLE001 - a broken file leaves its item out
        return None


def _select(cfg: Any, key: str) -> Any:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
    except Exception:  # noqa: BLE001
        return None


def read_context(sweep_dir: str | None, study_attrs: dict[str, Any], trials: Sequence[FrozenTrial]) -> Context:
    ctx = Context(sweep_dir, changed=recorded_changes(study_attrs))
    if sweep_dir is None:
        return ctx
    results = _load(os.path.join(sweep_dir, "optimization_results.yaml"))
    rerun = _select(results, "best.command") if results is not None else None
    ctx.rerun = str(rerun) if rerun else None
    app = " ".join(shlex.split(ctx.rerun)[:2]) if ctx.rerun else "python train.py"
    multirun = _load(os.path.join(sweep_dir, "multirun.yaml"))
    if multirun is not None:
        overrides = [
            *(_select(multirun, "hydra.overrides.hydra") or []),
            *(_select(multirun, "hydra.overrides.task") or []),
        ]
        ctx.command = shlex.join([*shlex.split(app), "-m", *[str(o) for o in overrides]])
    ctx.metric = objective_metric(sweep_dir, study_attrs)
    ctx.lr_find = read_lr_find(sweep_dir)
    ctx.changed = ctx.changed or changed_settings(trials, sweep_dir)
    return ctx


def recorded_changes(study_attrs: dict[str, Any]) -> list[str]:
    """ "from trial #4: trainer.epochs 4 -> 2" for each resume that changed the fixed settings on
    purpose (the study's `settings_changes` attribute)."""
    out = []
    for entry in study_attrs.get("settings_changes") or []:
        changes = entry.get("changes") or {} if isinstance(entry, dict) else {}
        text = ", ".join(
            f"{k} {v[0]} -> {v[1]}" if isinstance(v, (list, tuple)) and len(v) == 2 else f"{k} {v}"
            for k, v in changes.items()
        )
        if text:
            out.append(f"from trial #{entry.get('from_trial', '?')}: {text}")
    return out


def objective_metric(sweep_dir: str | None, study_attrs: dict[str, Any]) -> str:
    """The objective's name: the study's `metric` attribute, else multirun.yaml's objective.metric,
    else "objective"."""
    if study_attrs.get("metric"):
        return str(study_attrs["metric"])
    multirun = _load(os.path.join(sweep_dir, "multirun.yaml")) if sweep_dir else None
    metric = _select(multirun, "objective.metric") if multirun is not None else None
    return str(metric) if isinstance(metric, str) else "objective"


def read_lr_find(sweep_dir: str) -> list[tuple[float, float]] | None:
    """(base LR, smoothed loss) of the range test in `lr_find.csv`; the base is the group whose LR
    equals the suggested LR in lr_find.yaml (else the first group)."""
    path = os.path.join(sweep_dir, "lr_find.csv")
    if not os.path.isfile(path):
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    groups = [k for k in rows[0] if k not in ("update", "loss", "smoothed_loss")]
    found = _load(os.path.join(sweep_dir, "lr_find.yaml"))
    base, scale = groups[0], 1.0
    if found is not None and _select(found, "suggested_lr"):
        suggested, group_lrs = float(_select(found, "suggested_lr")), dict(_select(found, "group_lrs") or {})
        ratios = {g: float(v) / suggested for g, v in group_lrs.items() if g in groups and float(v) > 0}
        if ratios:
            base = min(ratios, key=lambda g: abs(ratios[g] - 1.0))
            scale = ratios[base]
    key = "smoothed_loss" if "smoothed_loss" in rows[0] else "loss"
    return [(float(r[base]) / scale, float(r[key])) for r in rows if r.get(key) not in (None, "", "nan")]


def n_val(trial: FrozenTrial | None, sweep_dir: str | None) -> int | None:
    """The validation size the trial's train.log names ("... / 102 val samples"), if any."""
    if trial is None or sweep_dir is None:
        return None
    path = os.path.join(trial_job_dir(trial, sweep_dir), "train.log")
    try:
        with open(path, errors="replace") as f:
            match = VAL_SAMPLES.search(f.read(20000))
    except OSError:
        return None
    return int(match.group(1)) if match else None


def fixed_overrides(trial: FrozenTrial, sweep_dir: str) -> dict[str, str]:
    """The trial's overrides that were not searched (not its params, not search=, not hydra's)."""
    loaded = _load(os.path.join(trial_job_dir(trial, sweep_dir), ".hydra", "overrides.yaml"))
    out = {}
    for line in list(loaded or []):
        key, _, value = str(line).partition("=")
        key = key.lstrip("+~")
        if key not in trial.params and key != "search" and not key.startswith("hydra"):
            out[key] = value
    return out


def changed_settings(trials: Sequence[FrozenTrial], sweep_dir: str) -> list[str]:
    """ "trainer.epochs: 4 (#0, #1), 2 (#2)" for each fixed setting that differs between trials."""
    seen: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    read = [(t.number, fixed_overrides(t, sweep_dir)) for t in trials]
    read = [(n, f) for n, f in read if f]
    all_keys = {k for _, f in read for k in f}
    for number, fixed in read:
        for k in all_keys:
            seen[k][fixed.get(k, "(unset)")].append(number)
    return [
        f"{k}: " + ", ".join(f"{v} ({', '.join(f'#{n}' for n in nums)})" for v, nums in by.items())
        for k, by in sorted(seen.items())
        if len(by) > 1
    ]


def fill_curves(points: Sequence[Any], trials: dict[int, FrozenTrial], metric: str, sweep_dir: str | None) -> None:
    """Where the study holds no per-epoch values (no pruner, no reports), read the metric per epoch
    from each trial's TensorBoard run, and the epochs from its status.yaml."""
    if sweep_dir is None:
        return
    from sweep.logs.scalars import read_scalars

    for p in points:
        job = trial_job_dir(trials[p.number], sweep_dir)
        if not p.curve and p.state in ("COMPLETE", "PRUNED"):
            values = read_scalars(os.path.join(job, "tensorboard"), metric).get(metric, [])
            p.curve = [(i + 1, v) for i, (_, v) in enumerate(values)]
        status = _load(os.path.join(job, "status.yaml"))
        epochs = _select(status, "epochs") if status is not None else None
        p.epochs = max(p.epochs, len(p.curve), int(epochs) if isinstance(epochs, int) else 0)


def lr_curves(trial: FrozenTrial, sweep_dir: str | None) -> dict[str, list[tuple[int, float]]]:
    """Every `lr/<group>` curve of the trial's TensorBoard run; {} without one."""
    if sweep_dir is None:
        return {}
    from sweep.logs.scalars import read_scalars

    return read_scalars(os.path.join(trial_job_dir(trial, sweep_dir), "tensorboard"), "lr/")
