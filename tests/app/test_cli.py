"""Command-line mistakes are one line on stderr and exit 2, before Hydra composes or trains."""

from __future__ import annotations

import pytest
from conftest import REPO, run_train

from sweep.app.command_line import nearest, overrides_of, predicted_keys, unknown_choice, unknown_key

CONF = str(REPO / "conf")


@pytest.mark.parametrize(
    "argv, key, near",
    [
        (["optimizer.lrr=0.1"], "optimizer.lrr", "optimizer.lr"),
        (["optimzer.lr=0.1"], "optimzer.lr", "optimizer.lr"),
        (["trainer.epoch=3"], "trainer.epoch", "trainer.epochs"),
        (
            ["-m", "search=lr", "groups.head_lr_mul=tag(log, interval(1, 10))"],
            "groups.head_lr_mul",
            "groups.head_lr_mult",
        ),
    ],
)
def test_unknown_key_names_it_and_the_nearest_key(argv, key, near):
    line = unknown_key(argv, CONF)
    assert line is not None and line.startswith(f"error: {key}=")
    assert f"did you mean {near}?" in line and "\n" not in line


@pytest.mark.parametrize(
    "argv",
    [
        ["optimizer.lr=0.1", "trainer.epochs=2"],
        ["schedule=cosine", "schedule.floor=0.01"],  # a key of the selected option only
        ["experiment=finetune", "model.channels=[8,16]"],  # the recipe switches model to cnn
        ["+new.key=1", "~trial.number", "hydra.run.dir=x", "hydra/sweeper=lr_sweep"],
        ["-m", "search=lr", "optimizer.lr=tag(log, interval(1e-3, 1))"],
        ["--cfg", "job", "-cn", "train"],
    ],
)
def test_valid_command_lines_pass(argv):
    assert unknown_key(argv, CONF) is None and unknown_choice(argv, CONF) is None


def test_a_key_of_another_option_is_unknown_for_the_selected_one():
    line = unknown_key(["schedule=cosine", "schedule.gamma=0.5"], CONF)
    assert line is not None and line.startswith("error: schedule.gamma='0.5' is not allowed")


def test_known_keys_are_read_from_the_selected_files_without_composing():
    keys = predicted_keys(["schedule=cosine", "model=cnn"], CONF)
    assert {"optimizer.lr", "schedule.floor", "schedule.warmup_epochs", "model.channels"} <= keys
    assert "schedule.gamma" not in keys and "model.hidden" not in keys


def test_overrides_skip_flags_and_their_values():
    assert overrides_of(["-m", "-cn", "a=b", "x.y=1", "--cfg", "job"]) == ["x.y=1"]


def test_nearest_finds_a_typo_in_the_parent():
    keys = {"optimizer.lr", "optimizer.momentum", "trainer.epochs"}
    assert nearest("optimzer.momentum", keys) == "optimizer.momentum"
    assert nearest("zzz.qqq", keys) is None


def test_unknown_group_option_is_still_one_line():
    line = unknown_choice(["schedule=cosin"], CONF)
    assert line is not None and line.startswith("error: schedule='cosin' is not allowed: one of ")
    assert "cosine" in line


@pytest.mark.parametrize("args", [["optimizer.lrr=0.1"], ["-m", "search=lr", "optimizer.lrr=0.1"]])
def test_train_py_prints_one_line_and_exits_2(args):
    proc = run_train(*args, timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "optimizer.lrr" in lines[0] and "did you mean optimizer.lr?" in lines[0]
    assert proc.stdout == ""
