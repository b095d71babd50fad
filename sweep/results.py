"""What a sweep leaves in its directory: optimization_results.yaml, trials.csv, plots, a summary."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import warnings
from typing import Any, Sequence

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from sweep.storage import masked
from sweep.trial import FAIL_ATTR, PRUNED_ATTR

log = logging.getLogger(__name__)

JOB_DIR_ATTR = "job_dir"


def format_override(key: str, value: Any) -> str:
    """`key=value` in Hydra's override grammar (strings quoted when they need it)."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str) and not value.replace("_", "").replace("-", "").replace(".", "").isalnum():
        text = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    else:
        text = str(value)
    return f"{key}={text}"


def reason(t: FrozenTrial) -> str:
    return t.user_attrs.get(FAIL_ATTR) or t.user_attrs.get(PRUNED_ATTR) or ""


def write_csv(path: str, trials: Sequence[FrozenTrial]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "state", "value", "params", "duration_s", "job_dir", "failure_reason"])
        for t in trials:
            duration = t.duration.total_seconds() if t.duration else ""
            w.writerow([t.number, t.state.name, "" if t.value is None else t.value,
                        json.dumps(t.params, sort_keys=True), duration,
                        t.user_attrs.get(JOB_DIR_ATTR, ""), reason(t)])
    os.replace(tmp, path)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    if not done:
        return None
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return (max if maximize else min)(done, key=lambda t: t.value)


def write_results(path: str, study: optuna.Study, storage: str, fixed: Sequence[str]) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    counts = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    best = best_trial(study)
    out: dict[str, Any] = {
        "study_name": study.study_name, "storage": masked(storage),
        "direction": study.direction.name.lower(), "n_trials": counts,
        "best": None if best is None else {
            "value": best.value, "number": best.number, "job_dir": best.user_attrs.get(JOB_DIR_ATTR),
            "params": dict(best.params),
            "overrides": list(fixed) + [format_override(k, v) for k, v in best.params.items()],
        },
    }
    tmp = f"{path}.tmp"
    OmegaConf.save(OmegaConf.create(out), tmp)
    os.replace(tmp, path)
    return out


def write_plots(sweep_dir: str, study: optuna.Study) -> list[str]:
    """History, parameter importance and objective against base LR x head multiplier (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    written = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    plots = {"history.png": lambda: ovm.plot_optimization_history(study)}
    if len(complete) >= 2 and len({k for t in complete for k in t.params}) >= 1:
        # PED-ANOVA: no scikit-learn forest to import and fit (fANOVA, the default, costs ~5 s)
        plots["importance.png"] = lambda: ovm.plot_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    for name, make in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = make()
            ax.figure.savefig(os.path.join(sweep_dir, name), dpi=100, bbox_inches="tight")
            plt.close(ax.figure)
            written.append(name)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            log.warning("plot %s skipped: %s", name, err)
    pts = [t for t in complete if "optimizer.lr" in t.params]
    if pts:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        mult = [t.params.get("groups.head_lr_mult", 1.0) for t in pts]
        sc = ax.scatter([t.params["optimizer.lr"] for t in pts], mult, c=[t.value for t in pts], cmap="viridis")
        ax.set(xscale="log", yscale="log", xlabel="optimizer.lr (base LR)", ylabel="groups.head_lr_mult",
               title="objective by base LR and head multiplier")
        fig.colorbar(sc, ax=ax, label="objective")
        fig.savefig(os.path.join(sweep_dir, "lr_vs_head_mult.png"), dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append("lr_vs_head_mult.png")
    return written


def summary_table(study: optuna.Study, top: int = 5) -> str:
    trials = study.get_trials(deepcopy=False)
    counts = ", ".join(f"{s.name.lower()} {n}" for s in TrialState
                       if (n := sum(t.state == s for t in trials)))
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    done.sort(key=lambda t: t.value, reverse=maximize)
    lines = [f"study {study.study_name}: {len(trials)} trials ({counts})"]
    for t in done[:top]:
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        lines.append(f"  #{t.number:<4d} {t.value:.4f}  {params}")
    return "\n".join(lines)
