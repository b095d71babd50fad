"""The rerun line (`sweep.search.rerun`): composed by Hydra from a small config written here, it
drops a group choice that switches the run into a sweep (a search config) and writes every job value
that choice set as an override; it keeps other group choices and fixed values as given, and quotes
values so that Hydra reads them back as they were. The property that matters: the rerun's job config
equals the trial's."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from sweep.search import rerun
from sweep.search.results import format_override

FILES = {
    "app.yaml": "defaults:\n  - _self_\n  - model: small\n  - search: null\n"
    "seed: 1\ntrainer: {epochs: 20}\nobjective: {metric: val/acc}\nname: run\n",
    "model/small.yaml": "width: 8\n",
    "model/big.yaml": "width: 64\n",
    "extra/on.yaml": "level: 1\n",
    # a search config: switches the sweeper (hydra.mode, hydra.sweeper) and sets job values, one of
    # them a key the app lacks and one a string that reads as a number
    "search/lr.yaml": "# @package _global_\nhydra:\n  mode: MULTIRUN\n  sweeper:\n    max_batch_size: 3\n"
    "trainer: {epochs: 10}\nobjective: {metric: val/loss}\nname: '10'\nnote: two words\n",
    # a group choice that sets a job value but no sweeper setting: not a search config
    "search/quiet.yaml": "# @package _global_\nseed: 5\n",
}


@pytest.fixture
def composer(tmp_path: Path):
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    with initialize_config_dir(version_base="1.3", config_dir=str(tmp_path)):
        yield lambda lines: compose(config_name="app", overrides=list(lines), return_hydra_config=True)


def rerun_of(fixed: list[str], composer) -> list[str]:
    return rerun.rerun_overrides(fixed, composer(fixed), composer)


def job(cfg) -> dict:
    return rerun._job(cfg)


def test_a_search_config_is_dropped_and_the_job_values_it_set_are_written(composer):
    lines = rerun_of(["search=lr", "model=big", "seed=3"], composer)
    assert lines == [
        "model=big",
        "seed=3",
        "trainer.epochs=10",
        "objective.metric='val/loss'",
        "name='10'",
        "++note='two words'",
    ]  # a key the app lacks: added with ++
    assert job(composer(lines)) == job(composer(["search=lr", "model=big", "seed=3"]))
    assert composer(lines).name == "10"  # quoted: still a string, not the int 10
    assert composer(lines).hydra.mode != composer(["search=lr"]).hydra.mode  # a single run again


def test_a_fixed_value_on_the_command_line_wins_over_the_search_configs(composer):
    lines = rerun_of(["search=lr", "trainer.epochs=4"], composer)
    assert "trainer.epochs=4" in lines and "trainer.epochs=10" not in lines and "search=lr" not in lines
    assert composer(lines).trainer.epochs == 4


@pytest.mark.parametrize("fixed", [["model=big", "seed=3"], ["search=quiet", "model=big"], []])
def test_without_a_search_config_the_overrides_are_kept_as_given(composer, fixed):
    assert rerun_of(fixed, composer) == fixed


def test_a_choice_that_other_overrides_need_is_kept(composer):
    # leaving `+extra=on` out makes `extra.level=2` fail to compose: it is not a search config
    fixed = ["search=lr", "+extra=on", "extra.level=2"]
    lines = rerun_of(fixed, composer)
    assert lines[:2] == ["+extra=on", "extra.level=2"] and "search=lr" not in lines
    assert job(composer(lines)) == job(composer(fixed))


@pytest.mark.parametrize(
    "value",
    [
        "10",
        "1e-3",
        "true",
        "null",
        "nan",
        "val/acc",
        "two words",
        "it's",
        "a,b",
        "",
        "${seed}",
        "cosine",
        "a-b.c",
        10,
        0.001,
        True,
        [1, "a"],
    ],
)
def test_values_are_quoted_when_hydra_would_read_them_otherwise(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    line = format_override("key", value)
    read = OverridesParser.create().parse_override(line).value()
    assert read == value and type(read) is type(value), line
    if value in ("cosine", "a-b.c", 10):
        assert "'" not in line  # plain words stay unquoted
