"""Helpers shared by the benchmarks: config composition, the job's set-up, medians, tables."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
PY = sys.executable


def compose(overrides: Sequence[str] = ()) -> Any:
    """conf/train.yaml composed with `overrides`, as Hydra would (no `hydra` node, no HydraConfig)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=list(overrides))


def build_job(cfg: Any) -> dict[str, Any]:
    """What sweep.train.job.train_job builds before it calls sweep.train.loop.train (sweep.train.build.build itself)."""
    from omegaconf import OmegaConf

    from sweep.train.build import build

    b = build(cfg)
    return {
        "model": b.model,
        "optimizer": b.optimizer,
        "schedule": b.schedule,
        "data": b.data,
        "device": b.device,
        "trainer": OmegaConf.to_container(cfg.trainer, resolve=True),
        "metric": str(cfg.objective.metric),
    }


def threads(n: int) -> dict[str, str]:
    """Pin torch's intra-op threads to `n` here (0: torch's default) and return the env for subprocesses.

    On a small shared machine torch's default (one thread per core) spin-waits against other
    processes and an update of this MLP swings from ~2 ms to ~40 ms; one thread keeps timings stable.
    Both sides of every comparison run with the same setting.
    """
    import os

    import torch

    if n:
        torch.set_num_threads(n)
        return {**os.environ, "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
    return dict(os.environ)


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table; floats printed with 3 significant decimals."""
    cells = [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(r: Sequence[Any]) -> str:
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])
