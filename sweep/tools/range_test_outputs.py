"""What the LR range test leaves behind: `lr_find.csv` (update, each group's LR, loss, smoothed
loss), `lr_find.png` (loss against the base LR, the suggestion and the interval marked) and
`lr_find.yaml` (`suggested_lr`, `interval`, each group's LR, the settings used)."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sweep.tools.range_test import LRFindResult, RangeTest


def write_csv(curve: RangeTest, path: str) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["update", *curve.names, "loss", "smoothed_loss"])
        for i, (lrs, loss, smooth) in enumerate(zip(curve.group_lrs, curve.losses, curve.smoothed)):
            out.writerow([i, *(f"{v:.10g}" for v in lrs), f"{loss:.6g}", f"{smooth:.6g}"])


def write_png(curve: RangeTest, result: LRFindResult, mults: Mapping[str, float], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(curve.base_lrs, curve.losses, color="0.75", linewidth=0.8, label="loss")
    ax.plot(curve.base_lrs, curve.smoothed, color="tab:blue", linewidth=1.8, label="smoothed loss")
    low, high = result.interval
    ax.axvspan(low, high, color="tab:green", alpha=0.12, label=f"interval [{low:.2g}, {high:.2g}]")
    at = int(np.argmin(np.abs(np.log(curve.base_lrs) - math.log(result.suggested_lr))))
    ax.axvline(result.suggested_lr, color="tab:red", linestyle="--", linewidth=1)
    ax.plot(
        [result.suggested_lr],
        [curve.smoothed[at]],
        "o",
        color="tab:red",
        label=f"suggested_lr {result.suggested_lr:.3g} ({result.rule})",
    )
    ax.set_xscale("log")
    first, lowest = curve.smoothed[0], min(curve.smoothed)
    ax.set_ylim(lowest - 0.1 * (first - lowest + 1e-12), max(first, lowest) * 1.3 + 1e-12)
    groups = ", ".join(f"{n} x{m:g}" for n, m in mults.items())
    ax.set_xlabel(f"base LR (optimizer.lr); group LRs: {groups}")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_yaml(result: LRFindResult, curve: RangeTest, settings: Mapping[str, Any], path: str) -> None:
    from omegaconf import OmegaConf

    record = {
        "suggested_lr": float(result.suggested_lr),
        "interval": [float(v) for v in result.interval],
        "rule": result.rule,
        "group_lrs": {k: float(v) for k, v in result.group_lrs.items()},
        "updates": len(curve.losses),
        "stopped": curve.stopped,
        "settings": dict(settings),
    }
    OmegaConf.save(OmegaConf.create(record), path)
