"""What a sweep prints on its terminal: one line per trial, the details in the trial's own log.

A trial's progress line says its number, parameters, how it ended, its value, the epochs it trained
and its time (`trial 3  optimizer.lr=0.0303 groups.head_lr_mult=1  complete 0.9706  2 epochs  1.2 s`);
a worker started by `hydra.sweeper.workers=N` tags its lines `[w1]`, `[w2]`, ... While a job runs in
the sweep's process its own lines (the group table, the epoch lines) go to the trial's `train.log` in
its job dir only: `quiet_console` holds them back from the terminal's handlers (errors, and a line
logged with `extra={"console": True}`, such as a batched job's fallback notice, still pass).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator
from typing import Any

from sweep.trial import Outcome, Status

log = logging.getLogger(__name__)

SWEEPER_LOGGERS = ("sweep.search", "HYDRA", "hydra", "optuna")  # what the terminal keeps during a job


def worker_tag() -> str:
    """`[w1] ` in worker 1 of `hydra.sweeper.workers=N` (counted from 1), else empty."""
    from sweep.search.processes import WORKER_ENV

    index = os.environ.get(WORKER_ENV)
    return "" if index is None else f"[w{int(index) + 1}] "


def params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def trial_line(number: int, params: dict[str, Any], outcome: Outcome, seconds: float | None) -> str:
    """The one progress line of a finished trial."""
    status = Status(outcome.status)
    if status == Status.COMPLETE:
        ended = "complete " + (
            ", ".join(f"{v:.4f}" for v in outcome.value)
            if isinstance(outcome.value, (list, tuple))
            else f"{outcome.value:.4f}"
        )
    elif status in (Status.PRUNED, Status.PAUSED):
        ended = outcome.reason or status.value
    else:
        ended = f"failed: {outcome.reason}"
    took = "" if seconds is None else f"  {seconds:.1f} s"
    epochs = f"  {outcome.epochs} epoch{'' if outcome.epochs == 1 else 's'}"
    return f"{worker_tag()}trial {number}  {params_text(dict(params))}  {ended}{epochs}{took}"


def log_trial(trial: Any, outcome: Outcome) -> None:
    """Log `trial`'s progress line (a warning when it failed)."""
    start = getattr(trial, "datetime_start", None)
    seconds = None if start is None else (datetime.datetime.now() - start).total_seconds()
    line = trial_line(trial.number, trial.params, outcome, seconds)
    log.log(logging.WARNING if Status(outcome.status) == Status.FAILED else logging.INFO, line)


class _SweeperOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return (
            record.levelno >= logging.ERROR
            or record.name.startswith(SWEEPER_LOGGERS)
            or bool(getattr(record, "console", False))
        )


@contextlib.contextmanager
def quiet_console() -> Iterator[None]:
    """Inside this block the root logger's terminal handlers show only the sweeper's lines (and
    errors); file handlers (the trial's train.log) get everything."""
    keep = _SweeperOnly()
    consoles = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    for handler in consoles:
        handler.addFilter(keep)
    try:
        yield
    finally:
        for handler in consoles:
            handler.removeFilter(keep)
