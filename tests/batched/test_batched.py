"""Batched trials: K trials trained as one stack equal the same K trials trained one by one.

Everything runs in float64 on the CPU, where the two paths agree to rounding (1e-9 and better);
the task's loss is kept in float64 too (the shipped classification loss computes in float32).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from sweep.batched.check import NotBatchable, check_batchable, check_memory
from sweep.batched.stack import Decision, Member, Status, train_members
from sweep.errors import ConfigError
from sweep.lr.groups import build_groups
from sweep.lr.optimizer import build_optimizer
from sweep.lr.schedule import Schedule
from sweep.train import data as datasets
from sweep.train.loop import train
from sweep.train.models import CNN, MLP
from sweep.train.task import Task

EPOCHS, BATCH = 3, 32
TASK = Task(custom_loss=nn.functional.cross_entropy)  # float64 loss: the comparison is exact to rounding
COSINE = {"name": "cosine", "floor": 0.0}
STEP_WARMUP = {"name": "step", "step_size": 1, "gamma": 0.5, "warmup_epochs": 1, "warmup_start": 0.1}
OPTIMIZERS = {
    "sgd": {"name": "sgd", "momentum": 0.9, "weight_decay": 1e-3},
    "nesterov": {"name": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    "adam": {"name": "adam", "weight_decay": 1e-3},
    "adamw": {"name": "adamw", "weight_decay": 0.05},
}
LRS = {"sgd": (0.02, 0.1, 0.3), "nesterov": (0.02, 0.1, 0.3), "adam": (1e-3, 3e-3, 1e-2), "adamw": (1e-3, 3e-3, 1e-2)}


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(scope="module")
def digits() -> datasets.TensorData:
    data = datasets.load({"name": "digits", "val_fraction": 0.2, "seed": 0, "train_per_class": 12})
    data.x_train, data.x_val = data.x_train.double(), data.x_val.double()
    return data


class Features(nn.Module):
    """A user's model: its parts are called `features` and `classifier`, with a LayerNorm and a
    tuple output, as a model from the user's own code might be."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(64, 24), nn.LayerNorm(24), nn.Tanh(), nn.Linear(24, 16), nn.GELU())
        self.classifier = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.classifier(h), h


def small_mlp() -> nn.Module:
    return MLP(64, 10, hidden=(32, 32))


def member(
    data: datasets.TensorData,
    seed: int,
    lr: float,
    mult: float,
    optimizer: str = "sgd",
    schedule: dict | None = None,
    model_fn: Any = small_mlp,
    freeze_epochs: int = 0,
    epochs: int = EPOCHS,
) -> Member:
    """A trial built as the sequential job builds it: seed, model, groups, optimizer, schedule."""
    torch.manual_seed(seed)
    model = model_fn()
    groups = build_groups(model, {"name": "backbone_head", "head_lr_mult": mult, "freeze_epochs": freeze_epochs})
    opt = build_optimizer({**OPTIMIZERS[optimizer], "lr": lr, "fused": False}, groups)
    spe = -(-data.n_train // BATCH)
    return Member(model, opt, Schedule(dict(schedule or COSINE), lr, spe, epochs))


class Recorder:
    """Stands in for RunWriter: keeps what the sequential loop logs."""

    def __init__(self) -> None:
        self.curves: list[tuple[int, dict[str, list[float]]]] = []

    def lr_curves(self, first: int, curves: dict[str, list[float]]) -> None:
        self.curves.append((first, {k: list(v) for k, v in curves.items()}))

    def scalars(self, metrics: dict[str, float], step: int) -> None:
        pass


def sequential(data: datasets.TensorData, spec: dict[str, Any], **cfg: Any):
    m = member(data, **spec)
    writer = Recorder()
    result = train(m.model, m.optimizer, m.schedule, data, {**trainer(), **cfg}, writer, task=TASK)
    return result, m.model.state_dict(), writer.curves


def trainer(**extra: Any) -> dict[str, Any]:
    return {"epochs": EPOCHS, "batch_size": BATCH, "seed": 0, **extra}


def assert_same_run(batched, seq_result, seq_state, seq_curves, tol: float = 1e-9) -> None:
    assert batched.epochs == seq_result.epochs and batched.updates == seq_result.updates
    assert len(batched.history) == len(seq_result.history)
    for ours, theirs in zip(batched.history, seq_result.history):
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key], abs=tol, rel=tol), key
    assert batched.state_dict is not None and batched.state_dict.keys() == seq_state.keys()
    for key, value in seq_state.items():
        assert torch.allclose(batched.state_dict[key], value, atol=tol, rtol=0), key
    assert [first for first, _ in batched.lr_curves] == [first for first, _ in seq_curves]
    for (_, ours), (_, theirs) in zip(batched.lr_curves, seq_curves):
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert ours[name] == pytest.approx(theirs[name], rel=1e-12)


@pytest.mark.parametrize(
    "optimizer,batched_layers",
    [("sgd", True), ("sgd", False), ("nesterov", True), ("adam", True), ("adamw", True), ("adamw", False)],
)
def test_shipped_mlp_matches_trials_run_one_by_one(digits, optimizer, batched_layers):
    lrs = LRS[optimizer]
    specs = [
        dict(seed=0, lr=lrs[0], mult=1.0, optimizer=optimizer),
        dict(seed=0, lr=lrs[1], mult=10.0, optimizer=optimizer, schedule=STEP_WARMUP),
        dict(seed=1, lr=lrs[2], mult=3.0, optimizer=optimizer),
    ]
    members = [member(digits, **s) for s in specs]
    results = train_members(members, digits, trainer(), TASK, batched_layers=batched_layers)
    assert [r.status for r in results] == [Status.COMPLETE] * 3
    for result, spec in zip(results, specs):
        assert_same_run(result, *sequential(digits, spec))
    assert results[0].history[-1]["val/loss"] != results[1].history[-1]["val/loss"]  # really different trials


def test_user_model_matches_trials_run_one_by_one(digits):
    specs = [
        dict(seed=3, lr=3e-3, mult=5.0, optimizer="adamw", model_fn=Features),
        dict(seed=4, lr=1e-2, mult=1.0, optimizer="adamw", model_fn=Features, schedule=STEP_WARMUP),
    ]
    results = train_members([member(digits, **s) for s in specs], digits, trainer(), TASK)
    for result, spec in zip(results, specs):
        assert_same_run(result, *sequential(digits, spec))


def test_batchnorm_model_trains_batched_with_its_own_running_statistics(digits):
    specs = [
        dict(seed=0, lr=0.05, mult=1.0, model_fn=lambda: CNN(64, 10, channels=(4,))),
        dict(seed=1, lr=0.2, mult=2.0, model_fn=lambda: CNN(64, 10, channels=(4,))),
    ]
    results = train_members([member(digits, epochs=2, **s) for s in specs], digits, trainer(epochs=2), TASK)
    for result, spec in zip(results, specs):
        assert_same_run(result, *sequential(digits, {**spec, "epochs": 2}, epochs=2))
    assert not torch.equal(
        results[0].state_dict["backbone.1.running_mean"], results[1].state_dict["backbone.1.running_mean"]
    )


def test_frozen_backbone_and_grad_clip_per_member(digits):
    specs = [dict(seed=0, lr=0.1, mult=10.0, freeze_epochs=1), dict(seed=0, lr=0.3, mult=1.0)]
    cfg = {"grad_clip": 0.5}
    results = train_members([member(digits, **s) for s in specs], digits, trainer(**cfg), TASK)
    for result, spec in zip(results, specs):
        assert_same_run(result, *sequential(digits, spec, **cfg))


def test_diverging_member_fails_and_leaves_the_others_bit_identical(digits):
    good = [dict(seed=0, lr=0.05, mult=1.0), dict(seed=1, lr=0.1, mult=10.0)]
    diverging = dict(seed=2, lr=1e150, mult=10.0)
    with_it = train_members([member(digits, **s) for s in [good[0], diverging, good[1]]], digits, trainer(), TASK)
    without = train_members([member(digits, **s) for s in good], digits, trainer(), TASK)
    failed = with_it[1]
    assert failed.status == Status.FAILED and failed.state_dict is None
    assert failed.reason.startswith("diverged at epoch 1/3, update ") and "loss=" in failed.reason
    seq_result, _, seq_curves = sequential(digits, diverging)
    assert failed.reason == seq_result.reason and failed.updates == seq_result.updates
    assert failed.lr_curves == seq_curves
    for ours, alone in zip([with_it[0], with_it[2]], without):
        assert ours.status == Status.COMPLETE and ours.history == alone.history
        assert all(torch.equal(ours.state_dict[k], v) for k, v in alone.state_dict.items())


def test_pruned_member_is_dropped_from_the_stack(digits, monkeypatch):
    import sweep.batched.forward as forward

    sizes: list[int] = []
    losses = forward.StackedModel.losses
    monkeypatch.setattr(
        forward.StackedModel, "losses", lambda self, x, y: sizes.append(len(self)) or losses(self, x, y)
    )
    heard: list[tuple[int, int]] = []

    def on_epoch_end(index: int, epoch: int, metrics: dict[str, float]) -> str:
        heard.append((index, epoch))
        return Decision.PRUNE if index == 0 and epoch == 1 else "continue"

    specs = [dict(seed=0, lr=0.05, mult=1.0), dict(seed=1, lr=0.1, mult=10.0)]
    results = train_members([member(digits, **s) for s in specs], digits, trainer(), TASK, on_epoch_end)
    spe = -(-digits.n_train // BATCH)
    assert results[0].status == Status.PRUNED and results[0].epochs == 1
    assert results[0].reason.startswith("pruned after epoch 1/3 (val/acc=")
    assert sizes == [2] * spe + [1] * (2 * spe)  # no compute for the pruned member after its epoch
    assert heard == [(0, 1), (1, 1), (1, 2), (1, 3)]
    assert_same_run(results[1], *sequential(digits, specs[1]))


def test_members_with_different_optimizers_are_not_batched(digits):
    members = [member(digits, 0, 0.1, 1.0, "sgd"), member(digits, 0, 1e-3, 1.0, "adam")]
    with pytest.raises(NotBatchable, match="one optimizer kind"):
        train_members(members, digits, trainer(), TASK)


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Linear(64, 8), nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.head(h if h.mean() > 0 else -h)  # a branch on a tensor's value


class PlainTensorState(nn.Module):
    """BatchNorm-like running statistics of its own activations, kept in a plain attribute rather
    than a registered buffer: one tensor that every member would update in place."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Linear(64, 8), nn.Linear(8, 10)
        self.running_mean = torch.zeros(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        if self.training:
            self.running_mean.mul_(0.9).add_(0.1 * h.detach().mean(0))
        return self.head(h - self.running_mean)


@pytest.mark.parametrize("model_fn", [DataDependent, PlainTensorState])
def test_models_vmap_cannot_run_are_found_before_training(digits, model_fn):
    batch = (digits.x_train[:BATCH], digits.y_train[:BATCH])
    with pytest.raises(NotBatchable, match=model_fn.__name__):
        check_batchable(model_fn(), batch, TASK)


def test_shipped_models_pass_the_check(digits):
    batch = (digits.x_train[:BATCH], digits.y_train[:BATCH])
    check_batchable(small_mlp(), batch, TASK)
    check_batchable(CNN(64, 10, channels=(4,)), batch, TASK)


def test_memory_check_names_the_setting(digits):
    batch = (digits.x_train[:BATCH], digits.y_train[:BATCH])
    fits = check_memory(4, small_mlp(), torch.device("cpu"), "sgd", batch, TASK)
    assert fits >= 4
    with pytest.raises(ConfigError, match=r"hydra\.sweeper\.trials_per_job=.*at most \d+ trials"):
        check_memory(fits + 1, small_mlp(), torch.device("cpu"), "sgd", batch, TASK)


def test_members_ask_the_one_lr_rule(digits, monkeypatch):
    """A member's LRs come from `sweep.lr.rule.GroupLRs`, the rule the sequential loop's scheduler
    applies: change the rule and the member's LRs (and its training) change with it, as the
    sequential trial's do."""
    from sweep.lr.rule import GroupLRs

    spec = dict(seed=0, lr=0.05, mult=3.0, schedule=STEP_WARMUP, freeze_epochs=1)
    before = train_members([member(digits, **spec)], digits, trainer(), TASK)[0]
    at = GroupLRs.at
    monkeypatch.setattr(GroupLRs, "at", lambda self, t: [0.5 * lr for lr in at(self, t)])
    after = train_members([member(digits, **spec)], digits, trainer(), TASK)[0]
    assert [first for first, _ in after.lr_curves] == [first for first, _ in before.lr_curves]
    for (_, ours), (_, theirs) in zip(after.lr_curves, before.lr_curves):
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert ours[name] == [0.5 * lr for lr in theirs[name]]
    assert_same_run(after, *sequential(digits, spec))
