"""An app's `lr_sweep:` node (`sweep.search.declaration`): how the presets' keys map onto the app's,
what is dropped, what config_check sees, and the one-line errors that name the role to declare and
the app that was run (`sweep.errors.app_name`)."""

from __future__ import annotations

import os
import sys

import pytest
from omegaconf import OmegaConf

from sweep.errors import ConfigError, app_name
from sweep.search import declaration

TEMPLATE = {
    "lr": "model.optimizer.lr",
    "head_lr_mult": None,
    "epochs": "trainer.max_epochs",
    "groups": "model.groups",
    "schedule": "model.schedule",
    "optimizer": None,
}


@pytest.mark.parametrize(
    "key, expected",
    [
        ("optimizer.lr", "model.optimizer.lr"),  # a role: the declared key
        ("+optimizer.lr", "+model.optimizer.lr"),  # its + / ~ prefix kept
        ("~trainer.epochs", "~trainer.max_epochs"),
        ("groups.head_lr_mult", None),  # declared null: this app has none, left out
        ("groups.decay", "model.groups.decay"),  # no `decay` role declared: under the declared groups node
        ("schedule.warmup_epochs", "model.schedule.warmup_epochs"),
        ("schedule", "model/schedule"),  # a group choice: the group where the app composes it
        ("optimizer.weight_decay", None),  # optimizer: null, so its keys are left out
        ("data.batch_size", "data.batch_size"),  # not lr-sweep's: as is
    ],
)
def test_app_key_maps_train_py_keys_onto_the_apps(key, expected):
    assert declaration.app_key(key, TEMPLATE) == expected


def test_a_role_left_out_keeps_train_py_key():
    assert declaration.app_key("trainer.epochs", {"lr": "opt.lr"}) == "trainer.epochs"
    assert declaration.app_key("groups.head_lr_mult", {}) == "groups.head_lr_mult"
    assert declaration.lr_key({}) == "optimizer.lr" and declaration.lr_key(TEMPLATE) == "model.optimizer.lr"


def test_mapped_flattens_and_drops_what_the_app_lacks():
    params = {
        "optimizer": {"lr": "interval(1e-4, 1)"},
        "groups": {"head_lr_mult": "interval(1, 9)"},
        "model.net": {"_target_": "m.Net"},
    }  # a `_target_` node is one value, not flattened
    assert declaration.mapped(params, TEMPLATE) == {
        "model.optimizer.lr": "interval(1e-4, 1)",
        "model.net": {"_target_": "m.Net"},
    }


def test_declared_reads_the_node_resolved_and_nothing_without_one():
    cfg = OmegaConf.create({"optimized_metric": "val/acc", "lr_sweep": {"metric": "${optimized_metric}", "lr": "a.lr"}})
    assert declaration.declared(cfg) == {"metric": "val/acc", "lr": "a.lr"}
    assert declaration.declared(OmegaConf.create({"lr_sweep": None})) == {}
    assert declaration.declared(OmegaConf.create({"x": 1})) == {}


def test_a_fixed_value_the_app_lacks_is_one_line_naming_the_role_and_the_app():
    cfg = OmegaConf.create({"trainer": {"max_epochs": 3}, "model": {"optimizer": {"lr": 0.1}}})
    declaration.check_fixed({"trainer.max_epochs": 10, "+new.key": 1}, cfg, "src/train.py")  # present, or added with +
    with pytest.raises(ConfigError) as caught:
        declaration.check_fixed({"trainer.epochs": 10}, cfg, "src/train.py")
    line = str(caught.value)
    assert "\n" not in line and caught.value.key == "hydra.sweeper.fixed"
    assert "trainer.epochs=10" in line and "src/train.py's config" in line and "`lr_sweep.epochs: <key>`" in line
    with pytest.raises(ConfigError, match="lr_sweep.schedule: <key>"):  # a key of a group: the group's role
        declaration.check_fixed({"schedule.gamma": 0.5}, cfg, "app.py")


def test_check_view_shows_lr_sweeps_parts_as_train_py_names_them():
    cfg = OmegaConf.create(
        {
            "model": {"groups": {"name": "single"}, "schedule": {"name": "cosine"}},
            "trainer": {"max_epochs": 4},
            "groups": {"name": "not this one"},
        }
    )
    view = declaration.check_view(cfg, TEMPLATE)
    assert OmegaConf.to_container(view) == {
        "groups": {"name": "single"},
        "schedule": {"name": "cosine"},
        "trainer": {"epochs": 4},
    }
    plain = declaration.check_view(cfg, {})  # no declaration: train.py's own nodes
    assert plain.groups.name == "not this one" and "trainer" not in plain  # no trainer.epochs in this config


def test_errors_name_the_app_that_was_run(monkeypatch, tmp_path):
    from sweep.app.command_line import unknown_key
    from sweep.search.space import check_keys, parse_space

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "src" / "train.py")])  # as a launcher may pass it
    assert app_name() == os.path.join("src", "train.py")
    space, _ = parse_space({}, ["model.optimizer.momentum=interval(0.1, 0.9)"])
    with pytest.raises(ConfigError, match=r"python src/train\.py --cfg job lists them"):
        check_keys(space, OmegaConf.create({"model": {"optimizer": {"lr": 0.1}}}), app_name())
    conf_dir = os.path.join(os.path.dirname(declaration.__file__), "..", "conf")
    line = unknown_key(["optimizer.lrr=0.1"], os.path.abspath(conf_dir))
    assert line and "python src/train.py --cfg job" in line
    monkeypatch.setattr(sys, "argv", [""])
    assert app_name() == "train.py"
