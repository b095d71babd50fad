"""LR curve compression (knots) and the run's TensorBoard files (RunWriter)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from sweep.tensorboard import RunWriter, knots


def interpolate(values, keep):
    """What TensorBoard draws: straight lines between the kept points."""
    return np.interp(np.arange(len(values)), keep, [values[i] for i in keep])


# --------------------------------------------------------------------------- knots

@pytest.mark.parametrize("n", [3, 5, 50])
def test_constant_keeps_only_endpoints(n: int) -> None:
    assert knots([0.05] * n, 1e-3) == [0, n - 1]


@pytest.mark.parametrize("slope", [0.01, -0.002])
def test_linear_ramp_keeps_only_endpoints(slope: float) -> None:
    values = [0.5 + slope * i for i in range(40)]
    assert knots(values, 1e-6) == [0, 39]


def test_short_curves_are_kept_whole() -> None:
    assert knots([], 1e-3) == []
    assert knots([0.1], 1e-3) == [0]
    assert knots([0.1, 0.2], 1e-3) == [0, 1]


@pytest.mark.parametrize("jump", [1, 4, 8])
def test_step_keeps_both_sides_of_the_jump(jump: int) -> None:
    values = [0.1] * jump + [0.01] * (10 - jump)
    keep = knots(values, 1e-3)
    assert keep[0] == 0 and keep[-1] == 9
    assert jump - 1 in keep and jump in keep
    assert keep == sorted(set(keep))
    assert len(keep) <= 4
    assert list(interpolate(values, keep)) == values  # exact, not just within tolerance


def test_two_steps_reproduced_exactly() -> None:
    values = [1.0] * 7 + [0.1] * 6 + [0.01] * 7
    keep = knots(values, 1e-3)
    assert {6, 7, 12, 13} <= set(keep)
    assert len(keep) <= 6
    assert list(interpolate(values, keep)) == values


def test_warmup_ramp_then_constant() -> None:
    values = [0.1 * (i + 1) / 5 for i in range(5)] + [0.1] * 10
    keep = knots(values, 1e-6)
    assert 4 in keep and len(keep) <= 4
    np.testing.assert_allclose(interpolate(values, keep), values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("tolerance", [1e-2, 1e-3, 1e-4])
def test_cosine_within_tolerance(tolerance: float) -> None:
    n = 200
    values = [0.05 * 0.5 * (1 + math.cos(math.pi * i / n)) for i in range(n)]
    keep = knots(values, tolerance)
    assert keep[0] == 0 and keep[-1] == n - 1
    err = np.abs(interpolate(values, keep) - np.array(values))
    assert err.max() <= tolerance * max(values) * (1 + 1e-9)
    assert len(keep) < n // 2  # it does compress


def test_tighter_tolerance_keeps_more_points() -> None:
    values = [0.5 * (1 + math.cos(math.pi * i / 100)) for i in range(100)]
    assert len(knots(values, 1e-4)) > len(knots(values, 1e-2))


# --------------------------------------------------------------------------- RunWriter

def _load(path: str) -> EventAccumulator:
    acc = EventAccumulator(path, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_run_writer_writes_into_its_own_directory(tmp_path) -> None:
    run = tmp_path / "trial_0"
    w = RunWriter(str(run), lr_tolerance=1e-3)
    spe = 10
    backbone = [0.01] * spe                                    # epoch 0: constant
    head = [0.1 * (i + 1) / spe for i in range(spe)]           # epoch 0: linear warmup
    w.lr_curves(0, {"backbone": backbone, "head": head})
    w.lr_curves(spe, {"backbone": [0.01] * 5 + [0.001] * 5, "head": [0.1] * spe})
    w.scalars({"train/loss": 1.5, "val/loss": 1.25, "val/acc": 0.5}, 0)
    w.scalars({"train/loss": 1.0, "val/loss": float("nan"), "val/acc": 0.75}, 1)
    w.hparams({"optimizer.lr": 0.01, "schedule": "cosine", "head_lr_mult": 10.0, "nesterov": True,
               "milestones": [2, 5]}, ["val/acc", "best/val_acc"])
    w.close()

    # no timestamped sub-folder: one directory, holding the event file(s) only
    assert [p.name for p in tmp_path.iterdir()] == ["trial_0"]
    entries = list(run.iterdir())
    assert entries and all(p.is_file() for p in entries), entries
    assert all(p.name.startswith("events.out.tfevents") for p in entries)
    assert not any(os.path.isdir(os.path.join(run, e)) for e in os.listdir(run))

    acc = _load(str(run))
    tags = set(acc.Tags()["scalars"])
    assert {"lr/backbone", "lr/head", "train/loss", "val/loss", "val/acc"} <= tags

    bb = [(e.step, e.value) for e in acc.Scalars("lr/backbone")]
    assert [s for s, _ in bb] == [0, 9, 10, 14, 15, 19]
    assert [v for _, v in bb] == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.001, 0.001], rel=1e-6)
    hd = [(e.step, e.value) for e in acc.Scalars("lr/head")]
    assert [s for s, _ in hd] == [0, 9, 10, 19]
    assert [v for _, v in hd] == pytest.approx([0.01, 0.1, 0.1, 0.1], rel=1e-6)

    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [(0, 1.5), (1, 1.0)]
    assert [(e.step, e.value) for e in acc.Scalars("val/acc")] == [(0, 0.5), (1, 0.75)]
    assert [e.step for e in acc.Scalars("val/loss")] == [0]  # the NaN was not written

    # the HPARAMS tab: the experiment, and this session's hyperparameter values
    content = acc.PluginTagToContent("hparams")
    assert set(content) == {"_hparams_/experiment", "_hparams_/session_start_info",
                            "_hparams_/session_end_info"}
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["optimizer.lr"].number_value == pytest.approx(0.01)
    assert hp["schedule"].string_value == "cosine"
    assert hp["head_lr_mult"].number_value == 10.0
    # torch's summary.hparams tests isinstance(v, (int, float)) before bool, so a bool arrives
    # as the number 1/0 (a torch quirk, not ours); the value itself survives
    assert hp["nesterov"].WhichOneof("kind") in ("bool_value", "number_value")
    assert (hp["nesterov"].bool_value or hp["nesterov"].number_value) == 1
    assert hp["milestones"].string_value == "[2, 5]"
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    assert {m.name.tag for m in exp.experiment.metric_infos} == {"val/acc", "best/val_acc"}


def test_two_writers_in_one_parent_stay_apart(tmp_path) -> None:
    for i, lr in enumerate([0.1, 0.2]):
        w = RunWriter(str(tmp_path / f"trial_{i}"))
        w.lr_curves(0, {"all": [lr] * 4})
        w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trial_0", "trial_1"]
    for i, lr in enumerate([0.1, 0.2]):
        acc = _load(str(tmp_path / f"trial_{i}"))
        assert [e.value for e in acc.Scalars("lr/all")] == pytest.approx([lr, lr], rel=1e-6)
