"""The training job: config checks before training, the default run's outputs, divergence, pruning
points, no host sync per update, data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FAST, REPO, composed, run_train
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sweep.app.command_line import unknown_choice
from sweep.errors import ConfigError
from sweep.lr.groups import build_groups
from sweep.lr.optimizer import build_optimizer
from sweep.lr.schedule import Schedule
from sweep.train import checks as config
from sweep.train.build import build
from sweep.train.data import Batches, load
from sweep.train.loop import train
from sweep.train.models import MLP
from sweep.trial import NoTrial, Status

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["optimizer.lr=0"], "optimizer.lr"),
        (["optimizer.lr=-0.1"], "optimizer.lr"),
        (["schedule.gamma=1.5"], "schedule.gamma"),
        (["schedule.gamma=0"], "schedule.gamma"),
        (["schedule.step_size=0"], "schedule.step_size"),
        (["schedule=multistep", "schedule.milestones=[5,2]"], "schedule.milestones"),
        (["schedule=multistep", "schedule.milestones=[-1,2]"], "schedule.milestones"),
        (["schedule=piecewise", "schedule.pieces=[]"], "schedule.pieces"),
        (["schedule=piecewise", "schedule.pieces=[[3,0]]"], "schedule.pieces"),
        (["groups.head_lr_mult=0"], "groups.head_lr_mult"),
        (["model.init_from=/no/such/file.pt"], "model.init_from"),
        (["trainer.device=tpu"], "trainer.device"),
        (["schedule.warmup_epochs=50"], "schedule.warmup_epochs"),
        (["objective.metric=val/f1"], "objective.metric"),
        (["objective.metric=val/rmse"], "objective.metric"),  # classification has no rmse
        (["trainer.sync_every=0"], "trainer.sync_every"),
        (["task.label_smoothing=1.5"], "task.label_smoothing"),
        (["data=csv"], "data.path"),
        (["model=custom"], "model._target_"),
    ],
)
def test_bad_settings_are_rejected_before_training(overrides, key):
    with pytest.raises(ConfigError) as err:
        config.validate(composed(*overrides))
    assert str(err.value).startswith(f"{key}=") and "not allowed" in str(err.value)


def test_cuda_asked_for_where_there_is_none(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="trainer.device='cuda'.*no CUDA device"):
        config.validate(composed("trainer.device=cuda"))


def test_unknown_schedule_or_optimizer_is_one_line_naming_the_options():
    conf = str(REPO / "conf")
    assert unknown_choice(["schedule=foo"], conf) == (
        "error: schedule='foo' is not allowed: one of constant, cosine, exponential, linear, multistep, "
        "onecycle, piecewise, plateau, poly, step"
    )
    assert "one of adam, adamw, sgd" in unknown_choice(["optimizer=rmsprop"], conf)
    assert unknown_choice(["schedule=cosine", "optimizer.lr=0.1", "schedule=choice(step,cosine)"], conf) is None


def test_every_shipped_config_combination_validates():
    for schedule in (
        "constant",
        "step",
        "multistep",
        "exponential",
        "piecewise",
        "cosine",
        "linear",
        "poly",
        "onecycle",
        "plateau",
    ):
        for opt in ("sgd", "adam", "adamw"):
            config.validate(composed(f"schedule={schedule}", f"optimizer={opt}"))


def test_small_sets_live_on_the_device_and_large_ones_stream_the_same_batches():
    data = load({"name": "synthetic", "n_samples": 200, "n_features": 4, "n_classes": 3, "seed": 1})
    kept = Batches(data.x_train, data.y_train, 32, torch.device("cpu"), True, 256, torch.Generator().manual_seed(0))
    streamed = Batches(data.x_train, data.y_train, 32, torch.device("cpu"), True, 0, torch.Generator().manual_seed(0))
    assert kept.on_device and not streamed.on_device
    for (xa, ya), (xb, yb) in zip(kept, streamed):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert sum(len(y) for _, y in kept) == len(data.y_train)


def test_digits_split_is_fixed_by_seed_and_subsets_relabel():
    a, b = load({"name": "digits", "seed": 0}), load({"name": "digits", "seed": 0})
    assert torch.equal(a.y_val, b.y_val) and len(a.y_train) + len(a.y_val) == 1797
    sub = load({"name": "digits", "seed": 0, "classes": [5, 6, 7, 8, 9], "train_per_class": 10})
    assert sub.num_classes == 5 and sorted(set(sub.y_train.tolist())) == [0, 1, 2, 3, 4]
    assert np.bincount(sub.y_train.numpy()).tolist() == [10] * 5


def scalars(run_dir):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return acc, {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow
def test_default_job_writes_lr_per_group_metrics_hparams_and_a_checkpoint(tmp_path):
    out = tmp_path / "job"
    proc = run_train("trainer.epochs=12", f"hydra.run.dir={out}", check=True)
    assert "group" in proc.stdout + proc.stderr and "epoch 12/12" in proc.stdout + proc.stderr
    tb = out / "tensorboard"
    assert [p for p in tb.iterdir() if p.is_dir()] == []  # hparams in the run's own dir
    acc, s = scalars(tb)
    assert {"lr/backbone", "lr/head", "train/loss", "val/loss", "val/acc", "epoch", "best/val_acc"} <= set(s)
    spe = -(-1438 // 64)
    # one x axis, the update count: epoch metrics at the update that ended the epoch
    assert [step for step, _ in s["val/acc"]] == [spe * (e + 1) for e in range(12)]
    assert s["epoch"] == [(spe * (e + 1), e + 1) for e in range(12)]
    assert s["best/val_acc"][-1] == (12 * spe, max(v for _, v in s["val/acc"]))
    assert acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.plugin_name == "hparams"
    # the logged LR curve, interpolated, is the LR every update used: step decay at epoch 10
    cfg = OmegaConf.load(out / ".hydra" / "config.yaml")
    sched = Schedule(OmegaConf.to_container(cfg.schedule), cfg.optimizer.lr, spe, 12)
    for group, mult in (("backbone", 1.0), ("head", cfg.groups.head_lr_mult)):
        steps, values = zip(*s[f"lr/{group}"])
        expected = [cfg.optimizer.lr * mult * sched.factor(t) for t in range(12 * spe)]
        got = np.interp(range(12 * spe), steps, values)
        assert np.allclose(got, expected, rtol=1e-6)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert "backbone.0.weight" in ckpt["model"] and ckpt["epochs"] == 12
    status = OmegaConf.load(out / "status.yaml")
    assert status.status == "complete" and status.epochs == 12
    assert status.value == pytest.approx(s["val/acc"][-1][1], rel=1e-6)  # the last epoch's val/acc
    assert f"tensorboard --logdir {out / 'tensorboard'}" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_issue_example_command_runs(tmp_path):
    run_train(
        "optimizer=adamw",
        "schedule=cosine",
        "optimizer.lr=3e-4",
        "groups.head_lr_mult=10",
        "trainer.epochs=2",
        f"hydra.run.dir={tmp_path}",
        check=True,
    )
    _, s = scalars(tmp_path / "tensorboard")
    head, backbone = dict(s["lr/head"]), dict(s["lr/backbone"])
    assert head[0] == pytest.approx(3e-3) and backbone[0] == pytest.approx(3e-4)


@pytest.mark.slow
def test_a_diverging_run_stops_at_once_and_keeps_its_logs(tmp_path):
    proc = run_train(*FAST, "trainer.epochs=20", "optimizer.lr=1000", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 3 and "diverged" in proc.stderr
    status = OmegaConf.load(tmp_path / "status.yaml")
    assert status.status == "failed" and status.epochs == 0 and status.value is None
    assert status.reason.startswith("diverged at epoch 1/20, update ")
    assert not (tmp_path / "checkpoint.pt").exists()
    _, s = scalars(tmp_path / "tensorboard")
    assert "lr/head" in s and "val/acc" not in s


@pytest.mark.slow
def test_bad_input_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    for args in (["schedule=foo"], ["schedule.gamma=1.5"], ["groups.head_lr_mult=-1"]):
        proc = run_train(*args, f"hydra.run.dir={tmp_path / 'x'}")
        assert proc.returncode == 2
        assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
        assert not (tmp_path / "x" / "tensorboard").exists()


@pytest.mark.slow
def test_cfg_job_prints_the_composed_config():
    proc = run_train("--cfg", "job", "optimizer=adamw", check=True)
    cfg = OmegaConf.create(proc.stdout)
    assert cfg.optimizer.name == "adamw" and cfg.groups.name == "backbone_head"


# --------------------------------------------------------------------------- the loop


def tiny_run(lr: float, epochs: int = 3, **trainer):
    data = load({"name": "synthetic", "n_samples": 320, "n_features": 8, "n_classes": 3, "seed": 0})
    torch.manual_seed(0)
    model = MLP(8, 3, hidden=(16,))
    groups = build_groups(model, {"name": "single", "rules": [{"name": "all", "pattern": "*"}]})
    optimizer = build_optimizer({"name": "sgd", "lr": lr, "momentum": 0.9, "fused": False}, groups, False)
    spe = -(-len(data.y_train) // 16)
    schedule = Schedule({"name": "exponential", "gamma": 1.0}, lr, spe, epochs)
    return model, optimizer, schedule, data, {"seed": 0, "batch_size": 16, "epochs": epochs, **trainer}


@pytest.mark.parametrize("lr", [40.0, 3e3])
def test_divergence_report_is_the_same_with_a_sync_every_update_or_every_50(lr):
    """The loss is read every `sync_every` updates, yet the report names the first bad update."""
    reports = []
    for sync_every in (1, 7, 50):
        result = train(*tiny_run(lr, sync_every=sync_every), None)
        assert result.status == Status.FAILED
        reports.append((result.diverged_update, result.updates, result.reason, result.epochs))
    assert reports[0] == reports[1] == reports[2]
    first_bad, updates, reason, _ = reports[0]
    assert first_bad == updates and "diverged at epoch" in reason and "loss=" in reason


class AlwaysPrune(NoTrial):
    number = 7

    def __init__(self) -> None:
        super().__init__()
        self.reported: list[int] = []

    def report(self, value: float, step: int) -> None:
        self.reported.append(step)

    def should_prune(self) -> bool:
        return True


def test_the_last_epoch_is_not_a_pruning_point():
    trial = AlwaysPrune()
    result = train(*tiny_run(0.05, epochs=3), None, trial)
    assert result.status == Status.PRUNED and result.epochs == 1 and result.reason.startswith("pruned after epoch 1/3")
    assert trial.reported == [1]  # epochs count from 1
    trial = AlwaysPrune()
    result = train(*tiny_run(0.05, epochs=1), None, trial)
    assert result.status == Status.COMPLETE and trial.reported == [1]  # reported, but never pruned at its end


def test_group_table_shows_the_lr_of_the_first_update():
    cfg = composed(
        "schedule=piecewise",
        "schedule.pieces=[[2,0.2],[2,0.02]]",
        "optimizer.lr=0.05",
        "data=synthetic",
        "trainer.epochs=4",
    )
    table = build(cfg).table
    head_row = next(line for line in table.splitlines() if line.startswith("head"))
    backbone_row = next(line for line in table.splitlines() if line.startswith("backbone"))
    assert " 0.2 " in backbone_row and " 2 " in head_row  # 0.2 x head_lr_mult 10, not 0.05


def test_settings_are_resolved_once_with_what_the_data_told():
    """The run reads its settings as plain data; every node that reads data sizes sees the filled ones."""
    cfg = composed(
        "data=synthetic",
        "trainer.epochs=2",
        "+extra.width=${data.num_outputs}",
        "+extra.fallback=${oc.select:data.num_features,1}",
        "+extra.chained=${model.num_classes}",
    )
    b = build(cfg)
    s = b.settings
    assert isinstance(s["model"], dict) and isinstance(s["trainer"], dict)
    assert s["data"]["num_outputs"] == cfg.data.num_outputs == b.data.num_classes  # filled in both
    assert s["model"]["num_classes"] == s["extra"]["width"] == s["extra"]["chained"] == b.data.num_classes
    assert s["model"]["in_features"] == s["extra"]["fallback"] == b.data.num_features
    assert s["objective"]["direction"] == "maximize"  # ${lr_sweep.direction:${objective.metric}}


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA device: this machine has none (torch.cuda.is_available() is False); runs on a GPU machine",
)
def test_no_host_sync_between_sync_points_on_cuda():
    """An epoch under torch.cuda.set_sync_debug_mode('error') between the loop's sync points: any
    hidden .item() or blocking copy in an update raises."""
    model, optimizer, schedule, data, trainer = tiny_run(0.05, epochs=2, sync_every=5, sync_debug=True, precision="32")
    device = torch.device("cuda")
    model.to(device)
    optimizer = build_optimizer(
        {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        build_groups(model, {"name": "single", "rules": [{"name": "all", "pattern": "*"}]}),
        False,
    )
    try:
        result = train(model, optimizer, schedule, data, trainer, None)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.status == Status.COMPLETE and result.epochs == 2
    assert torch.cuda.get_sync_debug_mode() == 0
