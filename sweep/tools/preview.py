"""Schedule preview (`python train.py mode=preview ...`): every group's LR at every update, no training.

The preview builds the run's own objects (`sweep.train.build.build`: data size, groups, optimizer,
schedule) from the composed config and asks for each update's LR the rule the training loop's
scheduler applies (`sweep.lr.rule.GroupLRs`, inside `sweep.lr.torch_scheduler.ScheduleLR`), so the
curve is the one a run logs as `lr/<group>`. Nothing is trained, so thousands of epochs take seconds.

Writes `preview.png` (LR against the update count, epochs marked) and `preview.csv` (`update,
epoch, <group>...`) in the job dir and logs a table (first, last, min and max LR per group, and
the epochs where it changes). In a multirun (`-m mode=preview schedule=step,cosine`) the sweep dir
also gets `preview.png` with every job's curves side by side.

Plateau lowers the LR when a validation metric stalls; without metrics it has no fixed curve, so
it is drawn at its starting LR and the output says so.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep.lr.rule import GroupLRs
from sweep.lr.schedule import Schedule

log = logging.getLogger(__name__)

PLATEAU_NOTE = (
    "schedule=plateau lowers the LR when the monitored metric stalls, which a preview "
    "cannot know: drawn at its starting LR; each reduction multiplies it by schedule.factor"
)


@dataclass
class Curves:
    """The LR of every named group (columns, in optimizer order) at every update of a run (rows)."""

    names: list[str]
    lrs: np.ndarray
    steps_per_epoch: int
    schedule: str

    @property
    def updates(self) -> np.ndarray:
        return np.arange(len(self.lrs))

    @property
    def epochs(self) -> np.ndarray:
        """The epoch (from 0) each update belongs to."""
        return self.updates // self.steps_per_epoch


def schedule_curves(param_groups: Sequence[Mapping[str, Any]], schedule: Schedule) -> Curves:
    """Every update of the run, from the rule the training loop's scheduler applies
    (`sweep.lr.rule.GroupLRs`); as `lr/<group>`, a named group's curve is its first param group's."""
    rule = GroupLRs(param_groups, schedule)
    firsts = rule.firsts()
    total = schedule.steps_per_epoch * schedule.epochs
    lrs = np.array(rule.span(0, total), dtype=float).reshape(total, len(rule))[:, list(firsts.values())]
    return Curves(list(firsts), lrs, schedule.steps_per_epoch, schedule.spec["name"])


def _ranges(epochs: Sequence[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    parts, i = [], 0
    while i < len(epochs):
        j = i
        while j + 1 < len(epochs) and epochs[j + 1] == epochs[j] + 1:
            j += 1
        parts.append(str(epochs[i]) if i == j else f"{epochs[i]}-{epochs[j]}")
        i = j + 1
    return ", ".join(parts)


def _epochs_text(epochs: Sequence[int]) -> str:
    """[4] -> 'epoch 4'; [4, 7] -> 'epochs 4, 7'."""
    return ("epoch " if len(epochs) == 1 else "epochs ") + _ranges(epochs)


def changes(values: np.ndarray, steps_per_epoch: int) -> str:
    """Where the LR changes, in epochs counted from 1 as training logs them ("epoch 4/7"): steps at
    the start of an epoch (between two epochs at a constant LR), and the epochs in which it moves
    from update to update (warmup, cosine, ...)."""
    differ = ~np.isclose(values[1:], values[:-1], rtol=1e-9, atol=0.0)
    at_start = np.arange(1, len(values)) % steps_per_epoch == 0
    epoch_of = (np.arange(1, len(values)) // steps_per_epoch).tolist()
    moving = sorted({epoch_of[i] for i in np.flatnonzero(differ & ~at_start)})
    steps = [
        e for e in (epoch_of[i] for i in np.flatnonzero(differ & at_start)) if e not in moving and e - 1 not in moving
    ]
    out = []
    if steps:
        out.append(f"steps at {_epochs_text([e + 1 for e in steps])}")
    if moving:
        out.append(f"changes within {_epochs_text([e + 1 for e in moving])}")
    return "; ".join(out) or "never"


def summary(curves: Curves) -> str:
    """The terminal table: first, last, min and max LR per group and the epochs where it changes."""
    rows = [("group", "first", "last", "min", "max", "changes")]
    for j, name in enumerate(curves.names):
        v = curves.lrs[:, j]
        rows.append(
            (
                name,
                f"{v[0]:.4g}",
                f"{v[-1]:.4g}",
                f"{v.min():.4g}",
                f"{v.max():.4g}",
                changes(v, curves.steps_per_epoch),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
    n_epochs = len(curves.lrs) // curves.steps_per_epoch
    head = (
        f"schedule={curves.schedule}: {n_epochs} epochs x {curves.steps_per_epoch} updates = {len(curves.lrs)} updates"
    )
    note = f"\nnote: {PLATEAU_NOTE}" if curves.schedule == "plateau" else ""
    return f"{head}\n{table}{note}"


def write_csv(curves: Curves, path: str) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["update", "epoch", *curves.names])
        for u, e, row in zip(curves.updates, curves.epochs, curves.lrs):
            out.writerow([int(u), int(e), *(f"{x:.10g}" for x in row)])


def read_csv(path: str) -> Curves:
    """A `preview.csv` back as curves (for the side-by-side figure)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    names, body = rows[0][2:], np.array(rows[1:], dtype=float).reshape(-1, len(rows[0]))
    epochs = body[:, 1].astype(int)
    per_epoch = int(np.sum(epochs == 0)) or 1
    return Curves(names, body[:, 2:], per_epoch, "")


def _draw(ax: Any, curves: Curves, title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    for j, name in enumerate(curves.names):
        ax.plot(curves.updates, curves.lrs[:, j], label=name, linewidth=1.5)
    spe, n_epochs = curves.steps_per_epoch, len(curves.lrs) // curves.steps_per_epoch
    every = max(1, int(np.ceil(n_epochs / 40)))  # at most ~40 epoch marks
    for e in range(every, n_epochs, every):
        ax.axvline(e * spe, color="0.85", linewidth=0.6, zorder=0)
    top = ax.secondary_xaxis("top", functions=(lambda u: u / spe, lambda e: e * spe))
    top.xaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_xlabel("epoch")
    ax.set_xlabel("update")
    ax.set_ylabel("learning rate")
    ax.set_xlim(0, max(len(curves.lrs) - 1, 1))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)


def write_png(curves: Curves, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    _draw(ax, curves, title)
    if curves.schedule == "plateau":
        ax.text(
            0.01,
            0.02,
            "plateau: drawn flat; it lowers the LR when val metrics stall",
            transform=ax.transAxes,
            fontsize=8,
            color="firebrick",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_side_by_side(sweep_dir: str) -> str | None:
    """`<sweep dir>/preview.png`: each job's preview in its own panel, titled by its overrides."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from omegaconf import OmegaConf

    jobs = sorted(
        (d for d in os.listdir(sweep_dir) if os.path.isfile(os.path.join(sweep_dir, d, "preview.csv"))),
        key=lambda d: (not d.isdigit(), int(d) if d.isdigit() else 0, d),
    )
    if len(jobs) < 2:
        return None
    cols = min(len(jobs), 3)
    rows = -(-len(jobs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False, sharey=True)
    for ax, job in zip(axes.flat, jobs):
        overrides = os.path.join(sweep_dir, job, ".hydra", "overrides.yaml")
        label = (" ".join(OmegaConf.load(overrides)) if os.path.isfile(overrides) else "") or job
        _draw(ax, read_csv(os.path.join(sweep_dir, job, "preview.csv")), f"{job}: {label}")
    for ax in list(axes.flat)[len(jobs) :]:
        ax.axis("off")
    fig.tight_layout()
    path = os.path.join(sweep_dir, "preview.png")
    tmp = os.path.join(sweep_dir, ".preview.png.tmp.png")  # jobs in parallel must not see a half-written file
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def run_preview(cfg: Any) -> None:
    """Hydra task for mode=preview: build the run's objects, write the curves, log the table."""
    from sweep.train.build import build
    from sweep.train.runtime import in_multirun, job_dir, task_overrides

    built = build(cfg)
    curves = schedule_curves(built.optimizer.param_groups, built.schedule)
    out = job_dir()
    shown = [o for o in task_overrides() if not o.startswith(("mode=", "hydra."))]
    title = (
        " ".join(shown)
        if any(o.startswith("schedule=") for o in shown)
        else " ".join([f"schedule={curves.schedule}", *shown])
    )
    write_csv(curves, os.path.join(out, "preview.csv"))
    write_png(curves, os.path.join(out, "preview.png"), title)
    log.info("LR preview (no training), written to %s/preview.{png,csv}\n%s", out, summary(curves))
    if in_multirun():
        from hydra.core.hydra_config import HydraConfig

        side = write_side_by_side(HydraConfig.get().sweep.dir)
        if side:
            log.info("all previews of this sweep side by side: %s", side)
