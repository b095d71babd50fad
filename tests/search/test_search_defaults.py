"""What makes the default search cheap and right: the base LR's range that fits the optimizer, the
range widened when the best trial sits on its edge, and pruning with a floor on complete trials."""

from __future__ import annotations

import logging

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from test_sweeper import study as load_study
from test_sweeper import sweep

from sweep import resolvers
from sweep.search import edges, keys
from sweep.search import space as search
from sweep.search.pruning import FloorPruner

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ----------------------------------------------------------------------------- optimizer-aware ranges


def interval(text: str) -> tuple[float, float]:
    inner = text.split("interval(", 1)[1].rstrip(")")
    low, high = (float(v) for v in inner.split(","))
    return low, high


def test_the_lr_range_follows_the_optimizer_family_by_name_or_import_path():
    from omegaconf import OmegaConf

    sgd = interval(resolvers.lr_range("sgd"))
    for name in ("adam", "adamw", "torch.optim.AdamW", "Adam"):
        adam = interval(resolvers.lr_range(name))
        assert adam[1] <= sgd[1] / 10 and adam[0] <= sgd[0] / 10, name  # one to two decades lower
    root = OmegaConf.create({"model": {"optimizer": {"_target_": "torch.optim.Adam", "_partial_": True}}})
    assert interval(resolvers.lr_range(_root_=root)) == interval(resolvers.lr_range("adam"))
    declared = OmegaConf.create(
        {"lr_sweep": {"optimizer": "net.opt"}, "net": {"opt": {"name": "sgd"}}, "optimizer": {"name": "adam"}}
    )
    assert interval(resolvers.lr_range(_root_=declared)) == sgd  # the app's declared node wins
    unknown = interval(resolvers.lr_range("rprop"))
    assert unknown[0] <= interval(resolvers.lr_range("adam"))[0] and unknown[1] >= sgd[1]


@pytest.mark.parametrize("preset", ["lr", "lr_schedule", "finetune"])
def test_each_preset_searches_the_lr_range_of_the_chosen_optimizer(preset):
    from conftest import REPO
    from hydra import compose, initialize_config_dir

    seen = {}
    for optimizer in ("sgd", "adam", "adamw"):
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose(
                config_name="train", overrides=[f"search={preset}", f"optimizer={optimizer}"], return_hydra_config=True
            )
        seen[optimizer] = interval(cfg.hydra.sweeper.params["optimizer.lr"])
    assert seen["adam"] == seen["adamw"] == interval(resolvers.lr_range("adam"))
    assert seen["sgd"] == interval(resolvers.lr_range("sgd"))


# ----------------------------------------------------------------------------- edge widening


def study_with(lrs_and_values: list[tuple[float, float]], low: float = 1e-3, high: float = 1.0) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    d = FloatDistribution(low, high, log=True)
    for lr, value in lrs_and_values:
        study.add_trial(create_trial(params={"optimizer.lr": lr}, distributions={"optimizer.lr": d}, value=value))
    return study


def test_edge_side_is_the_outer_tenth_of_the_log_range():
    assert edges.edge_side(1.2e-3, 1e-3, 1.0) == "low"
    assert edges.edge_side(0.8, 1e-3, 1.0) == "high"
    assert edges.edge_side(0.03, 1e-3, 1.0) is None


def test_a_best_on_the_low_edge_widens_the_range_a_decade_and_tries_past_the_old_edge():
    study = study_with([(1.1e-3, 0.9), (0.03, 0.5), (0.3, 0.2)])
    space = {"optimizer.lr": FloatDistribution(1e-3, 1.0, log=True), "groups.head_lr_mult": FloatDistribution(1, 30)}
    edges.follow(study, space, "optimizer.lr", max_widenings=2, maximize=True)
    assert (space["optimizer.lr"].low, space["optimizer.lr"].high) == pytest.approx((1e-4, 1.0))
    assert study.user_attrs[keys.LR_WIDENED] == {"low": pytest.approx(1e-4), "high": 1.0, "times": 1}
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1
    edges.follow(study, space, "optimizer.lr", max_widenings=2, maximize=True)  # best now inside: no change
    assert study.user_attrs[keys.LR_WIDENED]["times"] == 1
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1
    probe = study.ask()  # the enqueued trial: half a decade past the old edge, the best's other values
    assert 1e-4 < probe.suggest_float("optimizer.lr", 1e-4, 1.0, log=True) < 1e-3


def test_a_best_on_the_high_edge_widens_upwards_and_minimize_picks_the_lowest_value():
    study = study_with([(0.9, 0.1), (0.01, 0.5), (0.003, 0.7)])
    space = {"optimizer.lr": FloatDistribution(1e-3, 1.0, log=True)}
    edges.follow(study, space, "optimizer.lr", max_widenings=1, maximize=False)
    assert (space["optimizer.lr"].low, space["optimizer.lr"].high) == pytest.approx((1e-3, 10.0))


def test_no_widening_before_three_complete_trials_nor_when_it_is_off(caplog):
    study = study_with([(1.1e-3, 0.9), (0.03, 0.5)])
    space = {"optimizer.lr": FloatDistribution(1e-3, 1.0, log=True)}
    edges.follow(study, space, "optimizer.lr", max_widenings=2, maximize=True)
    assert space["optimizer.lr"].low == 1e-3 and keys.LR_WIDENED not in study.user_attrs
    study = study_with([(1.1e-3, 0.9), (0.03, 0.5), (0.3, 0.2)])
    with caplog.at_level(logging.WARNING, logger="sweep.search.edges"):
        edges.follow(study, space, "optimizer.lr", max_widenings=0, maximize=True)
        edges.follow(study, space, "optimizer.lr", max_widenings=0, maximize=True)
    assert space["optimizer.lr"].low == 1e-3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "'optimizer.lr=tag(log, interval(0.0001, 1))'" in warnings[0]


def test_a_resumed_study_samples_the_widened_range_it_stored():
    study = study_with([(0.05, 0.9), (0.03, 0.5), (0.3, 0.2)])
    study.set_user_attr(keys.LR_WIDENED, {"low": 1e-4, "high": 1.0, "times": 1})
    space = {"optimizer.lr": FloatDistribution(1e-3, 1.0, log=True)}
    edges.follow(study, space, "optimizer.lr", max_widenings=2, maximize=True)
    assert space["optimizer.lr"].low == 1e-4


def test_a_sweep_whose_best_sits_on_the_edge_searches_past_it(monkeypatch, tmp_path):
    # (x - 1)^2 is smallest at x = 1, above the range: the sweep must go there by itself
    d = sweep(
        monkeypatch,
        tmp_path,
        "+lr_sweep.lr=x",
        "x=tag(log, interval(0.01, 0.1))",
        "y=-2",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.widen_edges=1",
        "hydra.sweeper.enqueue=[{x: 0.1}]",
    )
    s = load_study(d)
    assert s.user_attrs[keys.LR_WIDENED] == {"low": 0.01, "high": pytest.approx(1.0), "times": 1}
    assert max(t.params["x"] for t in s.trials) > 0.1


# ----------------------------------------------------------------------------- the pruner's floor


class AlwaysPrune(optuna.pruners.BasePruner):
    def __init__(self) -> None:
        self.asked = 0

    def prune(self, study, trial) -> bool:
        self.asked += 1
        return True


def test_the_floor_holds_pruning_off_until_enough_trials_completed_and_still_asks_the_pruner():
    inner = AlwaysPrune()
    pruner = FloorPruner(inner, 2)
    study = optuna.create_study(pruner=pruner)
    trial = study.ask()
    trial.report(1.0, 1)
    assert not trial.should_prune() and inner.asked == 1
    for value in (1.0, 2.0):
        study.add_trial(create_trial(value=value))
    assert trial.should_prune() and inner.asked == 2


def test_min_complete_trials_wraps_the_named_pruner_and_none_stays_none():
    built = search.build_pruner(
        {"name": "successive_halving", "min_resource": 1, "reduction_factor": 3, "min_complete_trials": 3}
    )
    assert isinstance(built, FloorPruner) and built.min_complete == 3
    assert isinstance(built.inner, optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(search.build_pruner({"name": "successive_halving"}), optuna.pruners.SuccessiveHalvingPruner)


def test_a_sweep_with_halving_and_a_floor_completes_the_floor_and_prunes_the_rest(monkeypatch, tmp_path):
    d = sweep(
        monkeypatch,
        tmp_path,
        "steps=6",
        "hydra.sweeper.n_trials=10",
        "hydra.sweeper.pruner=successive_halving",
        "hydra.sweeper.min_complete_trials=4",
    )
    trials = load_study(d).trials
    assert [t.state for t in trials[:4]] == [TrialState.COMPLETE] * 4  # the floor: nothing pruned before
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, "successive halving prunes some of the 6 trials after the floor"
    assert all(len(t.intermediate_values) < 6 for t in pruned)


def test_pruner_none_takes_no_options_so_a_presets_options_do_not_block_turning_pruning_off():
    assert search.pruner_spec("none", {"min_resource": 6, "reduction_factor": 3}) == {"name": "none"}
    assert isinstance(search.build_pruner(search.pruner_spec("none", {"min_resource": 6})), optuna.pruners.NopPruner)


def test_halvings_first_rung_is_a_sixth_of_the_run_from_epoch_2_unless_named():
    assert [search.first_rung(e) for e in (None, "x", 3, 10, 12, 24, 30, 60)] == [2, 2, 2, 2, 2, 4, 5, 10]
    assert search.pruner_spec("successive_halving", {}, epochs=24)["min_resource"] == 4
    assert search.pruner_spec("successive_halving", {"min_resource": 1}, epochs=24)["min_resource"] == 1
    assert "min_resource" not in search.pruner_spec("median", {}, epochs=24)
    # paused trials: a quarter of the run (each trial is ranked against all, so fewer go on)
    assert [search.first_rung(e, paused=True) for e in (None, 6, 10, 12, 24)] == [2, 2, 2, 3, 6]
    paused = search.pruner_spec("successive_halving", {}, epochs=24, pause=True)
    assert paused["pause_from"] == 6 and paused["min_resource"] == 4  # a trial that cannot pause keeps a sixth
    assert search.pruner_spec("successive_halving", {"min_resource": 5}, epochs=24, pause=True)["pause_from"] == 5
    assert "pause_from" not in search.pruner_spec("median", {}, epochs=24, pause=True)


def test_a_sweep_places_the_first_rung_by_the_epochs_the_app_declares(monkeypatch, tmp_path):
    d = sweep(
        monkeypatch,
        tmp_path,
        "steps=24",
        "+lr_sweep.epochs=steps",
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.pruner=successive_halving",
    )
    assert load_study(d).user_attrs[keys.PRUNER]["min_resource"] == 4
