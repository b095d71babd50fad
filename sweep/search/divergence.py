"""How a diverged trial is told to the study, so the sampler learns where training blows up.

Optuna's TPE learns only from COMPLETE and PRUNED trials: a diverged trial told as FAIL teaches it
nothing, and it keeps proposing LRs known to blow up. A diverged trial is therefore told as PRUNED
(at the epoch it diverged, with the last value it reported: TPE ranks pruned trials below every
complete one, those pruned earliest lowest), with `diverged: true` and its reason ("diverged at
epoch 2/10: val/loss=inf") in its user attributes. It stays a failure of its setting for a person:
results, status and the report read its state through `keys.shown_state` (FAIL), and it does not
count towards `n_trials` nor break a run of failures. `bench/divergence_recording.py` measured the
three ways (FAIL, PRUNED, COMPLETE with the worst value seen) on a space where a third of the trials
diverge; docs/benchmarks.md has its table.
"""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState

from sweep.search import keys
from sweep.trial import Outcome, Status

WAYS = ("pruned", "fail", "worst")  # how a diverged trial is told: the first is the sweeper's
DIVERGED_AS = WAYS[0]


def is_divergence(outcome: Outcome) -> bool:
    """A failure on a non-finite loss or metric (`sweep.trial.diverged_reason`)."""
    return Status(outcome.status) == Status.FAILED and outcome.reason.startswith("diverged")


def worst_value(study: optuna.Study) -> float | None:
    """The worst objective among the study's complete trials, None before any completed."""
    values = [
        t.value
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value) and not keys.diverged(t.user_attrs)
    ]
    if not values:
        return None
    return min(values) if study.direction == optuna.study.StudyDirection.MAXIMIZE else max(values)


def told_as(study: optuna.Study, way: str = DIVERGED_AS) -> tuple[TrialState, float | None]:
    """(the state a diverged trial is told with, its value) for `way`."""
    if way == "pruned":
        return TrialState.PRUNED, None  # Optuna takes the last reported value, if any
    if way == "worst":
        worst = worst_value(study)
        if worst is not None:
            return TrialState.COMPLETE, worst
    return TrialState.FAIL, None
