"""Successive halving with paused trials (`hydra.sweeper.pause_trials`): a pausable trial stops at
each rung it was not promoted past, resumes when it ranks in the top third there, the floor's
trials finish at the end and the rest are pruned; trials that cannot resume are pruned as before."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import FAST, lr_steps, read_trials, run_train
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from test_sweeper import study as load_study
from test_sweeper import sweep

from sweep.logs.hparams import run_sessions
from sweep.search import interruptions, keys, pausing, workers
from sweep.search import space as search
from sweep.search.storage import open_storage
from sweep.trial import Outcome, Status

optuna.logging.set_verbosity(optuna.logging.WARNING)

X = {"x": FloatDistribution(0.0, 1.0)}


class Counting(optuna.pruners.BasePruner):
    """A stand-in for the wrapped pruner: prunes always, counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def prune(self, study, trial):
        self.calls += 1
        return True


def stops_at(study: optuna.Study, trial: optuna.Trial, steps: range) -> list[int]:
    stopped = []
    for step in steps:
        trial.report(0.5, step)
        if trial.should_prune():
            stopped.append(step)
    return stopped


def test_a_pausable_trial_stops_at_each_rung_it_was_not_promoted_past():
    inner = Counting()
    study = optuna.create_study(pruner=pausing.PausingHalving(inner, min_resource=2, reduction_factor=3))
    trial = study.ask(X)
    trial.set_user_attr(keys.PAUSABLE, True)
    assert stops_at(study, trial, range(1, 3)) == [2]
    trial.set_user_attr(keys.PROMOTED, 1)  # resumed after epoch 2: the next rung is epoch 6
    assert stops_at(study, trial, range(3, 7)) == [6]
    trial.set_user_attr(keys.PROMOTED, pausing.TO_THE_END)
    assert stops_at(study, trial, range(7, 30)) == []
    assert inner.calls == 0
    other = study.ask(X)  # its job keeps no resume state: the wrapped pruner decides
    assert stops_at(study, other, range(1, 2)) == [1] and inner.calls == 1


def paused_study(tmp_path: Path, rung_values: list[float]) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    """A study (maximize) whose trials each reported epochs 1-2 and wait paused at epoch 2."""
    storage = open_storage(str(tmp_path / "study.journal"))
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    for value in rung_values:
        trial = study.ask(X)
        trial.report(value / 2, 1)
        trial.report(value, 2)
        pausing.mark(trial, Outcome(Status.PAUSED, None, "paused after epoch 2/12 (val/acc=..)", 2))
    return study, storage


def test_a_paused_trial_resumes_once_it_ranks_in_the_top_third_of_its_rung(tmp_path):
    study, storage = paused_study(tmp_path, [0.5, 0.9])
    assert pausing.next_to_resume(study, storage, 3, True) is None  # two at the rung: no top third yet
    study, storage = paused_study(tmp_path / "more", [0.5, 0.9, 0.7, 0.8, 0.6, 0.4])
    resumed = [pausing.next_to_resume(study, storage, 3, True) for _ in range(3)]
    numbers = [storage.get_trial(i).number for i in resumed if i is not None]
    assert numbers == [1, 3] and resumed[2] is None  # the top 2 of 6, best first; then none ranks
    t = study.trials[1]
    assert t.user_attrs[keys.PROMOTED] == 1 and not t.user_attrs[keys.PAUSED] and t.state == TrialState.RUNNING


def test_the_furthest_rung_is_resumed_first(tmp_path):
    study, storage = paused_study(tmp_path, [0.5, 0.9, 0.7])
    late = study.ask(X)
    for step, value in ((1, 0.3), (2, 0.6), (6, 0.95)):
        late.report(value, step)
    pausing.mark(late, Outcome(Status.PAUSED, None, "paused after epoch 6/12", 6))
    for t in study.trials[:3]:  # two more reached epoch 6, so the late trial's third is its own
        if t.number != 0:
            storage.set_trial_intermediate_value(storage.get_trial_id_from_study_id_trial_number(0, t.number), 6, 0.5)
    assert storage.get_trial(pausing.next_to_resume(study, storage, 3, True)).number == late.number


def test_the_floor_finishes_the_best_paused_trials_then_the_rest_are_pruned(tmp_path):
    study, storage = paused_study(tmp_path, [0.5, 0.9, 0.7])
    sweep_dir = tmp_path / "sweep"
    for t in study.trials:
        (sweep_dir / str(t.number)).mkdir(parents=True)
        (sweep_dir / str(t.number) / "resume.pt").write_text("state")
    first = pausing.finish_paused(study, storage, 2, 3, True, str(sweep_dir))
    assert first is not None and storage.get_trial(first).number == 1  # the best at the furthest rung
    assert storage.get_trial(first).user_attrs[keys.PROMOTED] == pausing.TO_THE_END
    study.tell(1, 0.95)  # it ran to the end
    second = pausing.finish_paused(study, storage, 2, 3, True, str(sweep_dir))
    assert second is not None and storage.get_trial(second).number == 2
    study.tell(2, 0.8)
    assert pausing.finish_paused(study, storage, 2, 3, True, str(sweep_dir)) is None  # the floor holds: the rest pruned
    t0 = study.trials[0]
    assert t0.state == TrialState.PRUNED and t0.value == 0.5  # the value at its rung
    assert "not resumed" in t0.user_attrs[keys.OUTCOME]["reason"]
    assert not (sweep_dir / "0" / "resume.pt").exists()
    assert yaml.safe_load((sweep_dir / "0" / "status.yaml").read_text())["status"] == "pruned"


def test_a_paused_trial_is_neither_reclaimed_as_dead_nor_taken_as_interrupted(tmp_path):
    study, storage = paused_study(tmp_path, [0.5])
    trial_id = storage.get_trial_id_from_study_id_trial_number(0, 0)
    storage.set_trial_user_attr(trial_id, keys.WORKER, "gone:1")
    storage.set_trial_user_attr(trial_id, keys.HEARTBEAT, 0.0)  # stale for hours
    assert workers.reclaim_dead(study, storage, 1.0, set(), str(tmp_path)) == []
    assert interruptions.take(study, storage, "gone:1", 1.0, set()) == []
    assert study.trials[0].state == TrialState.RUNNING


def test_pausing_needs_one_trial_at_a_time_and_successive_halving():
    from sweep.search.plan import pruning
    from sweep.search.settings import SweeperConf

    conf = SweeperConf(pruner="successive_halving", pause_trials=True, min_complete_trials=3)
    assert pruning(conf, ["maximize"], 12)[pausing.PAUSE_KEY] == 3  # a quarter of the run
    built = search.build_pruner(pruning(conf, ["maximize"], 12))
    assert isinstance(built, pausing.PausingHalving) and built.min_resource == 3
    assert built.inner.inner._min_resource == 2  # a trial that cannot pause: Optuna's halving from a sixth
    assert pausing.PAUSE_KEY not in pruning(conf, ["maximize"], 12, alone=False)  # workers, a launcher
    batches = SweeperConf(pruner="successive_halving", pause_trials=True, n_jobs=4)
    assert pausing.PAUSE_KEY not in pruning(batches, ["maximize"], 12)
    assert pausing.PAUSE_KEY not in pruning(SweeperConf(pruner="median", pause_trials=True), ["maximize"], 12)


def test_a_loop_that_keeps_no_resume_state_is_pruned_as_before(monkeypatch, tmp_path):
    d = sweep(
        monkeypatch,
        tmp_path,
        "steps=6",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.pruner=successive_halving",
        "hydra.sweeper.pause_trials=true",
        "hydra.sweeper.min_complete_trials=2",
    )
    trials = load_study(d).trials
    assert len(trials) == 8 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert [t.state for t in trials[:2]] == [TrialState.COMPLETE] * 2  # the floor, as Optuna's halving keeps it
    assert not any(keys.PAUSED in t.user_attrs for t in trials)


@pytest.mark.slow
def test_a_sweep_pauses_resumes_and_prunes_at_rungs(tmp_path):
    d = tmp_path / "paused"
    run_train(
        "-m",
        "search=lr",
        *FAST,
        "trainer.epochs=12",
        "trainer.batch_size=4",  # over 1000 updates: the LR curve is written every k-th, k > 1
        "optimizer.lr=tag(log, interval(1e-3, 0.01))",  # none diverges at this batch size
        "groups.head_lr_mult=tag(log, interval(1, 3))",
        "hydra.sweeper.n_trials=9",
        "hydra.sweeper.pause_trials=true",
        f"hydra.sweep.dir={d}",
        check=True,
    )
    rows = {int(r["number"]): r for r in read_trials(d)}
    assert len(rows) == 9 and {r["state"] for r in rows.values()} <= {"COMPLETE", "PRUNED"}
    assert sum(r["state"] == "COMPLETE" for r in rows.values()) >= 3  # the preset's floor
    for t in load_study(d).trials:
        epochs = sorted(t.intermediate_values)
        assert epochs == list(range(1, len(epochs) + 1))  # a resumed trial goes on where it paused, once
        if t.state == TrialState.PRUNED:
            assert (
                epochs[-1] in (3, 9) and "not resumed"
            )  # rungs at a quarter of the run, then x3 in rows[t.number]["failure_reason"]
        status = yaml.safe_load((d / str(t.number) / "status.yaml").read_text())
        assert status["status"] == t.state.name.lower() and status["epochs"] == epochs[-1]
    assert not [p for p, _, files in os.walk(d) if "resume.pt" in files]
    resumed = [t.number for t in load_study(d).trials if t.user_attrs.get(keys.PROMOTED)]
    assert resumed  # some trial went on from its rung
    for number in resumed:  # its LR curve goes on at the same stride, with no point left at the pause
        steps = lr_steps(d / str(number) / "tensorboard")
        assert steps == sorted(set(steps)) and all(
            b - a == steps[1] - steps[0] for a, b in zip(steps[:-2], steps[1:-1])
        )
    sessions = run_sessions(str(d / "tensorboard"))  # one HPARAMS session per trial, with its final status
    assert sorted(str(s["status"]) for s in sessions) == sorted(r["state"].lower() for r in rows.values())


def test_paused_trials_left_by_a_stopped_sweep_are_finished_when_it_runs_again(monkeypatch, tmp_path):
    d = sweep(monkeypatch, tmp_path, "hydra.sweeper.n_trials=2")
    study = load_study(d)
    left = study.ask({"x": FloatDistribution(-2, 2), "y": FloatDistribution(-4, 0)})
    left.report(3.0, 1)
    pausing.mark(left, Outcome(Status.PAUSED, None, "paused after epoch 1/3 (objective=3)", 1))
    sweep(monkeypatch, tmp_path, "hydra.sweeper.n_trials=4")  # pausing off here: the waiting trial still ends
    trials = load_study(d).trials
    assert len(trials) == 4 and not [t for t in trials if t.state == TrialState.RUNNING]
    assert trials[left.number].state == TrialState.PRUNED
    assert "not resumed" in trials[left.number].user_attrs[keys.OUTCOME]["reason"]
