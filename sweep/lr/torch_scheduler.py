"""lr-sweep's schedules as a torch `LRScheduler`, for a training loop the user writes.

`build_scheduler(optimizer, schedule_cfg, steps_per_epoch, epochs)` returns a `ScheduleLR`:
`step()` once per optimizer update, as torch's per-update schedulers, and every param group's LR
is `peak_g * factor(t)` from `sweep.lr.schedule` (the functions the job uses, tested value for value
against torch's schedulers). Being a real `LRScheduler` it goes where torch's go: a plain loop,
Lightning's `configure_optimizers` (`"interval": "step"`), the `optimizers=(opt, sched)` of a
transformers `Trainer`. `state_dict()` is plain data (loads with `torch.load(weights_only=True)`)
and resumes the same curve, plateau state included.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Mapping

import torch
from torch.optim.lr_scheduler import LRScheduler

from sweep.errors import check
from sweep.lr.schedule import PlateauState, Schedule


class ScheduleLR(LRScheduler):
    """Sets each param group's LR from a `sweep.lr.schedule.Schedule`, one `step()` per update.

    Param groups made by `sweep.build_optimizer` carry their peak (`base_lr * mult`), their first
    epoch (`start_epoch`) and whether they are `frozen`; any other group's peak is its LR when the
    scheduler is made. A group that starts later (`groups.freeze_epochs`) has LR 0 and its
    parameters' `requires_grad` off until its start epoch, as in the job's own loop.
    With `schedule=plateau`, call `end_of_epoch(metric)` after each validation (the metric named
    by `monitor`); the other schedules ignore it.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Schedule, last_epoch: int = -1) -> None:
        self.schedule = schedule
        spe = schedule.steps_per_epoch
        self.peaks: list[float] = []
        self.starts: list[int] = []
        self.frozen: list[bool] = []
        for pg in optimizer.param_groups:
            own = "base_lr" in pg and "mult" in pg
            self.peaks.append(pg["base_lr"] * pg["mult"] if own else pg.get("initial_lr", pg["lr"]))
            self.starts.append(int(pg.get("start_epoch", 0)) * spe)
            self.frozen.append(bool(pg.get("frozen", False)))
        self._trains: list[bool | None] = [None] * len(self.peaks)
        super().__init__(optimizer, last_epoch)

    @property
    def monitor(self) -> str | None:
        """The metric `end_of_epoch` expects (plateau only; None for the other schedules)."""
        return self.schedule.spec.get("monitor") if self.schedule.spec["name"] == "plateau" else None

    def get_lr(self) -> list[float]:  # type: ignore[override]
        t = self.last_epoch
        return [0.0 if frozen else peak * self.schedule.factor(t, start)
                for peak, start, frozen in zip(self.peaks, self.starts, self.frozen)]

    _get_closed_form_lr = get_lr  # the LR is a function of the update count: any step(epoch) is exact

    def step(self, epoch: int | None = None) -> None:
        super().step(epoch)
        self._sync_trainable()

    def end_of_epoch(self, metric: float) -> None:
        """Feed the epoch's validation metric; the plateau rule may lower the LR from the next update."""
        self.schedule.end_of_epoch(float(metric))
        self._apply()

    def _apply(self) -> None:
        """Set the LRs of the current update (after a plateau decision or a resume)."""
        for pg, lr in zip(self.optimizer.param_groups, self.get_lr()):
            pg["lr"] = lr
        self._last_lr = [pg["lr"] for pg in self.optimizer.param_groups]
        self._sync_trainable()

    def _sync_trainable(self) -> None:
        """Gradients off for a group before its start epoch (only groups that start later are touched)."""
        for i, (pg, start, frozen) in enumerate(zip(self.optimizer.param_groups, self.starts, self.frozen)):
            if start == 0 or frozen:
                continue
            trains = self.last_epoch >= start
            if trains != self._trains[i]:
                for p in pg["params"]:
                    p.requires_grad_(trains)
                self._trains[i] = trains

    def state_dict(self) -> dict[str, Any]:
        """Plain data: the update count, the last LRs and the plateau state."""
        return {"last_epoch": self.last_epoch, "_step_count": self._step_count,
                "_last_lr": [float(lr) for lr in self._last_lr], "plateau": asdict(self.schedule.plateau)}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Resume the curve where `state_dict()` left it, and set the optimizer's LRs to match."""
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict.get("_step_count", self.last_epoch + 1))
        self.schedule.plateau = PlateauState(**state_dict.get("plateau", {}))
        self._trains = [None] * len(self.peaks)
        self._apply()


def build_scheduler(optimizer: torch.optim.Optimizer, schedule_cfg: Mapping[str, Any], steps_per_epoch: int,
                    epochs: int) -> ScheduleLR:
    """The schedule config (conf/schedule/*.yaml: a DictConfig node or a dict) as a torch LRScheduler
    over `epochs` epochs of `steps_per_epoch` optimizer updates; call its `step()` after every update."""
    check(isinstance(steps_per_epoch, int) and steps_per_epoch >= 1, "steps_per_epoch", steps_per_epoch,
          "an integer >= 1 (optimizer updates per epoch)")
    check(isinstance(epochs, int) and epochs >= 1, "epochs", epochs, "an integer >= 1")
    first = optimizer.param_groups[0]
    base_lr = first["base_lr"] if "base_lr" in first else optimizer.defaults["lr"]
    return ScheduleLR(optimizer, Schedule(schedule_cfg, float(base_lr), steps_per_epoch, epochs))
