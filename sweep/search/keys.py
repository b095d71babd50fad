"""The study's vocabulary, in one place: the user-attribute keys the sweeper, its workers, the jobs
and the readers (results, status) write and read, the trial states that count as finished, and how
to read why a trial did not complete.

Trial attributes: `outcome` (the job's whole `Outcome`, written for every trial that did not
complete), `fail_reason` (the sweeper's reason for failing a trial), `worker` (the identity of the
worker that runs it, stable across a requeue: `slurm:<job id>[_<array task>]` in SLURM, else
`<host>:<worker index>:<sweep dir hash>`), `process` (`host:pid` of its process, for the
heartbeat checks), `interrupted` and `claim` (a trial stopped by a signal, waiting to resume:
`sweep.search.interruptions`), `heartbeat` (unix time, refreshed while it runs), `retry_of` (the number of
the dead worker's trial it repeats), `job_dir` (where it ran, when that is not `<sweep dir>/<number>`),
`diverged` (true: the trial diverged; it is told to the study as PRUNED at the epoch it diverged, so
the sampler learns to avoid its region, but it is a failure of its setting: read its state with
`shown_state`, never `trial.state`, and it does not count towards `n_trials`), `fixed` (the fixed
overrides of the run that asked it: its rerun command uses them).
Study attributes: `pruner` (the pruner as plain data, which jobs in other processes rebuild),
`lr_bounds` (the `[low, high]` of `hydra.sweeper.lr_bounds`, measured once per study), `lr_widened`
(`{low, high, times}`: the base LR's range after `hydra.sweeper.widen_edges` moved an edge,
`sweep.search.edges`), `lr_edge_warned` (the sweep said its best sits on an edge it may not widen), `settings`
(the fixed settings the study runs with: `{config key: value}` of the job config, searched keys
left out; a resume compares against it) and `settings_changes` (a list of `{"from_trial": n,
"changes": {key: [old, new]}}`, one entry per resume that changed them on purpose,
`hydra.sweeper.allow_changed_settings=true`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.trial import TrialState

from sweep.trial import OUTCOME_ATTR

# trial user attributes
OUTCOME = OUTCOME_ATTR  # defined with `Outcome` in the bottom layer: a job in another process writes it
FAIL_REASON = "fail_reason"
WORKER = "worker"
HEARTBEAT = "heartbeat"
RETRY_OF = "retry_of"
JOB_DIR = "job_dir"
DIVERGED = "diverged"
PROCESS = "process"  # `host:pid` of the process running it now (`worker` is the identity that survives a requeue)
INTERRUPTED = "interrupted"  # {epoch, job_dir, worker, time, reason} while a stopped trial waits to resume; null after
PAUSABLE = "pausable"  # the job keeps a resume state: halving pauses it at a rung instead of pruning it
PAUSED = "paused"  # {epoch, value} while a paused trial waits at its rung; null once resumed or pruned
PROMOTED = "promoted"  # how many rungs the trial may pass (raised each time it is resumed)
CLAIM = "claim"  # the process that is taking over an interrupted trial (written, then read back after a pause)
FIXED = "fixed"

# study user attributes
PRUNER = "pruner"
LR_BOUNDS = "lr_bounds"
LR_WIDENED = "lr_widened"  # {low, high, times}: the base LR's range after hydra.sweeper.widen_edges moved an edge
LR_EDGE_WARNED = "lr_edge_warned"  # the best sat on an edge it may no longer widen, and the sweep said so
LR_KEY = "lr_key"  # the config key that is the base LR (the app's lr_sweep.lr; optimizer.lr in train.py)
SETTINGS = "settings"
CLUSTER_JOBS = "cluster_jobs"  # the SLURM job ids of the worker jobs submitted for the study (`sweep.search.cluster`)
SETTINGS_CHANGES = "settings_changes"

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards n_trials (diverged trials left out)


def failure_reason(attrs: Mapping[str, Any]) -> str:
    """Why a trial did not complete, from its user attributes: the sweeper's reason for failing it,
    else the reason in the job's outcome; empty when neither says."""
    outcome = attrs.get(OUTCOME) or {}
    from_job = outcome.get("reason") if isinstance(outcome, Mapping) else ""
    return str(attrs.get(FAIL_REASON) or from_job or "")


def diverged(attrs: Mapping[str, Any]) -> bool:
    """Whether a trial diverged (told as PRUNED so the sampler learns; a failure of its setting)."""
    return bool(attrs.get(DIVERGED))


def shown_state(trial: Any) -> str:
    """The state a person reads: FAIL for a diverged trial (the study holds it as PRUNED), else the
    study's state name."""
    return "FAIL" if diverged(trial.user_attrs) else trial.state.name


def counts_as_finished(trial: Any) -> bool:
    """Whether a trial counts towards `n_trials`: COMPLETE or PRUNED, a diverged one not."""
    return trial.state in FINISHED and not diverged(trial.user_attrs)
