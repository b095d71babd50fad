"""What the Lightning and transformers callbacks share: one trial, fed a monitored metric, ended once.

`sweep.lightning` and `sweep.hf` adapt their frameworks' hooks to a `TrialFeed`; the decisions
(report, prune, the outcome and its reason, plateau's metric) live here, with no framework imported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from sweep.errors import ConfigError
from sweep.trial import LeaderTrial, NoTrial, Outcome, Status, complete, pruned_reason

log = logging.getLogger(__name__)


def resolve_trial(trial_or_cfg: Any) -> NoTrial:
    """A trial handle as it is, else the trial of a job config (`sweep.current_trial(cfg)`; a NoTrial
    outside a sweep). Under DDP the callbacks decide on rank 0 and broadcast the decision through
    their framework (the same idea as `LeaderTrial`'s collective), so rank 0 asks the real trial."""
    if isinstance(trial_or_cfg, NoTrial):
        trial = trial_or_cfg
    else:
        from sweep.search.handoff import current_trial

        trial = current_trial(trial_or_cfg)
    return trial.trial if isinstance(trial, LeaderTrial) else trial


def find_metric(metrics: Mapping[str, Any], names: Iterable[str]) -> float | None:
    """The first of `names` in `metrics`, as a float (a 0-d tensor is read), else None."""
    for name in names:
        if name in metrics and metrics[name] is not None:
            value = metrics[name]
            return float(value.item() if hasattr(value, "item") else value)
    return None


class TrialFeed:
    """One run's trial as a callback sees it: `validated(value, epoch)` after each validation,
    `ended(epochs)` at the end of training, `failed(error)` on an exception. Finishes the trial once."""

    def __init__(self, trial_or_cfg: Any, monitor: str) -> None:
        self._source, self.monitor = trial_or_cfg, monitor
        self._trial: NoTrial | None = None
        self.last: float | None = None
        self.reports = 0
        self.pruned: Outcome | None = None
        self.finished = False
        self.missing: str = ""  # why the metric could not be read, if it could not

    @property
    def trial(self) -> NoTrial:
        if self._trial is None:
            self._trial = resolve_trial(self._source)
        return self._trial

    def validated(self, value: float, epoch: int, epochs: int) -> bool:
        """Report `value` after epoch `epoch` (counted from 1) of `epochs`; True when the pruner says stop."""
        self.last = value
        self.trial.report(value, self.reports)
        self.reports += 1
        if self.pruned is None and self.trial.should_prune():
            self.pruned = Outcome(Status.PRUNED, None, pruned_reason(epoch, epochs, self.monitor, value), epoch)
        return self.pruned is not None

    def not_found(self, available: Iterable[str]) -> None:
        """The monitored metric was not among those logged: warn once, fail the trial at the end."""
        if not self.missing:
            names = ", ".join(sorted(available)) or "none"
            self.missing = f"monitor={self.monitor!r} was never logged (logged: {names})"
            log.warning("lr-sweep: %s", self.missing)

    def ended(self, epochs: int) -> None:
        """Training ended without an exception: PRUNED if the pruner stopped it, else COMPLETE with
        the last value (the objective's `last` rule), FAILED when there is none or it is not finite."""
        if self.finished:
            return
        if self.pruned is not None:
            outcome = self.pruned
        elif self.last is None:
            outcome = Outcome(Status.FAILED, None, self.missing or f"no validation reported {self.monitor}", epochs)
        else:
            outcome = complete(self.last, epochs)
        self._finish(outcome)

    def failed(self, error: BaseException, epochs: int) -> None:
        if self.finished:
            return
        self._finish(Outcome(Status.FAILED, None, f"{type(error).__name__}: {error}".splitlines()[0], epochs))

    def _finish(self, outcome: Outcome) -> None:
        self.finished = True
        self.trial.finish(outcome)


def plateau_metric(metrics: Mapping[str, Any], monitor: str, names: Iterable[str]) -> float:
    """The value `schedule.monitor` names, for plateau; a ConfigError naming what was logged if absent."""
    value = find_metric(metrics, names)
    if value is None:
        raise ConfigError(
            "schedule.monitor",
            monitor,
            f"a metric logged at validation (logged: {', '.join(sorted(metrics)) or 'none'})",
        )
    return value
