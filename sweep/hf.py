"""lr-sweep in a transformers `Trainer`: a callback for the trial and `optimizers=(optimizer, scheduler)`.

    import sweep.hf

    callback = sweep.hf.LRSweepCallback(cfg, monitor="eval_accuracy")
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val, callbacks=[callback],
                      optimizers=sweep.hf.optimizers(model, cfg.optimizer, cfg.groups, cfg.schedule,
                                                     args=args, train_dataset=train))
    trainer.train()

or, on a Trainer already made (its own train dataloader gives the steps; this form also drives
`schedule=plateau`):

    trainer.optimizer, trainer.lr_scheduler = sweep.hf.optimizers(trainer, cfg.optimizer, cfg.groups,
                                                                  cfg.schedule)

`optimizers` groups the model's parameters (`cfg.groups`), builds lr-sweep's optimizer and its
per-update scheduler (the Trainer steps it after every update) over the updates per epoch and the
epochs the Trainer will run (`per_device_train_batch_size`, the world size,
`gradient_accumulation_steps`, `dataloader_drop_last`, `num_train_epochs` or `max_steps`).

`LRSweepCallback(cfg_or_trial, monitor)` reports the evaluation metric (`eval_accuracy`; `accuracy`
and `val/accuracy` find it too) to the trial at every `on_evaluate`, stops training when the pruner
says so (`control.should_training_stop`, decided on rank 0 and broadcast), and at `on_train_end`
finishes the trial once: COMPLETE with the last value, PRUNED with its reason. transformers has no
exception hook: a run that raises is recorded FAILED by the sweeper from the exception. With
`schedule=plateau` it feeds the scheduler the metric `schedule.monitor` names after each evaluation.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from torch import nn
from transformers import TrainerCallback

from sweep._callbacks import TrialFeed, find_metric, plateau_metric
from sweep.errors import ConfigError, check
from sweep.lr.groups import build_groups, group_table
from sweep.lr.optimizer import build_optimizer
from sweep.lr.torch_scheduler import ScheduleLR, build_scheduler
from sweep.plain import plain

log = logging.getLogger(__name__)

__all__ = ["LRSweepCallback", "optimizers", "steps_of"]


def metric_names(monitor: str) -> list[str]:
    """The keys of a Trainer's eval metrics that `monitor` may mean: itself, `eval_<monitor>`, and
    for lr-sweep's `val/<name>` the Trainer's `eval_<name>`."""
    names = [monitor, f"eval_{monitor}"]
    if "/" in monitor:
        names.append(f"eval_{monitor.rsplit('/', 1)[1]}")
    return names


def _broadcast(value: Any) -> Any:
    """Rank 0's `value` on every rank (as is without torch.distributed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return value


def _epoch(state: Any) -> int:
    """The epoch an evaluation ended, counted from 1."""
    return max(1, math.ceil(float(state.epoch or 0) - 1e-6))


class LRSweepCallback(TrainerCallback):
    """Report `monitor` at each evaluation, prune by stopping training, finish the trial at the end.

    `trial_or_cfg` is a trial handle (`sweep.current_trial(cfg)`, a `StudyTrial`) or the job's
    config (its trial is looked up on first use); None: the trial handed over in this process, else
    a NoTrial.
    """

    def __init__(self, trial_or_cfg: Any = None, monitor: str = "eval_accuracy") -> None:
        self.feed = TrialFeed(trial_or_cfg, monitor)

    @property
    def trial(self) -> Any:
        return self.feed.trial

    @property
    def outcome(self) -> Any:
        """How the run ended, once training has ended (None before)."""
        return self.feed.trial.outcome if self.feed.finished else None

    def on_evaluate(
        self,
        args: Any,
        state: Any,
        control: Any,
        metrics: Mapping[str, Any] | None = None,
        lr_scheduler: Any = None,
        **kwargs: Any,
    ) -> None:
        if self.feed.finished:  # trainer.evaluate() after training: the trial has ended
            return
        metrics = metrics or {}
        if isinstance(lr_scheduler, ScheduleLR) and lr_scheduler.monitor:
            monitor = lr_scheduler.monitor
            plateau = plateau_metric(metrics, monitor, metric_names(monitor)) if state.is_world_process_zero else 0.0
            lr_scheduler.end_of_epoch(float(_broadcast(plateau)))
        stop = False
        if state.is_world_process_zero:
            value = find_metric(metrics, metric_names(self.feed.monitor))
            if value is None:
                self.feed.not_found(metrics)
            else:
                epochs = max(1, math.ceil(float(state.num_train_epochs or args.num_train_epochs)))
                stop = self.feed.validated(value, _epoch(state), epochs)
                if stop:
                    log.info("lr-sweep: %s", self.feed.pruned.reason)  # type: ignore[union-attr]
        if _broadcast(stop):
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.feed.ended(_epoch(state) if state.epoch else 0)


def steps_of(args: Any, batches: int | None) -> tuple[int, int]:
    """(optimizer updates per epoch, epochs) a Trainer runs with `args`, given the batches of one
    process's train dataloader per epoch (None: the data has no length)."""
    accumulate = max(1, int(args.gradient_accumulation_steps))
    if batches is None:
        check(
            args.max_steps > 0,
            "max_steps",
            args.max_steps,
            "a number of updates > 0 when the training data has no length (TrainingArguments)",
        )
        return int(args.max_steps), 1
    per_epoch = max(1, math.ceil(batches / accumulate))
    if args.max_steps > 0:
        return per_epoch, max(1, math.ceil(args.max_steps / per_epoch))
    return per_epoch, max(1, math.ceil(args.num_train_epochs))


def _batches(args: Any, dataset: Any) -> int | None:
    """One process's batches per epoch, as the Trainer's dataloader has them."""
    try:
        n = len(dataset)
    except TypeError:
        return None
    size = int(args.train_batch_size)
    total = n // size if args.dataloader_drop_last else math.ceil(n / size)
    return math.ceil(total / max(1, int(args.world_size)))


def optimizers(
    model: Any,
    optimizer_cfg: Mapping[str, Any],
    groups_cfg: Mapping[str, Any],
    schedule_cfg: Mapping[str, Any],
    args: Any = None,
    train_dataset: Any = None,
) -> tuple[Any, ScheduleLR]:
    """`(optimizer, scheduler)` for `Trainer(optimizers=...)`: lr-sweep's optimizer over the layer
    groups of `model` and its per-update scheduler over the updates the Trainer will run. `model`
    is the model (then `args`, its TrainingArguments, and `train_dataset` are needed) or a Trainer
    (its model, args and train dataloader are used)."""
    trainer = model if hasattr(model, "get_train_dataloader") and hasattr(model, "args") else None
    if trainer is not None:
        model, args = trainer.model, trainer.args
        loader = trainer.get_train_dataloader()
        try:
            batches: int | None = len(loader)
        except TypeError:
            batches = None
    else:
        if args is None or train_dataset is None:
            raise TypeError("sweep.hf.optimizers(model, ...) needs args= (TrainingArguments) and train_dataset=")
        batches = _batches(args, train_dataset)
    if not isinstance(model, nn.Module):
        raise TypeError(f"sweep.hf.optimizers needs a torch model or a Trainer, got {type(model).__name__}")
    groups = build_groups(model, groups_cfg)
    optimizer = build_optimizer(optimizer_cfg, groups)
    per_epoch, epochs = steps_of(args, batches)
    scheduler = build_scheduler(optimizer, schedule_cfg, per_epoch, epochs)
    if scheduler.monitor:
        fed = trainer is not None and any(isinstance(cb, LRSweepCallback) for cb in trainer.callback_handler.callbacks)
        if not fed:
            raise ConfigError(
                "schedule",
                "plateau",
                "a schedule other than plateau, or sweep.hf.optimizers(trainer, "
                f"...) on a Trainer whose callbacks include sweep.hf.LRSweepCallback (it feeds plateau "
                f"{scheduler.monitor} after each evaluation)",
            )
    opt = plain(optimizer_cfg)
    log.info(
        "layer groups (%d updates per epoch, %d epochs):\n%s",
        per_epoch,
        epochs,
        group_table(groups, float(opt["lr"]), float(opt.get("weight_decay", 0.0))),
    )
    return optimizer, scheduler
