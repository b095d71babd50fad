"""`python -m sweep status DIR_OR_STORAGE_URL [--study NAME]`: where a sweep stands, at a glance.

Counts by state, the best trial, the running trials with their worker and last heartbeat, and why
trials failed. It only reads: a journal file is read without its lock and a database without
creating anything, so it is safe while workers run. It imports Optuna but not torch, so it answers
in about a second.

A DIR means `<DIR>/study.journal`, and the study named after the dir (as the sweeper names it)
unless --study says otherwise; a storage holding one study needs no name; with several and no
name, each study gets one summary line.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from optuna.trial import TrialState

from sweep.errors import ConfigError
from sweep.search import keys, slurm_jobs

STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)
MAX_FAILURE_LINES = 20


def resolve(target: str, study: str | None) -> tuple[str, str | None]:
    """(storage spec, study name or None to pick) for a sweep dir, a journal file or a database URL."""
    if "://" in target:
        return target, study
    if os.path.isdir(target):
        journal = os.path.join(target, "study.journal")
        if not os.path.isfile(journal):
            raise ConfigError(
                "status",
                target,
                "a sweep dir holding study.journal, a journal file, or the database URL of hydra.sweeper.storage",
            )
        return journal, study or os.path.basename(os.path.abspath(target).rstrip("/"))
    if not os.path.exists(target):
        raise ConfigError("status", target, "an existing sweep dir, journal file, or a database URL")
    return target, study


def ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min ago"
    return f"{seconds / 3600:.1f}h ago"


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def best_of(trials: Sequence[Any], maximize: bool) -> Any | None:
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]
    if not done:
        return None
    return (max if maximize else min)(done, key=lambda t: t.value)


def counts(trials: Sequence[Any]) -> str:
    by_state = Counter(keys.shown_state(t) for t in trials)  # a diverged trial counts as FAIL
    parts = [f"{by_state[s.name]} {s.name}" for s in STATES if by_state[s.name]]
    return f"{', '.join(parts) or 'no trials'} ({len(trials)} in all)"


def report(
    name: str,
    where: str,
    direction: str,
    trials: Sequence[Any],
    now: float | None = None,
    study_jobs: Sequence[str] = (),
) -> str:
    """The full status of one study, as lines a person reads; `study_jobs`: its SLURM worker jobs."""
    now = time.time() if now is None else now
    lines = [f"study '{name}' in {where} ({direction})", f"trials: {counts(trials)}"]
    best = best_of(trials, direction == "maximize")
    lines.append(
        f"best: #{best.number} value {best.value:.6g}  {_params(best.params)}"
        if best
        else "best: none yet (no trial has completed)"
    )
    running = [t for t in trials if t.state == TrialState.RUNNING]
    if running:
        lines.append("running:")
    for t in running:
        worker = t.user_attrs.get(keys.WORKER, "?")
        beat = t.user_attrs.get(keys.HEARTBEAT)
        beat_text = (
            f"heartbeat {ago(now - float(beat))} "
            f"({datetime.datetime.fromtimestamp(float(beat), datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC)"
            if beat is not None
            else "no heartbeat yet"
        )
        started = f", started {ago(now - t.datetime_start.timestamp())}" if t.datetime_start else ""
        stopped = t.user_attrs.get(keys.INTERRUPTED)
        if isinstance(stopped, dict):  # waiting for its worker to come back (sweep.search.interruptions)
            beat_text = f"{stopped.get('reason') or 'interrupted'} {ago(now - float(stopped.get('time') or 0))}"
        paused = t.user_attrs.get(keys.PAUSED)
        if isinstance(paused, dict):  # waiting at its rung (sweep.search.pausing)
            beat_text = f"paused after epoch {paused.get('epoch')} {ago(now - float(paused.get('time') or 0))}"
        lines.append(f"  #{t.number}  worker {worker}  {beat_text}{started}  {_params(t.params)}")
    workers = slurm_jobs.worker_lines(trials, study_jobs)
    if workers:
        lines += ["workers:", *workers]
    failed = [t for t in trials if keys.shown_state(t) == "FAIL"]  # diverged ones included
    if failed:
        lines.append("failures:")
    for t in failed[:MAX_FAILURE_LINES]:
        lines.append(f"  #{t.number}  {keys.failure_reason(t.user_attrs) or 'no reason recorded'}")
    if len(failed) > MAX_FAILURE_LINES:
        lines.append(f"  ... and {len(failed) - MAX_FAILURE_LINES} more (trials.csv in the sweep dir lists all)")
    return "\n".join(lines)


def study_directions(study: Any) -> str:
    return "/".join(d.name.lower() for d in study.directions)


def status(target: str, study_name: str | None = None) -> str:
    """The text `python -m sweep status` prints; a ConfigError when the target holds no such study."""
    import optuna

    from sweep.search.storage import masked, open_storage_readonly

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec, wanted = resolve(target, study_name)
    storage = open_storage_readonly(spec)
    studies = storage.get_all_studies()
    names = [s.study_name for s in studies]
    if not studies:
        raise ConfigError("status", masked(target), "a storage that holds a study (this one holds none yet)")
    if wanted is not None and wanted not in names:
        if study_name is not None or len(studies) > 1:
            raise ConfigError("--study", wanted, f"one of the studies in {masked(spec)}: {', '.join(names)}")
        wanted = None  # a dir whose one study has another name (hydra.sweeper.study_name was set)
    if wanted is None and len(studies) > 1:
        lines = [f"{len(studies)} studies in {masked(spec)} (pick one with --study NAME):"]
        for s in studies:
            trials = storage.get_all_trials(s._study_id, deepcopy=False)
            best = best_of(trials, s.direction.name == "MAXIMIZE")
            best_text = f"best #{best.number} {best.value:.6g}" if best else "no best yet"
            lines.append(f"  {s.study_name}: {counts(trials)}, {best_text}")
        return "\n".join(lines)
    chosen = next(s for s in studies if s.study_name == (wanted or names[0]))
    trials = storage.get_all_trials(chosen._study_id, deepcopy=False)
    return report(
        chosen.study_name,
        masked(spec),
        study_directions(chosen),
        trials,
        study_jobs=chosen.user_attrs.get(keys.CLUSTER_JOBS) or (),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweep status", description=__doc__.splitlines()[0])
    parser.add_argument(
        "target",
        metavar="DIR_OR_STORAGE_URL",
        help="a sweep dir (its study.journal), a journal file, or a database URL",
    )
    parser.add_argument("--study", default=None, help="the study name (default: the dir's name, or the only one)")
    args = parser.parse_args(argv)
    try:
        print(status(args.target, args.study))
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        return 0
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
