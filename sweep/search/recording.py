"""Telling the study how a trial ended: its state from the job's `Outcome`, the outcome and a
failure's reason kept in the trial's user attributes, a diverged trial told so that the sampler
learns from it (`sweep.search.divergence`), and one progress line per trial."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from sweep.search import divergence, keys, progress
from sweep.trial import Outcome, Status

STATES = {Status.COMPLETE: TrialState.COMPLETE, Status.PRUNED: TrialState.PRUNED, Status.FAILED: TrialState.FAIL}


def record(
    study: optuna.Study, trial: optuna.Trial, outcome: Outcome, diverged_as: str = divergence.DIVERGED_AS
) -> TrialState:
    """Tell the study how `trial` ended, with the outcome (and a failure's reason) in its user
    attributes; one progress line per trial. A diverged trial is told as `sweep.search.divergence`
    says (the sampler learns from it) and returned as FAIL (a failure of its setting)."""
    state = STATES[Status(outcome.status)]
    if state == TrialState.COMPLETE and isinstance(outcome.value, (list, tuple)) != (len(study.directions) > 1):
        outcome = Outcome(
            Status.FAILED,
            None,
            f"the job returned {outcome.value!r} for {len(study.directions)} objective(s) (hydra.sweeper.direction)",
        )
        state = TrialState.FAIL
    told, value = state, outcome.value if state == TrialState.COMPLETE else None
    if state != TrialState.COMPLETE:
        trial.set_user_attr(keys.OUTCOME, outcome.to_dict())
    if state == TrialState.FAIL:
        trial.set_user_attr(keys.FAIL_REASON, outcome.reason)
        if divergence.is_divergence(outcome):
            told, value = divergence.told_as(study, diverged_as)
            if told != TrialState.FAIL:
                trial.set_user_attr(keys.DIVERGED, True)
    progress.log_trial(trial, outcome)
    try:
        study.tell(trial, value, state=told)
    except RuntimeError as err:  # a GridSampler whose grid is done calls study.stop() outside optimize()
        if "Study.stop" not in str(err):
            raise
    return state
