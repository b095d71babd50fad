"""`hydra.sweeper.keep_checkpoints=K`: only the best K complete trials keep `checkpoint.pt`.

Called after each batch of trials is recorded: a loser's checkpoint is removed only after the
winners' were written (atomically, by their jobs) and recorded, so the best trial always has one.
"""

from __future__ import annotations

import os

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
        path = os.path.join(results.trial_job_dir(t, sweep_dir), CHECKPOINT)
        if os.path.isfile(path):
            os.remove(path)
            removed.append(path)
    return removed
