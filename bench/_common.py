"""Helpers shared by the benchmarks: config composition, the job's set-up, medians, tables."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
PY = sys.executable


def compose(overrides: Sequence[str] = ()) -> Any:
    """conf/train.yaml composed with `overrides`, as Hydra would (no `hydra` node, no HydraConfig)."""
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=list(overrides))


def build_job(cfg: Any) -> dict[str, Any]:
    """What sweep.job.train_job builds before it calls sweep.loop.train (same functions, same order)."""
    from omegaconf import OmegaConf

    from sweep import config, data as datasets
    from sweep.groups import build_groups
    from sweep.job import seed_everything
    from sweep.loop import pick_device
    from sweep.models import build_model
    from sweep.optim import build_optimizer
    from sweep.schedules import Schedule

    config.validate(cfg)
    tr = cfg.trainer
    seed_everything(int(tr.seed), bool(tr.deterministic))
    device = pick_device(tr.device)
    data = datasets.load(OmegaConf.to_container(cfg.data, resolve=True))
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), data.num_features, data.num_classes)
    model.to(device)
    groups_cfg = OmegaConf.to_container(cfg.groups, resolve=True)
    groups = build_groups(model, groups_cfg)
    optimizer = build_optimizer(OmegaConf.to_container(cfg.optimizer, resolve=True), groups,
                                bool(groups_cfg.get("decay_norm_bias", False)))
    steps_per_epoch = -(-len(data.y_train) // int(tr.batch_size))
    schedule = Schedule(OmegaConf.to_container(cfg.schedule, resolve=True), float(cfg.optimizer.lr),
                        steps_per_epoch, int(tr.epochs))
    return {"model": model, "optimizer": optimizer, "schedule": schedule, "data": data, "device": device,
            "trainer": OmegaConf.to_container(tr, resolve=True), "metric": str(cfg.objective.metric)}


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
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])
