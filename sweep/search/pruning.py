"""A floor on complete trials for any pruner: `hydra.sweeper.min_complete_trials`.

Aggressive pruning (successive halving keeps a third of the trials at each rung) saves most of the
compute of hopeless trials, but a study whose trials are nearly all pruned has little to compare:
the best of two complete trials is a guess, and the report's importance and tie analyses need
several. `FloorPruner` lets the pruner it wraps decide as usual (so successive halving still
records every trial's rung values) and overrides a "prune" while the study holds fewer than
`min_complete` COMPLETE trials. Diverged trials, held as PRUNED, do not count. The last-epoch rule
is the loop's: a trial that trains its whole budget is COMPLETE whatever the pruner says.
bench/search_efficiency.py measured the default (successive halving with a floor of 3).
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

FLOOR_KEY = "min_complete_trials"  # in the pruner's plain-data spec (sweep.search.space.pruner_spec)


class FloorPruner(optuna.pruners.BasePruner):
    """`inner`'s decisions, except that nothing is pruned before `min_complete` trials completed."""

    def __init__(self, inner: optuna.pruners.BasePruner, min_complete: int) -> None:
        self.inner, self.min_complete = inner, int(min_complete)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        decision = self.inner.prune(study, trial)  # always asked: it may record the trial's rung
        if not decision:
            return False
        complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        return complete >= self.min_complete


def with_floor(pruner: optuna.pruners.BasePruner, min_complete: int) -> optuna.pruners.BasePruner:
    """`pruner` with a floor of `min_complete` complete trials (itself when the floor is 0)."""
    return FloorPruner(pruner, min_complete) if min_complete > 0 else pruner
