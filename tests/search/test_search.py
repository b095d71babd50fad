"""The search-space grammar: exact meanings and up-front validation."""

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweep.errors import ConfigError
from sweep.search.space import grid_of, parse_space, pruner_spec


def space_of(*args: str):
    return parse_space({}, list(args))[0]


def test_range_stops_before_its_end_like_hydra():
    d = space_of("a=range(1,3)")["a"]
    assert isinstance(d, IntDistribution) and (d.low, d.high, d.step) == (1, 2, 1)
    d = space_of("a=range(0,10,3)")["a"]
    assert (d.low, d.high, d.step) == (0, 9, 3)
    assert grid_of({"a": space_of("a=range(0,9,3)")["a"]}) == {"a": [0, 3, 6]}


def test_interval_log_int_and_choice():
    s = space_of("a=tag(log, interval(1e-4, 1))", "b=int(interval(2, 8))", "c=choice(step,cosine)")
    assert isinstance(s["a"], FloatDistribution) and s["a"].log and (s["a"].low, s["a"].high) == (1e-4, 1.0)
    assert isinstance(s["b"], IntDistribution) and (s["b"].low, s["b"].high) == (2, 8)
    assert isinstance(s["c"], CategoricalDistribution) and s["c"].choices == ("step", "cosine")


def test_command_line_sweep_replaces_config_range_and_fixed_values_pass_through():
    space, fixed = parse_space(
        {"optimizer.lr": "tag(log, interval(1e-3, 1))", "groups.head_lr_mult": "interval(1, 10)"},
        ["optimizer.lr=tag(log, interval(1e-4, 0.5))", "groups.head_lr_mult=5", "trainer.epochs=3"],
    )
    assert space["optimizer.lr"].low == 1e-4 and space["optimizer.lr"].high == 0.5
    assert "groups.head_lr_mult" not in space
    assert fixed == ["groups.head_lr_mult=5", "trainer.epochs=3"]


@pytest.mark.parametrize(
    "line, words",
    [
        ("a=tag(log, interval(0, 1))", "low > 0"),
        ("a=tag(log, interval(-1, 1))", "low > 0"),
        ("a=interval(1, 0.1)", "low < high"),
        ("a=range(5, 1)", "start < stop"),
    ],
)
def test_bad_bounds_are_rejected_with_the_key(line, words):
    with pytest.raises(ConfigError) as err:
        space_of(line)
    assert str(err.value).startswith("a=") and words in str(err.value)


def test_grid_needs_discrete_values_and_pruner_names_are_checked():
    with pytest.raises(ConfigError, match="grid"):
        grid_of(space_of("a=interval(0, 1)"))
    with pytest.raises(ConfigError, match="hydra.sweeper.pruner"):
        pruner_spec("sometimes", {})
    assert pruner_spec("median", {"n_warmup_steps": 0})["n_warmup_steps"] == 0


@pytest.mark.parametrize("name", ["tpe", "random", "grid", "cmaes", "qmc", "gp"])
def test_every_sampler_runs_on_the_parsed_space(name):
    import optuna

    from sweep.search.space import build_sampler, suggest

    space = space_of(
        "optimizer.lr=tag(log, interval(1e-4, 1))" if name != "grid" else "optimizer.lr=choice(0.1,0.01)",
        "groups.head_lr_mult=range(1, 4)",
    )
    study = optuna.create_study(sampler=build_sampler(name, {}, 0, space))
    study.optimize(lambda t: sum(float(v) for v in suggest(t, space).values()), n_trials=4)
    values = [t.params["groups.head_lr_mult"] for t in study.trials]
    assert len(study.trials) == 4 and set(values) <= {1, 2, 3}
