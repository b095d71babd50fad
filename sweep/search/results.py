"""What a sweep leaves in its directory: optimization_results.yaml, trials.csv, a summary, and the
plots (drawn by `sweep.search.plots` in a background process: matplotlib and the importance evaluator
cost seconds that a sweep's wall time need not include)."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shlex
import subprocess
import sys
from typing import Any, Sequence

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from sweep.search import keys
from sweep.search.storage import masked

log = logging.getLogger(__name__)


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


def trial_job_dir(t: FrozenTrial, sweep_dir: str) -> str:
    """Where trial `t` ran: `<sweep dir>/<number>`, unless a worker elsewhere recorded its own."""
    return str(t.user_attrs.get(keys.JOB_DIR) or os.path.join(sweep_dir, str(t.number)))


def rerun_overrides(fixed: Sequence[str]) -> list[str]:
    """The sweep's fixed overrides that a single rerun needs: not `search=` (it would start a
    sweep again) nor the sweep's own `hydra` settings."""
    def key(line: str) -> str:
        return line.split("=", 1)[0].lstrip("+~")

    return [o for o in fixed if key(o) != "search" and not key(o).startswith(("hydra.", "hydra/"))]


def write_csv(path: str, trials: Sequence[FrozenTrial], sweep_dir: str | None = None) -> None:
    sweep_dir = sweep_dir or os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "state", "value", "params", "duration_s", "job_dir", "failure_reason"])
        for t in trials:
            duration = t.duration.total_seconds() if t.duration else ""
            w.writerow([t.number, t.state.name, "" if t.value is None else t.value,
                        json.dumps(t.params, sort_keys=True), duration,
                        trial_job_dir(t, sweep_dir), keys.failure_reason(t.user_attrs)])
    os.replace(tmp, path)


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return sorted(done, key=lambda t: (-t.value if maximize else t.value, t.number))


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    done = ranked(study)
    return done[0] if done else None


def write_all(sweep_dir: str, study: optuna.Study, storage: str, fixed: Sequence[str], command: str) -> dict[str, Any]:
    """optimization_results.yaml, trials.csv and the HPARAMS experiment at the sweep root."""
    written = write_results(os.path.join(sweep_dir, "optimization_results.yaml"), study, storage, fixed, command)
    write_csv(os.path.join(sweep_dir, "trials.csv"), study.get_trials(deepcopy=False), sweep_dir)
    write_experiment(sweep_dir, study)
    return written


def write_experiment(sweep_dir: str, study: optuna.Study) -> None:
    """One HPARAMS experiment config at the sweep root, with the union of the trials' keys."""
    if os.path.isdir(os.path.join(sweep_dir, "tensorboard")):  # the jobs wrote runs (else no TensorBoard import)
        from sweep.logs.tensorboard import write_sweep_experiment

        trials = study.get_trials(deepcopy=False)
        write_sweep_experiment(sweep_dir, list(dict.fromkeys(k.lstrip("+~") for t in trials for k in t.params)))


def write_results(path: str, study: optuna.Study, storage: str, fixed: Sequence[str],
                  command: str = "python train.py") -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    counts = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    best = best_trial(study)
    out: dict[str, Any] = {
        "study_name": study.study_name, "storage": masked(storage),
        "direction": study.direction.name.lower(), "n_trials": counts,
        "best": None if best is None else {
            "value": best.value, "number": best.number, "job_dir": trial_job_dir(best, os.path.dirname(os.path.abspath(path))),
            "params": dict(best.params),
            "overrides": rerun_overrides(fixed) + [format_override(k, v) for k, v in best.params.items()],
        },
    }
    if best is not None:
        out["best"]["command"] = " ".join([command] + [shlex.quote(o) for o in out["best"]["overrides"]])
    tmp = f"{path}.tmp"
    OmegaConf.save(OmegaConf.create(out), tmp)
    os.replace(tmp, path)
    return out


def plots_in_background(sweep_dir: str, storage: str, study_name: str) -> None:
    """Draw the plots in a detached process (`python -m sweep.search.plots`), so the sweep ends now."""
    log_path = os.path.join(sweep_dir, "plots.log")
    with open(log_path, "w") as log_file:
        subprocess.Popen([sys.executable, "-m", "sweep.search.plots", sweep_dir, "--storage", storage,
                          "--study", study_name], stdout=log_file, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)


def plots_note(study: optuna.Study, sweep_dir: str, enabled: bool) -> str:
    """Where the plots go, and which cannot be drawn and why."""
    from sweep.search.plots import unavailable

    if not enabled:
        return f"plots: off (hydra.sweeper.plots=false); draw them with python -m sweep plots {sweep_dir}"
    lines = [f"plots: being drawn in the background into {sweep_dir} (python -m sweep plots {sweep_dir} redraws them)"]
    lines += [f"  {name} not drawn: {why}" for name, why in unavailable(study).items()]
    return "\n".join(lines)


def tensorboard_note(sweep_dir: str) -> str:
    """How to compare the trials' runs, where the jobs wrote any."""
    index = os.path.join(sweep_dir, "tensorboard")
    return f"\ntensorboard --logdir {index}" if os.path.isdir(index) else ""


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
