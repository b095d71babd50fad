"""lr-sweep in a Lightning app: a callback for the trial and a one-call `configure_optimizers`.

    import sweep.lightning

    class Model(LightningModule):
        def configure_optimizers(self):
            return sweep.lightning.configure_optimizers(self, cfg.optimizer, cfg.groups, cfg.schedule)

    trainer = Trainer(max_epochs=cfg.trainer.max_epochs,
                      callbacks=[sweep.lightning.LRSweepCallback(cfg, monitor="val/acc"),
                                 LearningRateMonitor()])   # logs lr-<Optimizer>/backbone, .../head, ...

`configure_optimizers` groups the module's parameters (`cfg.groups`: the head is found inside a
wrapping `self.net`/`self.model` too), builds lr-sweep's optimizer and its per-update scheduler
(`{"scheduler": ..., "interval": "step"}`), with the steps per epoch and the epochs taken from
`module.trainer` (`estimated_stepping_batches`, `max_epochs`, `max_steps`).

`LRSweepCallback(cfg_or_trial, monitor)` reports `trainer.callback_metrics[monitor]` to the trial
after every validation; when the pruner says so it sets `trainer.should_stop` (decided on rank 0,
broadcast to every rank through `trainer.strategy.broadcast`: the mechanism of lr-sweep's own
multi-device trials, `sweep.trial.LeaderTrial`/`FollowerTrial`, with Lightning's collective; DDP
never hangs, and no exception, so no traceback per pruned trial); at
the end of `fit` it finishes the trial once: COMPLETE with the last value, PRUNED with its reason,
FAILED on an exception. Outside a sweep it reports nowhere. With `schedule=plateau` it also feeds
the scheduler the metric `schedule.monitor` names after each validation (`configure_optimizers`
refuses plateau without this callback in the Trainer).

Works with `lightning` (`lightning.pytorch`) and, when that is not installed, `pytorch_lightning`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:  # checked against the current package name; the two classes are distinct types
    from lightning.pytorch import Callback
else:
    try:
        from lightning.pytorch import Callback
    except ImportError:  # the older package name
        from pytorch_lightning import Callback

from sweep._callbacks import TrialFeed, find_metric, plateau_metric
from sweep.errors import ConfigError, check
from sweep.lr.groups import build_groups, group_table
from sweep.lr.optimizer import build_optimizer
from sweep.lr.torch_scheduler import ScheduleLR, build_scheduler
from sweep.plain import plain

log = logging.getLogger(__name__)

__all__ = ["LRSweepCallback", "configure_optimizers", "steps_of"]


class LRSweepCallback(Callback):
    """Report `monitor` to the trial after each validation, prune by stopping the trainer, finish once.

    `trial_or_cfg` is a trial handle (`sweep.current_trial(cfg)`, a `StudyTrial`) or the job's
    config (its trial is looked up on first use); None: the trial handed over in this process, else
    a NoTrial. `monitor` is a key of `trainer.callback_metrics` (what `self.log` logged).
    """

    def __init__(self, trial_or_cfg: Any = None, monitor: str = "val/acc") -> None:
        super().__init__()
        self.feed = TrialFeed(trial_or_cfg, monitor)

    @property
    def trial(self) -> Any:
        return self.feed.trial

    @property
    def outcome(self) -> Any:
        """How the run ended, once `fit` has ended (None before)."""
        return self.feed.trial.outcome if self.feed.finished else None

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit" or self.feed.finished:
            return  # the sanity check, trainer.validate(), or a validation after the trial has ended
        metrics = trainer.callback_metrics
        _feed_plateau(trainer, metrics)
        stop = False
        if trainer.is_global_zero:
            value = find_metric(metrics, [self.feed.monitor])
            if value is None:
                self.feed.not_found(metrics)
            else:
                epochs = trainer.max_epochs if (trainer.max_epochs or 0) > 0 else trainer.current_epoch + 1
                stop = self.feed.validated(value, trainer.current_epoch + 1, epochs)
                if stop:
                    log.info("lr-sweep: %s", self.feed.pruned.reason)  # type: ignore[union-attr]
        if trainer.strategy.broadcast(stop, src=0):
            trainer.should_stop = True

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero:
            self.feed.ended(int(trainer.current_epoch))

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if trainer.is_global_zero:
            self.feed.failed(exception, int(trainer.current_epoch))


def _feed_plateau(trainer: Any, metrics: Mapping[str, Any]) -> None:
    """`schedule=plateau`: hand each ScheduleLR its monitored metric, rank 0's value on every rank
    (so all ranks keep one LR)."""
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        if isinstance(scheduler, ScheduleLR) and scheduler.monitor:
            value = plateau_metric(metrics, scheduler.monitor, [scheduler.monitor]) if trainer.is_global_zero else 0.0
            scheduler.end_of_epoch(float(trainer.strategy.broadcast(value, src=0)))


def steps_of(trainer: Any) -> tuple[int, int]:
    """(optimizer updates per epoch, epochs) of a Lightning Trainer's fit, from its data and limits:
    `estimated_stepping_batches` (updates in all), `num_training_batches`, `accumulate_grad_batches`,
    `max_epochs`; a `max_steps` that ends the run earlier shortens the epochs."""
    total = trainer.estimated_stepping_batches  # sets up the train dataloader when needed
    batches = trainer.num_training_batches
    if not isinstance(total, (int, float)) or not math.isfinite(total) or total < 1:
        raise ConfigError(
            "trainer.max_steps", trainer.max_steps, "a number of updates >= 1 when the training data has no length"
        )
    if not math.isfinite(batches):  # an iterable data set without a length: max_steps updates in one epoch
        return int(total), 1
    per_epoch = max(1, math.ceil(batches / trainer.accumulate_grad_batches))
    epochs = max(1, math.ceil(int(total) / per_epoch))
    return per_epoch, epochs


def configure_optimizers(
    module: Any,
    optimizer_cfg: Mapping[str, Any],
    groups_cfg: Mapping[str, Any],
    schedule_cfg: Mapping[str, Any],
    model: nn.Module | None = None,
) -> dict[str, Any]:
    """What `LightningModule.configure_optimizers` returns: lr-sweep's optimizer over the layer groups
    of `model` (default: the module itself) and its per-update scheduler, laid out over the epochs
    and updates `module.trainer` will run. The configs are lr-sweep's optimizer, groups and schedule
    configs (DictConfig nodes or dicts)."""
    trainer = module.trainer
    model = module if model is None else model
    groups = build_groups(model, groups_cfg)
    optimizer = build_optimizer(optimizer_cfg, groups)
    per_epoch, epochs = steps_of(trainer)
    scheduler = build_scheduler(optimizer, schedule_cfg, per_epoch, epochs)
    if scheduler.monitor:
        check(
            any(isinstance(cb, LRSweepCallback) for cb in trainer.callbacks),
            "schedule",
            "plateau",
            "a schedule other than plateau, or sweep.lightning.LRSweepCallback in the Trainer's "
            f"callbacks (it feeds plateau {scheduler.monitor} after each validation)",
        )
    if trainer.is_global_zero:
        opt = plain(optimizer_cfg)
        log.info(
            "layer groups (%d updates per epoch, %d epochs):\n%s",
            per_epoch,
            epochs,
            group_table(groups, float(opt["lr"]), float(opt.get("weight_decay", 0.0))),
        )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
