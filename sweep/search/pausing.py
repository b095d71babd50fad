"""Successive halving that pauses trials instead of pruning them: `hydra.sweeper.pause_trials`.

Optuna's `SuccessiveHalvingPruner` decides once: a trial outside the top third of its rung so far
is pruned for good, and the first trials at a rung always go on (nothing to rank them against), so
the floor's complete trials are whichever came first. A job that keeps a resume state (train.py's
loop writes `resume.pt` at each epoch end, `sweep.train.resume`) can be paused instead, which is
asynchronous successive halving as published (Li et al., MLSys 2020):

- a trial stops at each rung it has not been promoted past (`PausingHalving`); its job ends PAUSED
  with its state kept, and the trial stays RUNNING in the study with a `paused` attribute;
- before a new trial is asked, a paused trial that ranks within the top 1/eta of every trial that
  reached its rung (the furthest rung first) is resumed from there, to its next rung (`next_to_resume`);
- once `n_trials` trials have started and none ranks, the best paused trials (furthest rung, then
  best value) run to the end until `min_complete_trials` are complete, and the rest are told PRUNED
  at their rung's value (`finish_paused`), their resume state removed.

A trial whose job keeps no resume state (a user's loop, Lightning, transformers, trials trained
together, a run on several devices) never says `allow_pause`: the wrapped pruner (Optuna's halving
under the floor) decides for it as before. Pausing stops more trials at each rung (each is ranked against all, not
only the earlier ones), so the presets move the first rung from a sixth of the run to a quarter
(`sweep.search.space.first_rung`): at the same compute, diabetes/Adam ended 0.21% of RMSE behind a
40-run grid (retrained, 6 seeds) against 0.61% with Optuna's halving, the other settings within
the seeds' noise (docs/benchmarks.md: Paused against pruned; `bench/halving_replay.py`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweep.search import keys, progress
from sweep.search.interruptions import job_dir_of
from sweep.train.resume import RESUME_FILE
from sweep.trial import Outcome, Status, write_status

log = logging.getLogger(__name__)

PAUSE_KEY = "pause_from"  # in the pruner's plain-data spec: the first rung of the trials that pause
TO_THE_END = 1000  # rungs passed by a trial resumed to complete the floor


def reduction_factor(spec: Mapping[str, Any]) -> int:
    """The eta of a successive-halving spec (Optuna's default, 4, where it names none)."""
    return int(spec.get("reduction_factor", 4))


class PausingHalving(optuna.pruners.BasePruner):
    """Stops a pausable trial at each rung (`min_resource * eta**k`) it was not promoted past;
    any other trial is `inner`'s to decide."""

    def __init__(self, inner: optuna.pruners.BasePruner, min_resource: int, reduction_factor: int) -> None:
        self.inner, self.min_resource, self.eta = inner, int(min_resource), int(reduction_factor)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if not trial.user_attrs.get(keys.PAUSABLE):
            return self.inner.prune(study, trial)
        passed = int(trial.user_attrs.get(keys.PROMOTED) or 0)
        step = trial.last_step
        return step is not None and passed < TO_THE_END and step >= self.min_resource * self.eta**passed


def mark(trial: Any, outcome: Outcome) -> None:
    """Record a paused trial: left RUNNING, waiting at its rung; its progress line."""
    trial.set_user_attr(keys.PAUSED, {"epoch": outcome.epochs, "time": time.time()})
    trial.set_user_attr(keys.OUTCOME, outcome.to_dict())
    progress.log_trial(trial, outcome)


def paused(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get(keys.PAUSED)]


def _rung(t: FrozenTrial) -> int:
    return int(t.user_attrs[keys.PAUSED]["epoch"])


def _signed(t: FrozenTrial, maximize: bool) -> float:
    value = t.intermediate_values.get(_rung(t), float("nan"))
    return value if maximize else -value


def ranks_on(t: FrozenTrial, trials: Sequence[FrozenTrial], eta: int, maximize: bool) -> bool:
    """Whether paused `t` is within the top 1/eta of the trials that reported at its rung."""
    epoch = _rung(t)
    values = sorted((u.intermediate_values[epoch] for u in trials if epoch in u.intermediate_values), reverse=maximize)
    places = len(values) // eta
    if places == 0 or epoch not in t.intermediate_values:
        return False
    value, cut = t.intermediate_values[epoch], values[places - 1]
    return value >= cut if maximize else value <= cut


def _trial_id(study: optuna.Study, storage: optuna.storages.BaseStorage, number: int) -> int:
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)


def _resume(study: optuna.Study, storage: optuna.storages.BaseStorage, t: FrozenTrial, passed: int) -> int:
    """Mark paused `t` resumed, allowed past `passed` rungs; its trial id."""
    trial_id = _trial_id(study, storage, t.number)
    storage.set_trial_user_attr(trial_id, keys.PROMOTED, passed)
    storage.set_trial_user_attr(trial_id, keys.PAUSED, None)
    storage.set_trial_user_attr(trial_id, keys.OUTCOME, None)  # the resumed job reports a new one
    storage.set_trial_user_attr(trial_id, keys.HEARTBEAT, time.time())
    return trial_id


def next_to_resume(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    eta: int,
    maximize: bool,
    trials: Sequence[FrozenTrial] | None = None,
) -> int | None:
    """The id of the paused trial that ranks on its rung (the furthest rung first, then the best),
    marked resumed; None when none ranks. `trials`: the study's, where the caller has them."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    ranking = [t for t in paused(trials) if ranks_on(t, trials, eta, maximize)]
    if not ranking:
        return None
    t = max(ranking, key=lambda t: (_rung(t), _signed(t, maximize)))
    log.info("trial %d: resuming it after epoch %d (in the top 1/%d there)", t.number, _rung(t), eta)
    return _resume(study, storage, t, int(t.user_attrs.get(keys.PROMOTED) or 0) + 1)


def finish_paused(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    floor: int,
    eta: int,
    maximize: bool,
    sweep_dir: str,
    trials: Sequence[FrozenTrial] | None = None,
) -> int | None:
    """With every trial started: the id of the paused trial to run to the end while fewer than
    `floor` are complete; else None, once every paused trial is told PRUNED."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    waiting = paused(trials)
    complete = sum(t.state == TrialState.COMPLETE and not keys.diverged(t.user_attrs) for t in trials)
    if waiting and complete < floor:
        t = max(waiting, key=lambda t: (_rung(t), _signed(t, maximize)))
        log.info("trial %d: resuming it to the end (%d of %d complete trials)", t.number, complete, floor)
        return _resume(study, storage, t, TO_THE_END)
    for t in waiting:
        _prune(study, storage, t, eta, sweep_dir)
    return None


def _prune(study: optuna.Study, storage: optuna.storages.BaseStorage, t: FrozenTrial, eta: int, sweep_dir: str) -> None:
    """Tell a paused trial PRUNED at its rung's value; its resume state removed, its status.yaml said so."""
    before = Outcome.from_dict(t.user_attrs.get(keys.OUTCOME) or {"status": "paused", "epochs": _rung(t)})
    outcome = Outcome(
        Status.PRUNED, None, f"{before.reason}; not resumed (outside the top 1/{eta} there)", before.epochs
    )
    trial_id = _trial_id(study, storage, t.number)
    storage.set_trial_user_attr(trial_id, keys.OUTCOME, outcome.to_dict())
    storage.set_trial_user_attr(trial_id, keys.PAUSED, None)
    study.tell(t.number, state=TrialState.PRUNED)
    job_dir = job_dir_of(t, sweep_dir)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(job_dir, RESUME_FILE))
    if os.path.isdir(job_dir):
        write_status(job_dir, outcome)
    progress.log_trial(t, outcome)
