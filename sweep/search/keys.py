"""The study's vocabulary, in one place: the user-attribute keys the sweeper, its workers, the jobs
and the readers (results, status) write and read, the trial states that count as finished, and how
to read why a trial did not complete.

Trial attributes: `outcome` (the job's whole `Outcome`, written for every trial that did not
complete), `fail_reason` (the sweeper's reason for failing a trial), `worker` (`host:pid` of the
process that runs it), `heartbeat` (unix time, refreshed while it runs), `retry_of` (the number of
the dead worker's trial it repeats), `job_dir` (where it ran, when that is not `<sweep dir>/<number>`).
Study attributes: `pruner` (the pruner as plain data, which jobs in other processes rebuild) and
`lr_bounds` (the `[low, high]` of `hydra.sweeper.lr_bounds`, measured once per study).
"""

from __future__ import annotations

from typing import Any, Mapping

from optuna.trial import TrialState

from sweep.trial import OUTCOME_ATTR

# trial user attributes
OUTCOME = OUTCOME_ATTR  # defined with `Outcome` in the bottom layer: a job in another process writes it
FAIL_REASON = "fail_reason"
WORKER = "worker"
HEARTBEAT = "heartbeat"
RETRY_OF = "retry_of"
JOB_DIR = "job_dir"

# study user attributes
PRUNER = "pruner"
LR_BOUNDS = "lr_bounds"

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards n_trials


def failure_reason(attrs: Mapping[str, Any]) -> str:
    """Why a trial did not complete, from its user attributes: the sweeper's reason for failing it,
    else the reason in the job's outcome; empty when neither says."""
    outcome = attrs.get(OUTCOME) or {}
    from_job = outcome.get("reason") if isinstance(outcome, Mapping) else ""
    return str(attrs.get(FAIL_REASON) or from_job or "")
