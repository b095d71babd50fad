"""The per-group LR rule, written once: every consumer of a group's LR asks a `GroupLRs`.

A param group's LR at update `t` is 0 while the group is frozen, else
`base_lr * mult * schedule.factor(t, start)` (0 before the group's start epoch). The torch
scheduler users get (`sweep.lr.torch_scheduler.ScheduleLR`) holds one and writes its values into
`param_group["lr"]`; the job's loop drives that scheduler; the preview and the batched trials ask
the same rule for the same groups, so "preview = what training logs = what a user's loop gets"
holds by construction. Whether a group's parameters train at update `t` is part of the rule too.

Groups with the same peak, start and frozen flag (a named group's decayed and undecayed halves)
share one factor computation per update.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sweep.lr.schedule import Schedule


def peak_of(param_group: Mapping[str, Any]) -> float:
    """The LR a group reaches at factor 1: `base_lr * mult` for groups `sweep.build_optimizer` made,
    else the group's LR when the rule is made (as a torch scheduler's `initial_lr`), as a number:
    a tensor LR is filled in place at each update, so the peak must not be that tensor."""
    if "base_lr" in param_group and "mult" in param_group:
        return param_group["base_lr"] * param_group["mult"]
    return float(param_group.get("initial_lr", param_group["lr"]))


class GroupLRs:
    """The LR of every param group of one run at any update, from its `Schedule`.

    `param_groups` are torch param groups or mappings with their keys (`base_lr`, `mult`,
    `start_epoch`, `frozen`; see `peak_of` for groups without them). Plateau's reductions live in
    the schedule (`Schedule.end_of_epoch`), so `at(t)` always reflects the latest decision.
    """

    def __init__(self, param_groups: Sequence[Mapping[str, Any]], schedule: Schedule) -> None:
        self.schedule = schedule
        per_epoch = schedule.steps_per_epoch
        self.names = [str(pg.get("group", pg.get("name", i))) for i, pg in enumerate(param_groups)]
        self.peaks = [peak_of(pg) for pg in param_groups]
        self.starts = [int(pg.get("start_epoch", 0)) * per_epoch for pg in param_groups]
        self.frozen = [bool(pg.get("frozen", False)) for pg in param_groups]
        keys = list(zip(self.peaks, self.starts, self.frozen))
        self._unique = list(dict.fromkeys(keys))
        position = {key: i for i, key in enumerate(self._unique)}
        index = [position[key] for key in keys]
        self._index = None if len(self._unique) == len(keys) else index  # None: no group shares

    def __len__(self) -> int:
        return len(self.peaks)

    def at(self, t: int) -> list[float]:
        """Each group's LR at update `t` (counted from 0): the one rule."""
        factor = self.schedule.factor
        values = [0.0 if frozen else peak * factor(t, start) for peak, start, frozen in self._unique]
        return values if self._index is None else [values[i] for i in self._index]

    def span(self, first: int, count: int) -> list[list[float]]:
        """`at(t)` for `count` updates from `first`: one row per update."""
        return [self.at(t) for t in range(first, first + count)]

    def trains(self, group: int, t: int) -> bool:
        """Whether group `group`'s parameters get gradients at update `t` (not frozen, started)."""
        return not self.frozen[group] and t >= self.starts[group]

    def firsts(self) -> dict[str, int]:
        """Per named group (a param group's `group`, else its `name`), in order, the index of its first
        param group: the one whose LR `lr/<group>` logs."""
        out: dict[str, int] = {}
        for i, name in enumerate(self.names):
            out.setdefault(name, i)
        return out
