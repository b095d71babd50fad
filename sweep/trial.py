"""The running trial as a training loop sees it: report a value, ask whether to stop, finish once.

The seam between sweeper and job, with no Optuna in it: the loop sees a `NoTrial` (or the study's
trial behind the same methods, `sweep.search.handoff.StudyTrial`) and ends it with one `Outcome`.
Outside a sweep a `NoTrial` reports nowhere and never prunes, so a loop runs unchanged with and
without the sweeper. How the sweeper hands a trial to a job: `sweep.search.handoff`.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

OUTCOME_ATTR = "outcome"


class Status(str, enum.Enum):
    """How a run ended. FAILED covers a diverged run; the reason says which failure it was.
    INTERRUPTED: stopped by a signal (preemption, a time limit, a kill) and resumable from its last
    epoch end (`sweep.train.resume`); a sweep leaves such a trial running in its study. PAUSED:
    stopped at a successive-halving rung with its resume state kept; the sweeper resumes it if
    later trials rank it into the top of that rung, else prunes it (`sweep.search.pausing`)."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    PAUSED = "paused"


def diverged_reason(
    epoch: int, epochs: int, metric: str, value: float, update: int | None = None, updates: int | None = None
) -> str:
    """Why a run failed on a non-finite value, counted from 1: "diverged at epoch 1/20, update 17/23:
    loss=nan" (a training loss) or "diverged at epoch 3/20: val/loss=inf" (a validation metric)."""
    where = f"epoch {epoch}/{epochs}" + ("" if update is None else f", update {update}/{updates}")
    return f"diverged at {where}: {metric}={value}"


def pruned_reason(epoch: int, epochs: int, objective: str, value: float) -> str:
    """Why a run stopped early: "pruned after epoch 3/20 (val/acc=0.4123)"."""
    return f"pruned after epoch {epoch}/{epochs} ({objective}={value:.4g})"


def paused_reason(epoch: int, epochs: int, objective: str, value: float) -> str:
    """Why a run stopped at a rung and may go on: "paused after epoch 2/12 (val/acc=0.9123)"."""
    return f"paused after epoch {epoch}/{epochs} ({objective}={value:.4g})"


def interrupted_reason(signal_name: str, epochs_done: int) -> str:
    """Why a run stopped before its end and can go on: "interrupted: SIGTERM; resumable from epoch 3"
    (the epoch it resumes at, counted from 1)."""
    return f"interrupted: {signal_name}; resumable from epoch {epochs_done + 1}"


@dataclass(frozen=True)
class Outcome:
    """What a job reports once, at its end: the status, the objective (None unless COMPLETE),
    why it stopped (empty when it completed), and how many epochs it trained."""

    status: Status
    value: float | None = None
    reason: str = ""
    epochs: int = 0

    def objective_or_nan(self) -> float:
        """What the job returns to Hydra: the objective of a completed run, else NaN."""
        return self.value if self.status == Status.COMPLETE and self.value is not None else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Outcome:
        return Outcome(Status(d["status"]), d.get("value"), str(d.get("reason", "")), int(d.get("epochs", 0)))


def complete(value: float, epochs: int) -> Outcome:
    """A finished run; a non-finite objective is a failure, not a result."""
    if value is None or not math.isfinite(float(value)):
        return Outcome(Status.FAILED, None, f"non-finite objective: {value!r}", epochs)
    return Outcome(Status.COMPLETE, float(value), "", epochs)


def write_status(out: str, outcome: Outcome) -> None:
    """`status.yaml` in the job dir, from the outcome the trial gets: status (complete, pruned,
    failed, ...), reason, epochs, value. Written atomically (a kill mid-write leaves the old one)."""
    import yaml

    path = os.path.join(out, "status.yaml")
    with open(f"{path}.tmp", "w") as f:
        yaml.dump(outcome.to_dict(), f, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)
    os.replace(f"{path}.tmp", path)


class NoTrial:
    """A run outside a sweep: reports nowhere, never prunes, keeps its outcome for the caller."""

    number: int | None = None
    pauses = False  # a stop asked at a halving rung is a pause (see `allow_pause`)
    params: Mapping[str, Any] = {}
    job_dir: str | None = None  # None: the job's own Hydra output dir
    config: Any = None

    def __init__(self) -> None:
        self.outcome: Outcome | None = None

    def report(self, value: float, step: int) -> None:
        """Record the objective after `step` (an epoch) for the pruner."""

    def should_prune(self) -> bool:
        return False

    def allow_pause(self) -> None:
        """Said by a loop that keeps a resume state: a stop at a rung may be a pause (then `pauses`)."""

    def finish(self, outcome: Outcome) -> None:
        """Record how the run ended; call once, at the end."""
        self.outcome = outcome


class LeaderTrial(NoTrial):
    """Rank 0's trial in a run on several processes: the real trial behind the same methods, whose
    `should_prune()` also hands its decision to every other rank through `agree(decision)` (a
    collective every rank joins at the same point; `sweep.train.distributed`)."""

    def __init__(self, trial: NoTrial, agree: Callable[[bool], bool]) -> None:
        super().__init__()
        self.trial, self.agree = trial, agree

    def __getattr__(self, name: str) -> Any:  # number, params, job_dir, config, and the rest of the real trial
        return getattr(self.__dict__["trial"], name)

    @property
    def number(self) -> int | None:  # type: ignore[override]
        return self.trial.number

    @property
    def params(self) -> Mapping[str, Any]:  # type: ignore[override]
        return self.trial.params

    @property
    def job_dir(self) -> str | None:  # type: ignore[override]
        return self.trial.job_dir

    @property
    def config(self) -> Any:
        return self.trial.config

    def report(self, value: float, step: int) -> None:
        self.trial.report(value, step)

    def should_prune(self) -> bool:
        return self.agree(self.trial.should_prune())

    def finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.trial.finish(outcome)


class FollowerTrial(NoTrial):
    """Another rank's view of rank 0's trial: `report` and `finish` keep nothing anywhere (rank 0
    reports once per epoch for all), and `should_prune()` returns rank 0's decision, received
    through `agree` at the same point where rank 0 asks its pruner."""

    def __init__(self, agree: Callable[[bool], bool], rank: int, number: int | None = None) -> None:
        super().__init__()
        self.agree, self.rank, self.number = agree, rank, number

    def should_prune(self) -> bool:
        return self.agree(False)


_HANDED_OVER: contextvars.ContextVar[tuple[NoTrial, ...] | None] = contextvars.ContextVar(
    "lr_sweep_handed_over", default=None
)


@contextlib.contextmanager
def handed_over(handles: Sequence[NoTrial]) -> Iterator[None]:
    """Make `handles` the trials of the job called inside this block (the sweeper's side)."""
    token = _HANDED_OVER.set(tuple(handles))
    try:
        yield
    finally:
        _HANDED_OVER.reset(token)


def handed_over_trials() -> tuple[NoTrial, ...] | None:
    """The handles of the enclosing `handed_over` block, or None outside one."""
    return _HANDED_OVER.get()


def __getattr__(name: str) -> Any:
    """`sweep.trial.current_trial` and its kin moved to `sweep.search.handoff` (deprecated here)."""
    if name in ("current_trial", "current_trials", "StudyTrial"):
        import importlib
        import warnings

        warnings.warn(f"sweep.trial.{name} moved to sweep.search.handoff", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module("sweep.search.handoff"), name)
    raise AttributeError(f"module 'sweep.trial' has no attribute {name!r}")
