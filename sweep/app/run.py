"""train.py's task: the mode's job for this config, a bad setting as one line and exit 2, a
diverged single run as exit 3 with the reason. In a sweep the trial's outcome reaches the sweeper
(`sweep.search.handoff`) and errors go up to it."""

from __future__ import annotations

import logging
import os
import sys

from omegaconf import DictConfig, OmegaConf

from sweep.errors import ConfigError
from sweep.search.handoff import current_trials
from sweep.train.runtime import in_multirun, job_dir
from sweep.trial import Status

log = logging.getLogger(__name__)


def run_mode(cfg: DictConfig, mode: str) -> float | None:
    """The job of `mode` (train, preview, lr_find); several trials handed over together train as
    one stacked model (`sweep.batched`). The modules are imported for the mode that runs only.
    A preview trains nothing, so it has no objective: None."""
    if mode == "preview":
        from sweep.tools.preview import run_preview

        run_preview(cfg)
        return None
    if mode == "lr_find":
        from sweep.tools.range_test import run_lr_find

        return run_lr_find(cfg)
    handles = current_trials(cfg)  # train; the config checks refuse any other mode
    if len(handles) > 1:
        from sweep.batched.job import train_together

        return train_together(handles)
    from sweep.train.job import train_job

    return train_job(cfg, handles[0])


def run(cfg: DictConfig) -> float | None:
    """Hydra task: in a single run a bad setting is one line on stderr and exit 2, a diverged run
    exit 3 with the reason; in a sweep the trial's outcome reaches the sweeper. None for a preview."""
    try:
        mode = cfg.get("mode", "train")
        value = run_mode(cfg, mode)
    except ConfigError as err:
        if in_multirun():
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if value != value and not in_multirun() and mode == "train":  # NaN: say why in the exit status
        status = OmegaConf.load(os.path.join(job_dir(), "status.yaml"))
        if status.status == Status.PRUNED.value:  # a trial of a sweeper elsewhere stopped it
            log.info("the run was pruned: %s", status.reason)
            return value
        hint = "; try a lower optimizer.lr" if "diverged" in str(status.reason) else ""
        print(f"error: the run failed: {status.reason} (see {job_dir()}/status.yaml){hint}", file=sys.stderr)
        sys.exit(3)
    return value
