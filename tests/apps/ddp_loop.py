"""A user's own training loop as torchrun starts it: `sweep.current_trial(cfg)` on every rank.

    python -m torch.distributed.run --standalone --nproc-per-node=2 ddp_loop.py STORAGE STUDY NUMBER OUT_DIR

Each epoch every rank reports (rank 0's value is the epoch number, the others' that plus 0.5, so a
report from another rank would show) and asks `should_prune()`; each rank writes what it saw to
OUT_DIR/rank<r>.json."""

import json
import os
import sys

import torch.distributed as dist
from omegaconf import OmegaConf

import sweep
from sweep.trial import Outcome, Status


def main(storage: str, study: str, number: str, out: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    cfg = OmegaConf.create({"trial": {"storage": storage, "study_name": study, "number": int(number)}})
    trial = sweep.current_trial(cfg)
    stopped = None
    for epoch in range(1, 6):
        trial.report(epoch + 0.5 * (rank > 0), epoch)
        if trial.should_prune():
            stopped = epoch
            break
    trial.finish(Outcome(Status.PRUNED if stopped else Status.COMPLETE, None if stopped else 5.0, "", stopped or 5))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "stopped": stopped, "handle": type(trial).__name__}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:5])
