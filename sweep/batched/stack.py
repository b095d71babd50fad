"""Batched trials: K trials of the same architecture trained together as one stacked model.

On a GPU one small trial is bound by kernel launches; K trials stacked along a leading dimension
cost about one trial's launches. Each member is built exactly as a sequential trial (seeded model,
torch optimizer with its own param groups, its own Schedule); its parameters are stacked with
torch.func and the forward is vmapped over the stack (the shipped MLP runs as batched matrix
products instead: the same numbers, faster; sweep/batched/forward.py). The update is vectorised
with per-member LR vectors (sweep/batched/optimizer.py). All members see one batch stream, so a
member's losses, metrics and weights match the same trial trained alone (tests/batched/test_batched.py).

Members stay independent: a non-finite loss masks that member out (FAILED, with the epoch and
update), `on_epoch_end` may prune a member, and failed or pruned members leave the stack at the
epoch boundary so they stop costing compute. Models that vmap cannot run are found before training
(sweep/batched/check.py), and the caller falls back to sequential trials.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sweep.batched.check import NotBatchable
from sweep.batched.forward import StackedModel
from sweep.batched.optimizer import KINDS, SHARED_FLAGS, ParamSettings, StackedOptimizer, clip_grad_norms
from sweep.lr.rule import GroupLRs
from sweep.lr.schedule import Schedule
from sweep.train.data import TrainValData, train_batches, val_batches
from sweep.train.loop import SYNC_EVERY, Result, autocast_for
from sweep.train.task import Task
from sweep.trial import Status, diverged_reason, pruned_reason


class Decision(str, enum.Enum):
    CONTINUE = "continue"
    PRUNE = "prune"


@dataclass
class Member:
    """One trial, built as a sequential trial builds it: the seeded model (on the device), its torch
    optimizer (param groups carry name, base_lr, mult, start_epoch, frozen, weight_decay, as
    sweep/lr/optimizer.py makes them) and its Schedule. Only the settings are read; the trial's own
    tensors are copied into the stack."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule


@dataclass
class MemberResult(Result):
    """What a sequential trial's loop returns (`sweep.train.loop.Result`: status, reason worded by
    `sweep.trial`, per-epoch metrics), plus the LRs of every update (per epoch: `(first update,
    {group: [lr, ...]})`, the arguments of RunWriter.lr_curves) and the final weights (None when failed)."""

    lr_curves: list[tuple[int, dict[str, list[float]]]] = field(default_factory=list)
    state_dict: dict[str, torch.Tensor] | None = None


OnEpochEnd = Callable[[int, int, dict[str, float]], "Decision | str"]
"""(member index, epoch counted from 1 as trial.report takes it, metrics) -> continue or prune."""


def _settings(members: list[Member]) -> tuple[str, dict[str, bool], list[dict[str, dict[str, Any]]]]:
    """The shared optimizer kind and flags, and per member the param group of each parameter name."""
    kinds = {KINDS.get(type(m.optimizer)) for m in members}
    kind = kinds.pop() if len(kinds) == 1 else None
    if kind is None:
        raise NotBatchable(
            f"members need one optimizer kind of {sorted(KINDS.values())}; got "
            f"{sorted(type(m.optimizer).__name__ for m in members)}"
        )
    flags = {f: bool(members[0].optimizer.defaults.get(f, False)) for f in SHARED_FLAGS}
    if flags["amsgrad"] or flags["maximize"]:
        raise NotBatchable("amsgrad and maximize are not batched")
    groups_by_name = []
    for m in members:
        if any(bool(m.optimizer.defaults.get(f, False)) != v for f, v in flags.items()):
            raise NotBatchable(f"members differ in {', '.join(SHARED_FLAGS)}")
        by_id = {id(p): g for g in m.optimizer.param_groups for p in g["params"]}
        groups_by_name.append({n: by_id[id(p)] for n, p in m.model.named_parameters() if id(p) in by_id})
    names = [n for n, _ in members[0].model.named_parameters()]
    if any(set(g) != set(names) for g in groups_by_name):
        raise NotBatchable("every parameter of every member must be in its optimizer, under the same names")
    return kind, flags, groups_by_name


class _LRTable:
    """Each member's LR per parameter for every update of an epoch, from the member's own
    `sweep.lr.rule.GroupLRs`: the rule the sequential loop's scheduler applies, asked once per
    update and member (param groups that share a peak and start share the computation)."""

    def __init__(self, members: list[Member], groups: list[dict[str, dict[str, Any]]], names: list[str]) -> None:
        self.rules = [GroupLRs(m.optimizer.param_groups, m.schedule) for m in members]
        self.columns = []  # per member, the index of each parameter's param group
        for m, by_name in zip(members, groups):
            index = {id(g): i for i, g in enumerate(m.optimizer.param_groups)}
            self.columns.append([index[id(by_name[n])] for n in names])
        self.rows: dict[int, list[list[float]]] = {}  # per member, the LRs of the current epoch

    def epoch(self, members: list[int], t0: int, n: int, device: torch.device) -> torch.Tensor:
        """(n, K, P) float64: update i, member k, parameter j."""
        per_member = []
        for k in members:
            rule = self.rules[k]
            self.rows[k] = rule.span(t0, n)
            lrs = torch.tensor(self.rows[k], dtype=torch.float64).reshape(n, len(rule))
            per_member.append(lrs[:, self.columns[k]])
        return torch.stack(per_member, 1).contiguous().to(device)

    def trains(self, member: int, param: int, t: int) -> bool:
        """Whether parameter `param` (by position) of `member` trains at update `t`."""
        return self.rules[member].trains(self.columns[member][param], t)

    def curves(self, member: int, n: int) -> dict[str, list[float]]:
        """Per named group, its first param group's LR for the epoch's first `n` updates (what loop.py logs)."""
        rows = self.rows[member][:n]
        return {name: [row[i] for row in rows] for name, i in self.rules[member].firsts().items()}


def _drop_masked_grads(grads: list[torch.Tensor | None], partial: list[torch.Tensor | None]) -> None:
    """Zero the grads of members whose group does not train yet, as if they had none (for the clip norm)."""
    for g, mask in zip(grads, partial):
        if g is not None and mask is not None:
            g.mul_(mask.to(g.dtype).view(-1, *([1] * (g.ndim - 1))))


def train_members(
    members: list[Member],
    data: TrainValData,
    cfg: Mapping[str, Any],
    task: Task | None = None,
    on_epoch_end: OnEpochEnd | None = None,
    objective: str = "val/acc",
    batched_layers: bool = True,
) -> list[MemberResult]:
    """Train all members together as sweep.train.loop.train trains one; results in member order.

    `cfg` is the trainer config loop.train reads (epochs, batch_size, seed: the one data order of
    all members, grad_clip, precision, on_device_max_mb). After each epoch `on_epoch_end` hears
    each member still training and may prune it (never after the last epoch). `batched_layers`
    runs the shipped MLP as batched matrix products rather than through vmap (the same numbers).

    On a CPU, denormal floats are flushed to zero while it trains (and not after): batched
    products over them (the softmax tails of high-LR members) made the first epochs 5x slower.
    """
    cpu = next(members[0].model.parameters()).device.type == "cpu"
    torch.set_flush_denormal(cpu)
    try:
        return _train(members, data, cfg, task or Task(), on_epoch_end, objective, batched_layers)
    finally:
        torch.set_flush_denormal(False)


@dataclass
class _EpochLosses:
    """One epoch of the stack, per member in stack order: the index of its first non-finite loss
    (-1: none), that loss, and the sum of its finite losses; and how many updates ran."""

    failed_at: list[int]
    failed_loss: list[float]
    loss_sum: list[float]
    any_alive: bool
    updates: int


def _run_epoch(
    stack: StackedModel,
    optimizer: StackedOptimizer,
    batches: Any,
    lrs: torch.Tensor,
    partial: list[torch.Tensor | None],
    clip: Any,
    autocast: Callable[[], Any],
    check_every: int,
) -> _EpochLosses:
    device, count = stack.device, len(stack)
    alive = torch.ones(count, dtype=torch.bool, device=device)
    failed_at = torch.full((count,), -1, dtype=torch.long, device=device)
    failed_loss = torch.zeros(count, dtype=torch.float64, device=device)
    loss_sum = torch.zeros(count, dtype=torch.float64, device=device)
    any_failed, updates = False, 0
    for i, (inputs, target) in enumerate(batches):
        with autocast():
            losses = stack.losses(inputs, target)
        value = losses.detach().to(torch.float64)
        newly = alive & ~torch.isfinite(value)
        failed_at = torch.where(newly, i, failed_at)
        failed_loss = torch.where(newly, value, failed_loss)
        alive &= ~newly
        loss_sum += torch.where(alive, value, 0.0)
        if not any_failed and (i + 1) % check_every == 0:  # from here on, failed members stay put
            any_failed = not bool(alive.all())
        losses.sum().backward()
        grads = stack.take_grads()
        if clip:
            _drop_masked_grads(grads, partial)
            clip_grad_norms(grads, float(clip))
        moving = [(alive if any_failed else None) if m is None else alive & m for m in partial]
        optimizer.step(stack.param_list(), grads, list(lrs[i].T), moving)
        updates += 1
    return _EpochLosses(failed_at.tolist(), failed_loss.tolist(), loss_sum.tolist(), bool(alive.any()), updates)


def _end_epoch(
    results: list[MemberResult],
    active: list[int],
    table: _LRTable,
    schedules: list[Schedule],
    run: _EpochLosses,
    val: list[dict[str, float]],
    stack: StackedModel,
    epoch: int,
    epochs: int,
    first: int,
    on_epoch_end: OnEpochEnd | None,
    objective: str,
) -> list[int]:
    """Each member's epoch as sweep/train/loop.py ends it; the stack positions that train on."""
    keep, t, per_epoch = [], first + run.updates, run.updates
    for pos, k in enumerate(active):
        r, schedule, bad = results[k], schedules[k], run.failed_at[pos]
        r.lr_curves.append((first, table.curves(k, bad + 1 if bad >= 0 else t - first)))
        if bad >= 0:
            r.status, r.updates, r.diverged_update = Status.FAILED, first + bad, first + bad
            r.reason = diverged_reason(epoch + 1, epochs, "loss", run.failed_loss[pos], bad + 1, per_epoch)
            continue
        r.updates = t
        metrics = {"train/loss": run.loss_sum[pos] / max(t - first, 1), **val[pos]}
        if not math.isfinite(metrics["val/loss"]):  # counted as trained, as sweep/train/loop.py counts it
            r.history.append(metrics)
            r.epochs = epoch + 1
            r.status = Status.FAILED
            r.reason = diverged_reason(epoch + 1, epochs, "val/loss", metrics["val/loss"])
            continue
        schedule.end_of_epoch(metrics[schedule.spec.get("monitor", "val/loss")])
        r.history.append(metrics)
        r.epochs = epoch + 1
        decision = on_epoch_end(k, epoch + 1, metrics) if on_epoch_end else Decision.CONTINUE
        if epoch + 1 < epochs and Decision(decision) == Decision.PRUNE:
            r.status = Status.PRUNED
            r.reason = pruned_reason(epoch + 1, epochs, objective, metrics.get(objective, float("nan")))
            r.state_dict = stack.state_dict(pos)
            continue
        keep.append(pos)
    return keep


def _train(
    members: list[Member],
    data: TrainValData,
    cfg: Mapping[str, Any],
    task: Task,
    on_epoch_end: OnEpochEnd | None,
    objective: str,
    batched_layers: bool,
) -> list[MemberResult]:
    kind, flags, groups = _settings(members)
    stack = StackedModel([m.model for m in members], task, batched_layers)
    names, device = stack.param_names, stack.device
    max_mb = float(cfg.get("on_device_max_mb", 256))
    batches = train_batches(data, int(cfg["batch_size"]), device, int(cfg["seed"]), max_mb)
    val = val_batches(data, device, on_device_max_mb=max_mb)
    autocast = autocast_for(device, cfg.get("precision", "auto"))
    clip, epochs, per_epoch = cfg.get("grad_clip"), int(cfg["epochs"]), len(batches)
    table = _LRTable(members, groups, names)
    settings = [ParamSettings.from_groups([groups[k][n] for k in range(len(members))], device) for n in names]
    optimizer = StackedOptimizer(kind, settings, flags)
    schedules = [m.schedule for m in members]
    results = [MemberResult() for _ in members]
    active = list(range(len(members)))  # the original index of each stacked member, in stack order
    check_every = 1 if device.type == "cpu" else SYNC_EVERY  # a host look at the losses is a sync on a GPU
    t = 0
    for epoch in range(epochs):
        lrs = table.epoch(active, t, per_epoch, device)
        trains = torch.tensor([[table.trains(k, j, t) for k in active] for j in range(len(names))], device=device)
        stack.set_trainable([bool(row.any()) for row in trains])
        partial = [None if bool(row.all()) else row for row in trains]
        run = _run_epoch(stack, optimizer, batches, lrs, partial, clip, autocast, check_every)
        first, t = t, t + run.updates
        val_metrics = stack.evaluate(val, autocast) if run.any_alive else [{} for _ in active]
        keep = _end_epoch(
            results, active, table, schedules, run, val_metrics, stack, epoch, epochs, first, on_epoch_end, objective
        )
        if epoch + 1 == epochs or not keep:
            for pos in keep:
                results[active[pos]].state_dict = stack.state_dict(pos)
            break
        if len(keep) < len(active):  # failed and pruned members leave the stack: no more compute
            index = torch.tensor(keep, device=device)
            stack.select(index)
            optimizer.select(index)
            active = [active[pos] for pos in keep]
    return results
