"""lr-sweep's schedules as a torch `LRScheduler`, for a training loop the user writes.

`build_scheduler(optimizer, schedule_cfg, steps_per_epoch, epochs)` returns a `ScheduleLR`:
`step()` once per optimizer update, as torch's per-update schedulers, and every param group's LR
is `peak_g * factor(t)` from `sweep.lr.schedule` (tested value for value against torch's
schedulers), by the one rule of `sweep.lr.rule`; the job's own loop drives this same class.
Being a real `LRScheduler` it goes where torch's go: a plain loop,
Lightning's `configure_optimizers` (`"interval": "step"`), the `optimizers=(opt, sched)` of a
transformers `Trainer`. `state_dict()` is plain data (loads with `torch.load(weights_only=True)`)
and resumes the same curve, plateau state included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, cast

import torch
from torch.optim.lr_scheduler import LRScheduler

from sweep.errors import check
from sweep.lr.rule import GroupLRs
from sweep.lr.schedule import PlateauState, Schedule


class ScheduleLR(LRScheduler):
    """Sets each param group's LR from a `sweep.lr.schedule.Schedule`, one `step()` per update.

    Param groups made by `sweep.build_optimizer` carry their peak (`base_lr * mult`), their first
    epoch (`start_epoch`) and whether they are `frozen`; any other group's peak is its LR when the
    scheduler is made. The values come from one `sweep.lr.rule.GroupLRs` (`self.rule`), the rule
    the job's loop (which drives this scheduler), the preview and batched trials use. A group that
    starts later (`groups.freeze_epochs`) has LR 0 and its parameters' `requires_grad` off until its
    start epoch; a frozen group's stay off. With `schedule=plateau`, call `end_of_epoch(metric)`
    after each validation (the metric named by `monitor`); the other schedules ignore it.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Schedule, last_epoch: int = -1) -> None:
        self.schedule = schedule
        self.rule = GroupLRs(optimizer.param_groups, schedule)
        # the groups whose trainability the rule decides: frozen ones, and those that start later
        self._managed = [i for i in range(len(self.rule)) if self.rule.frozen[i] or self.rule.starts[i] > 0]
        self._turns = {self.rule.starts[i] for i in self._managed}  # updates where one may change
        self._trains: list[bool | None] = [None] * len(self.rule)
        self._floats = not any(isinstance(pg["lr"], torch.Tensor) for pg in optimizer.param_groups)
        super().__init__(optimizer, last_epoch)

    @property
    def monitor(self) -> str | None:
        """The metric `end_of_epoch` expects (plateau only; None for the other schedules)."""
        return self.schedule.spec.get("monitor") if self.schedule.spec["name"] == "plateau" else None

    def get_lr(self) -> list[float]:  # type: ignore[override]
        return self.rule.at(self.last_epoch)

    _get_closed_form_lr = get_lr  # the LR is a function of the update count: any step(epoch) is exact

    def step(self, epoch: int | None = None) -> None:
        """The next update's LRs. After the first call (torch's order checks), a plain `step()` over
        float LRs writes the rule's values straight into the param groups (torch's bookkeeping
        costs as much as the rule itself); `step(epoch)` and tensor LRs take torch's own path."""
        if epoch is not None or self._step_count <= 1 or not self._floats:
            super().step(epoch)
            self._sync_trainable()
            return
        self._step_count += 1
        t = self.last_epoch = self.last_epoch + 1
        lrs = self.rule.at(t)
        self._last_lr = cast("list[float | torch.Tensor]", lrs)  # torch's element type; floats here
        for pg, lr in zip(self.optimizer.param_groups, lrs):
            pg["lr"] = lr
        if t in self._turns:
            self._sync_trainable()

    def end_of_epoch(self, metric: float) -> None:
        """Feed the epoch's validation metric; the plateau rule may lower the LR from the next update."""
        self.schedule.end_of_epoch(float(metric))
        self._apply()

    def _write(self, lrs: list[Any]) -> None:
        """`param_group["lr"]` for every group (a tensor LR filled in place, as torch does)."""
        for pg, lr in zip(self.optimizer.param_groups, lrs):
            if isinstance(pg["lr"], torch.Tensor):
                pg["lr"].fill_(lr)
            else:
                pg["lr"] = lr
        self._last_lr = [
            lr.clone() if isinstance(lr, torch.Tensor) else lr
            for lr in (pg["lr"] for pg in self.optimizer.param_groups)
        ]

    def _apply(self) -> None:
        """Set the LRs of the current update (after a plateau decision or a resume)."""
        self._write(self.get_lr())
        self._sync_trainable()

    def _sync_trainable(self) -> None:
        """Gradients on or off as the rule says, for the groups it manages, when that changes."""
        for i in self._managed:
            trains = self.rule.trains(i, self.last_epoch)
            if trains != self._trains[i]:
                for p in self.optimizer.param_groups[i]["params"]:
                    p.requires_grad_(trains)
                self._trains[i] = trains

    def state_dict(self) -> dict[str, Any]:
        """Plain data: the update count, the last LRs and the plateau state."""
        return {
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "_last_lr": [float(lr) for lr in self._last_lr],
            "plateau": asdict(self.schedule.plateau),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Resume the curve where `state_dict()` left it, and set the optimizer's LRs to match."""
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict.get("_step_count", self.last_epoch + 1))
        self.schedule.plateau = PlateauState(**state_dict.get("plateau", {}))
        self._trains = [None] * len(self.rule)
        self._apply()


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule_cfg: Mapping[str, Any], steps_per_epoch: int, epochs: int
) -> ScheduleLR:
    """The schedule config (conf/schedule/*.yaml: a DictConfig node or a dict) as a torch LRScheduler
    over `epochs` epochs of `steps_per_epoch` optimizer updates; call its `step()` after every update."""
    check(
        isinstance(steps_per_epoch, int) and steps_per_epoch >= 1,
        "steps_per_epoch",
        steps_per_epoch,
        "an integer >= 1 (optimizer updates per epoch)",
    )
    check(isinstance(epochs, int) and epochs >= 1, "epochs", epochs, "an integer >= 1")
    first = optimizer.param_groups[0]
    base_lr = first["base_lr"] if "base_lr" in first else optimizer.defaults["lr"]
    return ScheduleLR(optimizer, Schedule(schedule_cfg, float(base_lr), steps_per_epoch, epochs))
