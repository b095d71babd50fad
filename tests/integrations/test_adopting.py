"""Existing Hydra apps adopt lr-sweep by changing one line: apps written here in the shapes users
bring (tests/apps/template: the lightning-hydra-template's; tests/apps/plain: a plain Hydra app
using lr-sweep's `search=lr` through its `lr_sweep:` declaration; tests/apps/hf: a transformers
`Trainer` app) and the Hydra Optuna plugin's
documented examples (multi-objective, custom search space), each swept by lr-sweep's sweeper."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from sweep.errors import ConfigError
from sweep.search import declaration, optuna_forms

APPS = REPO / "tests" / "apps"


def run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def only(pattern: str, root: Path) -> Path:
    found = sorted(root.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def rerun(cwd: Path, command: str) -> subprocess.CompletedProcess:
    """The printed rerun line, run as printed (its `python` is this interpreter)."""
    words = shlex.split(command)
    assert words[0] == "python"
    return run(cwd, *words[1:])


# --------------------------------------------------------------------------- the declaration


def test_the_declaration_maps_the_presets_keys_and_drops_what_the_app_lacks():
    app = {
        "lr": "model.optimizer.lr",
        "head_lr_mult": None,
        "epochs": "trainer.max_epochs",
        "schedule": "model.schedule",
    }
    preset = {
        "optimizer.lr": "tag(log, interval(1e-3, 0.5))",
        "groups.head_lr_mult": "interval(1, 100)",
        "trainer.epochs": 10,
        "schedule.gamma": 0.5,
        "schedule": "cosine",
        "data.batch_size": 64,
    }
    assert declaration.mapped(preset, app) == {
        "model.optimizer.lr": "tag(log, interval(1e-3, 0.5))",
        "trainer.max_epochs": 10,
        "model.schedule.gamma": 0.5,
        "model/schedule": "cosine",
        "data.batch_size": 64,
    }
    assert declaration.mapped(preset, {}) == preset  # no declaration: train.py's keys


def test_a_nested_command_line_entry_replaces_the_presets_flat_key():
    # +hydra.sweeper.params.groups.head_lr_mult=null arrives nested, after the preset's flat key
    params = {
        "optimizer.lr": "interval(0.1, 1)",
        "groups.head_lr_mult": "interval(1, 9)",
        "groups": {"head_lr_mult": None},
    }
    assert declaration.flat(params) == {"optimizer.lr": "interval(0.1, 1)", "groups.head_lr_mult": None}


def test_the_plugins_older_search_space_becomes_params():
    space = {
        "x": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "n": {"type": "int", "low": 1, "high": 4, "step": 1},
        "act": {"type": "categorical", "choices": ["relu", "tanh"]},
    }
    from sweep.search.space import parse_space

    parsed, _ = parse_space(optuna_forms.search_space_params(space), [])
    assert parsed["x"].log and parsed["x"].low == 1e-4 and parsed["x"].high == 1.0
    assert (parsed["n"].low, parsed["n"].high) == (1, 4)  # the plugin's high is included
    assert list(parsed["act"].choices) == ["relu", "tanh"]


@pytest.mark.parametrize("value", ["up", ["minimize", "sideways"], None])
def test_a_bad_direction_is_one_line(value):
    with pytest.raises(ConfigError, match="hydra.sweeper.direction"):
        optuna_forms.directions(value)
    assert optuna_forms.directions(["maximize", "minimize"]) == ["maximize", "minimize"]


def test_a_target_sampler_with_an_unknown_argument_is_one_line():
    from sweep.search.space import build_sampler

    with pytest.raises(ConfigError, match="hydra.sweeper.sampler.*arguments TPESampler takes"):
        build_sampler({"_target_": "optuna.samplers.TPESampler", "n_startup": 3}, {}, 0, {})
    with pytest.raises(ConfigError, match="hydra.sweeper.sampler_options"):
        build_sampler("random", {"bogus": 1}, 0, {})
    sampler = build_sampler({"_target_": "optuna.samplers.TPESampler", "seed": 1234, "n_startup_trials": 10}, {}, 7, {})
    assert type(sampler).__name__ == "TPESampler"


# --------------------------------------------------------------------------- a plain Hydra app


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    shutil.copytree(APPS / "plain", tmp_path / "plain")
    return tmp_path / "plain"


def test_a_plain_app_runs_search_lr_through_its_declaration_and_its_rerun_reproduces(plain: Path):
    run(plain, "app.py", "search=lr", "hydra.sweeper.n_trials=3", "hydra.sweeper.plots=false")
    sweep_dir = only("logs/plain/multiruns/*", plain)  # hydra.sweep.dir interpolates paths and task_name
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {"opt.lr"}  # the preset's optimizer.lr, as the app names it
    best = results["best"]
    assert "run.steps=10" in best["overrides"]  # the preset's trainer.epochs: 10, at the app's key
    assert "search=" not in best["command"] and best["command"].startswith("python app.py ")
    for job in ("0", "1", "2"):
        assert (sweep_dir / job / "plain.log").is_file()  # its job_logging file name, honoured
        assert yaml.safe_load((sweep_dir / job / "result.yaml").read_text())["steps"] == 10
    rerun(plain, best["command"])
    again = yaml.safe_load(only("outputs/*/*/result.yaml", plain).read_text())
    assert again == {"value": results["best_value"], "steps": 10}


def test_a_preset_range_can_be_removed_and_a_fixed_value_overridden(plain: Path):
    run(
        plain,
        "app.py",
        "search=lr",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.plots=false",
        "+hydra.sweeper.params.optimizer.lr=null",
        "opt.lr=choice(0.01, 0.1)",
        "run.steps=4",
    )
    results = yaml.safe_load((only("logs/plain/multiruns/*", plain) / "optimization_results.yaml").read_text())
    assert results["best_params"]["opt.lr"] in (0.01, 0.1)  # the command line's range replaced the preset's
    assert "run.steps=4" in results["best"]["overrides"]  # the command line wins over the preset's fixed value


def test_what_a_preset_needs_and_the_app_lacks_is_one_line_before_any_trial(plain: Path):
    proc = run(plain, "app.py", "search=lr", "~lr_sweep", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "lr_sweep.direction" in proc.stderr, proc.stderr
    proc = run(plain, "app.py", "search=lr", "~lr_sweep.epochs", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "lr_sweep.epochs" in lines[0] and "app.py's config" in lines[0]  # the role to declare, the app run
    assert not (plain / "logs").exists() or not list((plain / "logs").rglob("result.yaml"))


# --------------------------------------------------------------------------- the plugin's examples


def test_the_plugins_multi_objective_example_gives_a_pareto_front(tmp_path: Path):
    proc = run(
        tmp_path,
        str(APPS / "multi_objective.py"),
        "-m",
        f"hydra.sweep.dir={tmp_path / 'mo'}",
        "hydra.sweeper.plots=false",
        "hydra.sweeper.n_trials=8",
    )
    results = yaml.safe_load((tmp_path / "mo" / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna" and results["direction"] == ["minimize", "minimize"]
    front = results["solutions"]
    assert front and all(len(s["values"]) == 2 and set(s["params"]) == {"x", "y"} for s in front)
    for a in front:  # no solution dominates another
        assert not any(
            b is not a and all(u <= v for u, v in zip(b["values"], a["values"])) and b["values"] != a["values"]
            for b in front
        )
    assert "pruning is off" not in proc.stderr or "Traceback" not in proc.stderr


def test_the_plugins_custom_search_space_example(tmp_path: Path):
    run(
        tmp_path,
        str(APPS / "custom_space.py"),
        "-m",
        f"hydra.sweep.dir={tmp_path / 'cs'}",
        "hydra.sweeper.plots=false",
        "hydra.sweeper.n_trials=6",
    )
    results = yaml.safe_load((tmp_path / "cs" / "optimization_results.yaml").read_text())
    best = results["best_params"]
    assert set(best) == {"x", "y", "z", "+w"} and abs(best["z"] - best["x"]) <= 0.5 and 0 <= best["+w"] <= 1
    assert results["best_value"] == pytest.approx(best["x"] ** 2 + best["y"] ** 2 + best["z"] ** 2 + best["+w"] ** 2)


# --------------------------------------------------------------------------- a Lightning app


@pytest.fixture
def template(tmp_path: Path) -> Path:
    pytest.importorskip("lightning")
    shutil.copytree(APPS / "template", tmp_path / "template", ignore=shutil.ignore_patterns("logs", "__pycache__"))
    return tmp_path / "template"


@pytest.mark.slow
def test_the_template_app_sweeps_with_its_plugin_config_and_the_rerun_reproduces(template: Path):
    run(
        template,
        "src/train.py",
        "hparams_search=digits_optuna",
        "trainer.max_epochs=2",
        "hydra.sweeper.keep_checkpoints=1",
        "hydra.sweeper.plots=false",
    )
    sweep_dir = only("logs/train/multiruns/*", template)
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["n_trials"]["COMPLETE"] == 3 and set(results["best_params"]) == {
        "model.optimizer.lr",
        "data.batch_size",
    }
    assert "hparams_search" not in results["best"]["command"]
    assert all((sweep_dir / str(n) / "train.log").is_file() for n in range(3))  # ${task_name}.log
    kept = sorted(p.parent.parent.name for p in sweep_dir.glob("*/checkpoints/*.ckpt"))
    assert kept == [str(results["best"]["number"])]  # keep_checkpoints=1: Lightning's *.ckpt of the others pruned
    rerun(template, results["best"]["command"])
    again = yaml.safe_load(only("logs/train/runs/*/result.yaml", template).read_text())
    assert again["value"] == pytest.approx(results["best_value"], abs=1e-6)


@pytest.mark.slow
def test_the_template_app_runs_search_lr_and_prunes_through_the_lightning_callback(template: Path):
    proc = run(
        template,
        "src/train.py",
        "+search=lr",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.plots=false",
        "hydra.sweeper.config_check=null",
        "+hydra.sweeper.fixed.trainer.epochs=3",
        "+hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, lower: 2.0}",
        "hydra.sweeper.min_complete_trials=0",
        "hydra.sweeper.enqueue=[]",
        check=False,
    )
    assert proc.returncode == 1 and "no trial completed" in proc.stderr  # every trial pruned: said in one line
    sweep_dir = only("logs/train/multiruns/*", template)
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["n_trials"]["PRUNED"] == 3  # val/acc < 2.0 always: pruned at its first report
    assert "Traceback" not in proc.stderr
    epochs = {yaml.safe_load((sweep_dir / str(n) / ".hydra" / "overrides.yaml").read_text())[0] for n in range(3)}
    assert epochs == {"trainer.max_epochs=3"}  # the preset's trainer.epochs at the app's key


@pytest.mark.slow
def test_an_error_names_the_app_that_was_run(template: Path):
    proc = run(
        template,
        "src/train.py",
        "hparams_search=digits_optuna",
        "model.optimizer.momentum=interval(0.1, 0.9)",
        check=False,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "model.optimizer.momentum" in lines[0] and "python src/train.py --cfg job" in lines[0]
    assert not list(template.glob("logs/train/multiruns/*/0"))  # before any trial


# --------------------------------------------------------------------------- a transformers Trainer app


@pytest.fixture
def hf_app(tmp_path: Path) -> Path:
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    shutil.copytree(APPS / "hf", tmp_path / "hf", ignore=shutil.ignore_patterns("logs", "__pycache__"))
    return tmp_path / "hf"


@pytest.mark.slow
def test_a_transformers_trainer_app_sweeps_with_its_plugin_config_and_the_rerun_reproduces(hf_app: Path):
    import optuna

    from sweep.search.storage import open_storage

    proc = run(
        hf_app,
        "train.py",
        "hparams_search=optuna",
        "training.epochs=2",
        "hydra.sweeper.keep_checkpoints=1",
        "hydra.sweeper.plots=false",
    )
    sweep_dir = only("logs/hf/multiruns/*", hf_app)
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["n_trials"]["COMPLETE"] == 3  # n_trials: 3, median pruning starts after 5
    assert set(results["best_params"]) == {"training.optimizer.lr", "training.groups.head_lr_mult"}
    study = optuna.load_study(study_name=results["study_name"], storage=open_storage(results["storage"]))
    for t in study.trials:  # sweep.hf.LRSweepCallback reported each evaluation to the pruner, and finished
        assert sorted(t.intermediate_values) == [0, 1] and t.value == pytest.approx(t.intermediate_values[1])
    best = results["best"]["number"]
    kept = sorted(str(p.relative_to(sweep_dir)) for p in sweep_dir.glob("*/checkpoint-*"))
    assert len(kept) == 2 and all(k.startswith(f"{best}/") for k in kept), kept  # the best trial's, both epochs
    printed = [line.split("rerun: ", 1)[1] for line in (proc.stdout + proc.stderr).splitlines() if "rerun: " in line]
    assert printed == [results["best"]["command"]] and "hparams_search" not in printed[0]
    rerun(hf_app, printed[0])
    again = yaml.safe_load(only("logs/hf/runs/*/result.yaml", hf_app).read_text())
    assert again["value"] == pytest.approx(results["best_value"], abs=1e-6)


# --------------------------------------------------------------------------- the page shows the apps' own lines

APP_OF_BLOCK = {
    "conf/app.yaml": "plain/conf/app.yaml",
    "configs/hparams_search/digits_optuna.yaml": "template/configs/hparams_search/digits_optuna.yaml",
    "configs/train.yaml": "template/configs/train.yaml",
    "conf/hparams_search/optuna.yaml": "hf/conf/hparams_search/optuna.yaml",
    "conf/train.yaml": "hf/conf/train.yaml",
}
SECTIONS = {
    "### A plain Hydra app": ("plain", "app.py"),
    "### A Lightning app": ("template", "src/train.py"),
    "### A transformers `Trainer` app": ("hf", "train.py"),
}


def test_the_adopting_page_quotes_each_apps_own_lines():
    import re

    page = (APPS.parent.parent / "docs" / "adopting.md").read_text()
    checked = set()
    for title, (app, script) in SECTIONS.items():
        section = page.split(title, 1)[1].split("\n### ", 1)[0]
        for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, re.S):
            lines = body.strip().splitlines()
            if lang == "yaml":  # its first line names the app's file; every other line is in it
                source = (APPS / APP_OF_BLOCK[lines[0].lstrip("# ")]).read_text().splitlines()
                checked.add(lines[0])
            elif lang == "python":
                source = [line.strip() for line in (APPS / app / script).read_text().splitlines()]
                lines = [line.strip() for line in lines]
            else:  # bash: the app run as the tests run it
                assert all(line.startswith(f"python {script} ") for line in lines), lines
                continue
            assert [line for line in lines[1 if lang == "yaml" else 0 :] if line not in source] == [], (title, lang)
    assert len(checked) == len(APP_OF_BLOCK)
