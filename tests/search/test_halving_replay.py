"""bench/halving_replay.py models the shipped pruner faithfully: its replay of successive halving
under the floor stops the same trials at the same epochs as Optuna's pruner in the sweeper's
wrapping, so the rules it compares in docs/benchmarks.md are the shipped one and its variants."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import optuna
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import halving_replay as replay  # noqa: E402

from sweep.search import space as search  # noqa: E402
from sweep.search.pruning import FLOOR_KEY  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def optuna_halving(curves: list[list[float]], epochs: int, rule: replay.Rule) -> tuple[float, int]:
    """The same trials through Optuna, reported epoch by epoch as the training loop does."""
    spec = {**search.pruner_spec("successive_halving", {"reduction_factor": rule.eta}, epochs=epochs)}
    study = optuna.create_study(direction="maximize", pruner=search.build_pruner({**spec, FLOOR_KEY: rule.floor}))
    finals, trained = [], 0
    for curve in curves:
        trial = study.ask()
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
            if epoch < epochs and trial.should_prune():  # the last epoch is never a pruning point
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                trained += epoch
                break
        else:
            study.tell(trial, curve[-1])
            finals.append(curve[-1])
            trained += epochs
    return max(finals), trained


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("epochs", [12, 24])
def test_the_replayed_halving_prunes_as_optuna_does(seed, epochs):
    rng = random.Random(seed)
    curves = [[rng.random() + 0.05 * e for e in range(epochs)] for _ in range(12)]
    runs = [(0.1, 1.0, c) for c in curves]
    rule = replay.Rule()
    assert replay.halving(runs, epochs, rule) == optuna_halving(curves, epochs, rule)


def test_halving_with_paused_trials_finishes_the_best_and_trains_less():
    rng = random.Random(0)
    levels = [rng.random() for _ in range(12)]
    runs = [(0.1, 1.0, [level + 0.01 * e for e in range(12)]) for level in levels]  # rankings never change
    rule = replay.Rule()
    best, trained = replay.halving_resumed(runs, 12, rule)
    assert best == max(levels) + 0.11  # the best trial is resumed to the end
    assert trained < replay.halving(runs, 12, rule)[1] < replay.no_pruning(runs, 12, rule)[1]
