"""The training loop: per-group LRs each update, validation each epoch, divergence, pruning, checkpoints.

It knows nothing of Optuna beyond the trial handle (`report`, `should_prune`).

No host-device sync per update: each update's loss is copied into a small window on the device,
and the host looks at the window (its sum for `train/loss`, its first non-finite entry for a
divergence) every `trainer.sync_every` updates and at each epoch's end. On a GPU a `loss.item()`
per update would stall the queue; the window keeps the report exact (the first bad update, not
the sync point). The updates between a non-finite loss and the next sync point still run, on a run
that has already failed; nothing of them is kept.

The LRs come from the scheduler a user's own loop gets (`sweep.lr.torch_scheduler.ScheduleLR`,
stepped after each update), so what the loop logs as `lr/<group>` is what the preview draws and
what `sweep.build_scheduler` gives. A run ends with a `sweep.trial.Status`; its reasons are
worded once, in `sweep.trial`.

Epochs are counted from 1 in everything a person reads ("epoch 4/4", "pruned after epoch 3/4",
"diverged at epoch 1/20, update 17/23"). Every TensorBoard scalar uses one x axis, the number of
updates done: `lr/<group>` at the update that used it, epoch metrics and `epoch` at the update
count when the epoch ended.

Public pieces, for the LR tools and other loops over the same run: `train_batches(built, ...)`
(the run's batches on its device), `batch_loss(model, batch, task, autocast)` (one batch's loss,
as a tensor), `evaluate`, `autocast_for`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sweep.logs.tensorboard import RunWriter
from sweep.lr.rule import GroupLRs
from sweep.lr.schedule import Schedule
from sweep.lr.torch_scheduler import ScheduleLR
from sweep.train import data as datasets
from sweep.train.data import TrainValData
from sweep.train.distributed import ONE_PROCESS, Ranks
from sweep.train.resume import ResumePoint, load_resume_state, restore_state, save_resume_state, stop_requested
from sweep.train.sync_window import LossWindow, SyncDebug
from sweep.train.task import Task, call_model
from sweep.trial import NoTrial, Status, diverged_reason, interrupted_reason, paused_reason, pruned_reason

log = logging.getLogger(__name__)

SYNC_EVERY = 50


@dataclass
class Result:
    """How the loop ended: COMPLETE, PRUNED, or FAILED (a non-finite loss or validation loss; the
    reason says which). `diverged_update` is the 0-based global index of the first update whose
    loss was not finite (None unless the training loss diverged)."""

    status: Status = Status.COMPLETE
    epochs: int = 0
    updates: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    reason: str = ""
    diverged_update: int | None = None

    def metric(self, name: str, reduce: str, maximize: bool) -> float:
        values = [h[name] for h in self.history if name in h]
        if self.status == Status.FAILED or not values:
            return float("nan")
        if reduce == "best":
            return max(values) if maximize else min(values)
        return values[-1]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_for(device: torch.device, precision: Any = "auto") -> Callable[[], Any]:
    """bf16 autocast on CUDA unless `precision` is 32; a no-op context elsewhere."""
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def train_batches(
    built_or_data: Any,
    batch_size: int,
    device: torch.device | None = None,
    seed: int = 0,
    on_device_max_mb: float = 256,
) -> Any:
    """The training batches of a run (`sweep.train.job.Built` or its `data`), reshuffled each epoch from
    `seed`: `(inputs, target)` pairs already on `device` (the Built's by default); `len()` is the
    number of updates per epoch. The tensor path indexes on the device; other datasets stream."""
    data = getattr(built_or_data, "data", built_or_data)
    device = device if device is not None else getattr(built_or_data, "device", torch.device("cpu"))
    return datasets.train_batches(data, int(batch_size), device, int(seed), on_device_max_mb)


def batch_loss(
    model: nn.Module, batch: Any, task: Task, autocast: Callable[[], Any] = contextlib.nullcontext
) -> torch.Tensor:
    """The loss of one `(inputs, target)` batch already on the device, as a tensor (no host sync)."""
    inputs, target = batch
    with autocast():
        return task.loss(call_model(model, inputs), target)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Any, task: Task, autocast: Callable[[], Any]) -> dict[str, float]:
    """The task's validation metrics (`val/loss` and `val/acc` or `val/rmse`) over `batches`."""
    return task.evaluate(model, batches, autocast)


def save_checkpoint(path: str, model: nn.Module, meta: Mapping[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    tmp = f"{path}.tmp"
    torch.save({"model": model.state_dict(), **meta}, tmp)
    os.replace(tmp, path)


def _set_trainable(groups: list[dict[str, Any]], rule: GroupLRs, t: int) -> None:
    """Gradients on for the groups that train at update `t`, off for the others (the rule decides)."""
    for i, g in enumerate(groups):
        trains = rule.trains(i, t)
        for p in g["params"]:
            p.requires_grad_(trains)


def _run_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: ScheduleLR,
    batches: Any,
    task: Task,
    autocast: Callable[[], Any],
    cfg: Mapping[str, Any],
    debug: SyncDebug,
    window: LossWindow,
) -> tuple[dict[str, list[float]], tuple[int, float] | None]:
    """One epoch of updates: per group name the LR each update used (read back from the param
    group the scheduler wrote), and the first non-finite loss (index in the window, value) or None."""
    clip, groups = cfg.get("grad_clip"), optimizer.param_groups
    firsts = list(scheduler.rule.firsts().items())
    curves: dict[str, list[float]] = {n: [] for n, _ in firsts}
    for batch in batches:
        debug.arm()
        for n, i in firsts:
            curves[n].append(groups[i]["lr"])
        loss = window.ranks.batch_loss(model, batch, task, autocast)
        full = window.add(loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), float(clip))
        optimizer.step()
        scheduler.step()
        if full:
            debug.disarm()
            bad = window.flush()
            if (
                bad is not None or window.ranks.stopped()
            ):  # a stop request ends the epoch here (resume.pt keeps the last end)
                return curves, bad
    debug.disarm()
    return curves, window.flush()


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    data: TrainValData,
    cfg: Mapping[str, Any],
    writer: RunWriter | None,
    trial: NoTrial | None = None,
    objective: str = "val/acc",
    task: Task | None = None,
    resume: ResumePoint | None = None,
    ranks: Ranks | None = None,
) -> Result:
    """Train for `cfg["epochs"]` epochs; stop early on a non-finite loss or when the trial is pruned
    (never after the last epoch: a run that trained its whole budget is complete). The LRs come
    from a `ScheduleLR` over `optimizer` and `schedule`, the scheduler a user's own loop gets.
    With `resume`: continue from its saved state, save it at each epoch end, and end INTERRUPTED on a
    stop request (`sweep.train.resume`). With `ranks`: this process's part of a run on several
    (`sweep.train.distributed`; `model` wrapped in DDP, files written on rank 0 only)."""
    task, ranks, trial = task or Task(), ranks or ONE_PROCESS, trial or NoTrial()
    device = next(model.parameters()).device
    max_mb = float(cfg.get("on_device_max_mb", 256))
    batches = ranks.train_batches(data, int(cfg["batch_size"]), device, int(cfg["seed"]), max_mb)
    val = ranks.val_batches(data, device, max_mb)
    autocast = autocast_for(device, cfg.get("precision", "auto"))
    epochs, per_epoch = int(cfg["epochs"]), len(batches)
    sync_every = max(1, int(cfg.get("sync_every") or SYNC_EVERY))
    debug = SyncDebug(bool(cfg.get("sync_debug")) and device.type == "cuda")
    scheduler = ScheduleLR(optimizer, schedule)
    result = Result()
    start = _resume(resume, model, optimizer, scheduler, result, batches, writer)
    if resume is not None and ranks.world == 1:
        trial.allow_pause()  # a halving rung may pause this run: its resume state is kept
    try:
        for epoch in range(start, epochs):
            started, first = time.perf_counter(), result.updates
            _set_trainable(optimizer.param_groups, scheduler.rule, first)
            window = LossWindow(min(sync_every, max(per_epoch, 1)), device, ranks)
            curves, bad = _run_epoch(model, optimizer, scheduler, batches, task, autocast, cfg, debug, window)
            result.updates = first + len(curves[scheduler.rule.names[0]])
            if bad is not None:
                index = window.first + bad[0]  # within the epoch
                result.status, result.diverged_update, result.updates = Status.FAILED, first + index, first + index
                result.reason = diverged_reason(epoch + 1, epochs, "loss", bad[1], index + 1, per_epoch)
                curves = {n: v[: index + 1] for n, v in curves.items()}
            if writer is not None and curves[scheduler.rule.names[0]]:
                writer.lr_curves(first, curves)
            if result.status == Status.FAILED:
                log.warning("%s; stopping this run (its logs are kept)", result.reason)
                break
            if result.updates - first < per_epoch:  # a stop request ended the epoch early
                _interrupt(result, first)
                break
            metrics = {
                "train/loss": window.total / max(window.updates, 1),
                **ranks.evaluate(model, val, task, autocast),
            }
            going_on = _end_epoch(result, metrics, scheduler, writer, trial, objective, epoch, epochs, started, curves)
            if resume is not None and epoch + 1 < epochs and (going_on or result.status == Status.PAUSED):
                if ranks.rank == 0:
                    save_resume_state(resume, model, optimizer, scheduler, result, batches, result.updates)
                if going_on and ranks.stopped():
                    _interrupt(result, result.updates)
                    break
            if not going_on:
                break
    finally:
        debug.disarm()
    return result


def _resume(
    point: ResumePoint | None,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: ScheduleLR,
    result: Result,
    batches: Any,
    writer: RunWriter | None,
) -> int:
    """The epoch to start at: 0, or where the trial's saved state left off (restored into the run)."""
    state = load_resume_state(point) if point is not None else None
    if point is None or state is None:
        return 0
    restore_state(state, model, optimizer, scheduler, result, batches)
    if writer is not None:
        writer.resume_at(int(state["tensorboard_step"]), result.history)
    log.info(
        "resuming trial %s after epoch %d (update %d) from %s", point.number, result.epochs, result.updates, point.path
    )
    return result.epochs


def _interrupt(result: Result, updates: int) -> None:
    """End the run on a stop request: INTERRUPTED, resumable after the epochs done."""
    result.status, result.updates = Status.INTERRUPTED, updates
    result.reason = interrupted_reason(stop_requested() or "stop request", result.epochs)
    log.warning("%s", result.reason)


def _end_epoch(
    result: Result,
    metrics: dict[str, float],
    scheduler: ScheduleLR,
    writer: RunWriter | None,
    trial: NoTrial,
    objective: str,
    epoch: int,
    epochs: int,
    started: float,
    curves: dict[str, list[float]],
) -> bool:
    """After an epoch's validation: plateau, history, logs, divergence, pruning; False to stop."""
    schedule = scheduler.schedule
    scheduler.end_of_epoch(metrics[schedule.spec.get("monitor", "val/loss")])
    result.history.append(metrics)
    result.epochs = epoch + 1
    if writer is not None:
        writer.scalars({**metrics, "epoch": epoch + 1}, result.updates)
    lrs = " ".join(f"{n}={v[-1]:.3g}" for n, v in curves.items() if v)  # the LR of the epoch's last update
    shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    log.info("epoch %d/%d  %s  lr %s  (%.0f ms)", epoch + 1, epochs, shown, lrs, 1000 * (time.perf_counter() - started))
    if not math.isfinite(metrics["val/loss"]):
        result.status = Status.FAILED
        result.reason = diverged_reason(epoch + 1, epochs, "val/loss", metrics["val/loss"])
        log.warning("%s; stopping this run (its logs are kept)", result.reason)
        return False
    value = metrics.get(objective, float("nan"))
    trial.report(value, epoch + 1)
    if epoch + 1 < epochs and trial.should_prune():
        result.status = Status.PAUSED if trial.pauses else Status.PRUNED
        result.reason = (paused_reason if trial.pauses else pruned_reason)(epoch + 1, epochs, objective, value)
        log.info("trial %s %s", trial.number, result.reason)
        return False
    return True
