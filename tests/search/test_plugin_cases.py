"""The Hydra Optuna plugin's published test cases, run against lr-sweep's sweeper.

Ported from facebookresearch/hydra plugins/hydra_optuna_sweeper/tests/test_optuna_sweeper_plugin.py:
its override grammar table, its sphere example app (tests/apps/sphere.py) with TPE at seed 123
against its 2.27 threshold, the grid sampler, and failing trials. The one documented difference:
`range(start, stop)` stops before `stop` here (as Python's and Hydra's range do), where the plugin
includes `stop`; each affected case states both.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweep.search.space import parse_space

SPHERE = REPO / "tests" / "apps" / "sphere.py"


def values(d) -> set:
    """The values a discrete distribution can give (what the plugin's table compares)."""
    if isinstance(d, CategoricalDistribution):
        return set(d.choices)
    n = int(round((d.high - d.low) / d.step)) + 1
    return {d.low + i * d.step for i in range(n)}


# (override, the plugin's expected distribution in today's Optuna terms, lr-sweep's where it differs)
GRAMMAR = [
    ("key=choice(1,2)", CategoricalDistribution([1, 2]), None),
    ("key=choice(true, false)", CategoricalDistribution([True, False]), None),
    ("key=choice('hello', 'world')", CategoricalDistribution(["hello", "world"]), None),
    ("key=shuffle(range(1,3))", CategoricalDistribution((1, 2)), None),  # both: 1 or 2
    ("key=range(1,3)", IntDistribution(1, 3), IntDistribution(1, 2)),  # plugin: 1..3; here: 1, 2
    ("key=interval(1, 5)", FloatDistribution(1, 5), None),
    ("key=int(interval(1, 5))", IntDistribution(1, 5), None),
    ("key=tag(log, interval(1, 5))", FloatDistribution(1, 5, log=True), None),
    ("key=tag(log, int(interval(1, 5)))", IntDistribution(1, 5, log=True), None),
    ("key=range(0.5, 5.5, step=1)", FloatDistribution(0.5, 5.5, step=1), FloatDistribution(0.5, 4.5, step=1)),
]


@pytest.mark.parametrize("override, plugin, ours", GRAMMAR, ids=[g[0] for g in GRAMMAR])
def test_grammar_table(override, plugin, ours):
    space, fixed = parse_space({}, [override])
    actual, expected = space["key"], ours or plugin
    assert fixed == []
    if isinstance(expected, CategoricalDistribution) or isinstance(actual, CategoricalDistribution):
        assert values(actual) == values(expected)  # the plugin compares choices as sets (shuffle)
    else:
        assert actual == expected
    if ours is not None:  # the documented difference: the stop is excluded here, included there
        assert values(actual) == values(plugin) - {plugin.high}


@pytest.mark.parametrize(
    "overrides, space, fixed",
    [
        (["key=choice(1,2)"], {"key": {1, 2}}, []),
        (["key=5"], {}, ["key=5"]),
        (["key1=choice(1,2)", "key2=5"], {"key1": {1, 2}}, ["key2=5"]),
        (["key1=choice(1,2)", "key2=5", "key3=range(1,3)"], {"key1": {1, 2}, "key3": {1, 2}}, ["key2=5"]),
    ],
)
def test_params_from_overrides(overrides, space, fixed):
    actual, actual_fixed = parse_space({}, overrides)
    assert {k: values(d) for k, d in actual.items()} == space
    assert actual_fixed == fixed


def run_sphere(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SPHERE), "-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def results(tmp_path: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml"))


def trials(tmp_path: Path) -> list[dict]:
    with open(tmp_path / "sweep" / "trials.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.parametrize("with_commandline", [True, False])
def test_sphere_example_with_tpe_reaches_the_plugins_threshold(tmp_path, with_commandline):
    args = ["hydra.sweeper.n_trials=20", "hydra.sweeper.sampler=tpe", "hydra.sweeper.seed=123"]
    if with_commandline:
        args += ["x=choice(0, 1, 2)", "y=0"]  # a searched and a fixed parameter
    proc = run_sphere(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = results(tmp_path)["best"]
    assert best["value"] <= 2.27  # the plugin's 95th percentile over 1000 seeds
    assert ("y" in best["params"]) is not with_commandline
    assert len(trials(tmp_path)) == 20
    rerun = next(ln for ln in (proc.stdout + proc.stderr).splitlines() if "rerun:" in ln)
    assert "sphere.py" in rerun and "train.py" not in rerun  # names the app that ran


@pytest.mark.slow
@pytest.mark.parametrize("n_trials", [12, 1])
def test_grid_sampler_ends_cleanly_when_the_grid_is_done(tmp_path, n_trials):
    proc = run_sphere(
        tmp_path,
        "hydra.sweeper.sampler=grid",
        f"hydra.sweeper.n_trials={n_trials}",
        "x=choice(-1,1)",
        "y=choice(-1,0)",
        "+z=choice(foo,bar)",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    best = results(tmp_path)["best"]
    rows = trials(tmp_path)
    assert best["params"]["+z"] in ("foo", "bar")  # a new key, added by the sweep
    if n_trials >= 12:  # 8 grid points: every one tried once, then a line says the grid is done
        assert len(rows) == 8 and all(r["state"] == "COMPLETE" for r in rows)
        assert any("grid is done" in ln for ln in (proc.stdout + proc.stderr).splitlines())
        assert best["value"] == 1 and abs(best["params"]["x"]) == 1 and best["params"]["y"] == 0
    else:
        assert len(rows) == 1 and best["params"]["x"] in (-1, 1) and best["params"]["y"] in (-1, 0)


@pytest.mark.slow
def test_failing_trials_are_recorded_and_the_sweep_stops_without_a_traceback(tmp_path):
    proc = run_sphere(
        tmp_path,
        "hydra.sweeper.sampler=random",
        "hydra.sweeper.seed=123",
        "error=true",
        "hydra.sweeper.max_consecutive_failures=3",
    )
    rows = trials(tmp_path)
    assert len(rows) == 3 and all(r["state"] == "FAIL" for r in rows)
    assert all(r["failure_reason"] == "RuntimeError: cfg.error is True" for r in rows)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no trial completed")
