"""`hydra.sweeper.keep_checkpoints=K`: only the best K complete trials keep their checkpoints
(`checkpoint.pt`, and a Lightning or transformers trial's `*.ckpt` and `checkpoint-*/`).

Called after each batch of trials is recorded: a loser's checkpoint is removed only after the
winners' were written (atomically, by their jobs) and recorded, so the best trial always has one.
"""

from __future__ import annotations

import os
import shutil

import optuna

from sweep.search import results

CHECKPOINT = "checkpoint.pt"


def keep_best_checkpoints(study: optuna.Study, sweep_dir: str, keep: int | None) -> list[str]:
    """Remove the checkpoints of the complete trials ranked below the best `keep` (None: keep all);
    returns the paths removed."""
    if keep is None:
        return []
    removed = []
    for t in results.ranked(study)[keep:]:
        for path in checkpoint_files(results.trial_job_dir(t, sweep_dir)):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
            removed.append(path)
    return removed


def checkpoint_files(job_dir: str) -> list[str]:
    """What a trial's job wrote to resume or reload from: train.py's `checkpoint.pt`, Lightning's
    `*.ckpt` (`checkpoints/epoch=*.ckpt`, `last.ckpt`, at any depth) and transformers' `checkpoint-*/`
    folders (those holding its `trainer_state.json`)."""
    found = []
    if os.path.isfile(os.path.join(job_dir, CHECKPOINT)):
        found.append(os.path.join(job_dir, CHECKPOINT))
    for root, dirs, files in os.walk(job_dir):
        for name in list(dirs):
            path = os.path.join(root, name)
            if name.startswith("checkpoint-") and os.path.isfile(os.path.join(path, "trainer_state.json")):
                found.append(path)
                dirs.remove(name)
        found += [os.path.join(root, f) for f in files if f.endswith(".ckpt")]
    return found
