"""What a sweep leaves in its directory: optimization_results.yaml, trials.csv, a summary, and the
plots (drawn by `sweep.search.plots` in a background process: matplotlib and the importance evaluator
cost seconds that a sweep's wall time need not include)."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from sweep.search import keys
from sweep.search.storage import masked

log = logging.getLogger(__name__)


UNQUOTED = re.compile(r"[A-Za-z_][\w\-.]*")  # a string Hydra reads back as that string
NOT_STRINGS = ("true", "false", "null", "nan", "inf")  # words Hydra reads as a bool, None or a float


def format_override(key: str, value: Any) -> str:
    """`key=value` in Hydra's override grammar, read back as `value`: strings quoted when they need it
    (`'val/acc'`, `'a b'`, and `'10'`, `'true'`, `'null'` that would else become an int, bool, None)."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str) and not (UNQUOTED.fullmatch(value) and value.lower() not in NOT_STRINGS):
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


def trial_fixed(t: FrozenTrial, fixed: Sequence[str]) -> list[str]:
    """The fixed overrides trial `t` ran with: its own (kept when it was asked: a resume may have
    changed them on purpose), else this run's."""
    own = t.user_attrs.get(keys.FIXED)
    return list(own) if own is not None else rerun_overrides(fixed)


CSV_COLUMNS = ("number", "state", "value", "epochs", "duration_s", "job_dir", "failure_reason")


def trial_epochs(t: FrozenTrial, job_dir: str) -> int | str:
    """Epochs trial `t` trained: its outcome's count, else its job's status.yaml, else the epochs it
    reported; empty when none says."""
    outcome = t.user_attrs.get(keys.OUTCOME) or {}
    if isinstance(outcome, dict) and outcome.get("epochs"):
        return int(outcome["epochs"])
    status = os.path.join(job_dir, "status.yaml")
    if os.path.isfile(status):
        with contextlib.suppress(Exception):
            return int(OmegaConf.load(status).epochs)
    return len(t.intermediate_values) or ""


def write_csv(path: str, trials: Sequence[FrozenTrial], sweep_dir: str | None = None) -> None:
    """trials.csv: a row per trial, then a column per parameter named by its config key (`param:KEY`
    where a key is one of the fixed columns), empty where a trial has no such key: `pandas.read_csv`
    reads it as is."""
    sweep_dir = sweep_dir or os.path.dirname(os.path.abspath(path))
    params = list(dict.fromkeys(k for t in trials for k in t.params))
    tmp = f"{path}.{os.getpid()}.tmp"  # sweeps sharing a study and a sweep dir may end together
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*CSV_COLUMNS, *(f"param:{k}" if k in CSV_COLUMNS else k for k in params)])
        for t in trials:
            duration = t.duration.total_seconds() if t.duration else ""
            job_dir = trial_job_dir(t, sweep_dir)
            w.writerow(
                [
                    t.number,
                    keys.shown_state(t),
                    value_of(t),
                    trial_epochs(t, job_dir),
                    duration,
                    job_dir,
                    keys.failure_reason(t.user_attrs),
                    *(t.params.get(k, "") for k in params),
                ]
            )
    os.replace(tmp, path)


def value_of(t: FrozenTrial) -> Any:
    """A trial's value for the CSV: its one value, the list of several objectives, else empty. A
    diverged trial (held as PRUNED, so Optuna keeps its last report) has none: that report was
    taken on the way to diverging, and its state and reason columns say what happened."""
    if not t.values or keys.diverged(t.user_attrs):
        return ""
    return t.values[0] if len(t.values) == 1 else json.dumps(t.values)


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first (none for several objectives: see `pareto_front`)."""
    if len(study.directions) > 1:
        return []
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value) and not keys.diverged(t.user_attrs)
    ]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return sorted(done, key=lambda t: (-_value(t) if maximize else _value(t), t.number))


def _value(t: FrozenTrial) -> float:
    """The value of a trial known to have one."""
    assert t.value is not None
    return t.value


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


def write_results(
    path: str, study: optuna.Study, storage: str, fixed: Sequence[str], command: str = "python train.py"
) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    counts = {s.name: sum(keys.shown_state(t) == s.name for t in trials) for s in TrialState}
    best = best_trial(study)
    directions = [d.name.lower() for d in study.directions]
    out: dict[str, Any] = {
        "name": "optuna",  # the Hydra Optuna plugin's keys (name, best_params, best_value, solutions) first
        **plugin_keys(study, best),
        "study_name": study.study_name,
        "storage": masked(storage),
        "direction": directions[0] if len(directions) == 1 else directions,
        "n_trials": counts,
        "best": None
        if best is None
        else {
            "value": best.value,
            "number": best.number,
            "job_dir": trial_job_dir(best, os.path.dirname(os.path.abspath(path))),
            "params": dict(best.params),
            "overrides": trial_fixed(best, fixed) + [format_override(k, v) for k, v in best.params.items()],
        },
    }
    if best is not None:
        out["best"]["command"] = " ".join([command] + [shlex.quote(o) for o in out["best"]["overrides"]])
    tmp = f"{path}.{os.getpid()}.tmp"
    OmegaConf.save(OmegaConf.create(out), tmp)
    os.replace(tmp, path)
    return out


def plugin_keys(study: optuna.Study, best: FrozenTrial | None) -> dict[str, Any]:
    """What the Hydra Optuna plugin writes: `best_params` and `best_value`, or for several
    objectives the Pareto front as `solutions` ({params, values} per trial)."""
    if len(study.directions) > 1:
        front = sorted(study.best_trials, key=lambda t: t.number)
        return {"solutions": [{"params": dict(t.params), "values": list(t.values), "number": t.number} for t in front]}
    return {
        "best_params": None if best is None else dict(best.params),
        "best_value": None if best is None else best.value,
    }


def plots_in_background(sweep_dir: str, storage: str, study_name: str) -> None:
    """Draw the plots in a detached process (`python -m sweep.search.plots`), so the sweep ends now."""
    log_path = os.path.join(sweep_dir, "plots.log")
    with open(log_path, "w") as log_file:
        subprocess.Popen(
            [sys.executable, "-m", "sweep.search.plots", sweep_dir, "--storage", storage, "--study", study_name],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def plots_note(study: optuna.Study, sweep_dir: str, enabled: bool) -> str:
    """Where the plots go, and which cannot be drawn and why."""
    from sweep.search.plots import unavailable

    if not enabled:
        return (
            f"plots and report.html: off (hydra.sweeper.plots=false); draw them with python -m sweep plots {sweep_dir}"
        )
    lines = [
        f"plots and the LR report ({sweep_dir}/report.html): being drawn in the background into {sweep_dir} "
        f"(python -m sweep plots {sweep_dir} redraws both)"
    ]
    lines += [f"  {name} not drawn: {why}" for name, why in unavailable(study).items()]
    return "\n".join(lines)


def tensorboard_note(sweep_dir: str) -> str:
    """How to compare the trials' runs, where the jobs wrote any."""
    index = os.path.join(sweep_dir, "tensorboard")
    return f"\ntensorboard --logdir {index}" if os.path.isdir(index) else ""


def summary_table(study: optuna.Study, top: int = 5) -> str:
    trials = study.get_trials(deepcopy=False)
    counts = ", ".join(
        f"{s.name.lower()} {n}"
        for s in TrialState  # a diverged trial is a failure
        if (n := sum(keys.shown_state(t) == s.name for t in trials))
    )
    done = ranked(study)
    lines = [f"study {study.study_name}: {len(trials)} trials ({counts})"]
    for t in done[:top]:
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        lines.append(f"  #{t.number:<4d} {t.value:.4f}  {params}")
    return "\n".join(lines)
