"""Resuming a trial where it stopped, and the stop requests that stop it there.

A cluster stops jobs: SLURM preempts or requeues them with SIGTERM, and sends SIGUSR2 ahead of the
time limit (`--signal`, submitit's checkpointing). A sweep that restarted such a trial from epoch 1
would pay its budget twice and draw a new curve over the old one. So, in a sweep:

- At each epoch end the loop writes `<job dir>/resume.pt` atomically (a temporary file, then
  `os.replace`): the model (unwrapped from DDP), the optimizer, the `ScheduleLR` state (the update
  count `t`, plateau state included), the RNG states (python, numpy, torch, cuda), the shuffling
  generator, the epochs and updates done, the loop's history and the last TensorBoard step.
- A stop request (`install_stop_signals()`: SIGTERM or SIGUSR2 set a flag; the sweep installs it,
  a library user's process only if it asks) ends the run at the loop's next check (where it
  checks for a divergence) with `Status.INTERRUPTED`; the epoch in progress is dropped and
  `resume.pt` keeps the last epoch end.
- A job that starts and finds `resume.pt` for the same trial number and config (`fingerprint`)
  continues from there: the LR curve is continuous (it is a function of `t`), values already
  reported are not reported again, and TensorBoard drops the dropped epoch's points (a purge
  marker at the resume step). COMPLETE, PRUNED and FAILED runs delete the file.

torch is imported inside the functions that need it: the sweeper (which imports no torch) reads
the stop flag and the file name from here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

RESUME_FILE = "resume.pt"
STOP_SIGNALS = ("SIGTERM", "SIGUSR2")
_stop: list[str] = []  # the name of the first signal that asked this process to stop


def request_stop(name: str) -> None:
    """Ask the running loop to stop at its next check (as a SIGTERM would)."""
    if not _stop:
        _stop.append(name)


def stop_requested() -> str | None:
    """The name of the signal that asked this process to stop, or None."""
    return _stop[0] if _stop else None


def clear_stop_request() -> None:
    _stop.clear()


def _on_signal(signum: int, frame: Any) -> None:
    name = signal.Signals(signum).name
    if stop_requested():  # SLURM signals every process of a job step: the same request may come twice
        return
    log.warning("%s received: the running trial stops at its next check and stays resumable", name)
    request_stop(name)


def install_stop_signals() -> bool:
    """SIGTERM and SIGUSR2 set the stop flag instead of ending the process (main thread only; a
    repeated signal changes nothing: SIGKILL ends a process at once). False where it cannot be
    installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for name in STOP_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _on_signal)
    return True


def fingerprint(settings: Mapping[str, Any]) -> str:
    """A short hash of a run's resolved config (the `trial` node left out): a resume point is only
    used by a run of the same config."""
    kept = {k: v for k, v in settings.items() if k != "trial"}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ResumePoint:
    """Where one trial's run keeps its resume state: `<job dir>/resume.pt`, for trial `number`."""

    job_dir: str
    number: int
    fingerprint: str

    @property
    def path(self) -> str:
        return os.path.join(self.job_dir, RESUME_FILE)

    def discard(self) -> None:
        """The run ended (complete, pruned, failed): nothing to resume."""
        for path in (self.path, f"{self.path}.tmp"):
            if os.path.exists(path):
                os.remove(path)


def _generator(batches: Any) -> Any:
    """The torch.Generator that shuffles the training batches, or None."""
    return getattr(batches, "generator", None) or getattr(getattr(batches, "loader", None), "generator", None)


def save_resume_state(
    point: ResumePoint, model: Any, optimizer: Any, scheduler: Any, result: Any, batches: Any, tensorboard_step: int
) -> None:
    """Write the run's state at an epoch end, atomically."""
    import numpy as np
    import torch

    module = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    generator = _generator(batches)
    state = {
        "number": point.number,
        "fingerprint": point.fingerprint,
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "batches": generator.get_state() if generator is not None else None,
        },
        "epochs": result.epochs,
        "updates": result.updates,
        "history": list(result.history),
        "tensorboard_step": int(tensorboard_step),
    }
    os.makedirs(point.job_dir, exist_ok=True)
    tmp = f"{point.path}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, point.path)


def load_resume_state(point: ResumePoint) -> dict[str, Any] | None:
    """The saved state of this trial's run, or None (no file, another trial's, another config's)."""
    if not os.path.isfile(point.path):
        return None
    import torch

    try:
        state = torch.load(point.path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - a damaged file: train from the start
        log.warning("%s is unreadable (%s); training from epoch 1", point.path, err)
        return None
    if state.get("number") != point.number or state.get("fingerprint") != point.fingerprint:
        log.warning("%s belongs to another trial or config; training from epoch 1", point.path)
        return None
    return state


def restore_state(
    state: Mapping[str, Any], model: Any, optimizer: Any, scheduler: Any, result: Any, batches: Any
) -> None:
    """Put a saved state back into the run's objects (the model already on its device)."""
    import numpy as np
    import torch

    module = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    module.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = state["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    generator = _generator(batches)
    if generator is not None and rng["batches"] is not None:
        generator.set_state(rng["batches"])
    result.epochs, result.updates, result.history = int(state["epochs"]), int(state["updates"]), list(state["history"])
