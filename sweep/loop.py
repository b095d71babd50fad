"""The training loop: per-group LRs each update, validation each epoch, divergence, checkpoints.

It knows nothing of Optuna beyond the trial handle (report, should_prune, pruned).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from sweep.data import Batches, DataSet
from sweep.schedules import Schedule
from sweep.tensorboard import RunWriter
from sweep.trial import NoTrial

log = logging.getLogger(__name__)

COMPLETED, DIVERGED, PRUNED = "completed", "diverged", "pruned"


@dataclass
class Result:
    status: str
    epochs: int = 0
    updates: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    reason: str = ""

    def metric(self, name: str, reduce: str, maximize: bool) -> float:
        values = [h[name] for h in self.history if name in h]
        if self.status == DIVERGED or not values:
            return float("nan")
        if reduce == "best":
            return max(values) if maximize else min(values)
        return values[-1]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, autocast: Callable[[], Any],
             batch_size: int = 4096) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over (x, y)."""
    model.eval()
    loss_sum, correct = torch.zeros((), device=x.device), torch.zeros((), device=x.device)
    for i in range(0, len(y), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        with autocast():
            logits = model(xb)
        loss_sum += nn.functional.cross_entropy(logits.float(), yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    model.train()
    n = max(len(y), 1)
    return loss_sum.item() / n, correct.item() / n


def save_checkpoint(path: str, model: nn.Module, meta: Mapping[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    tmp = f"{path}.tmp"
    torch.save({"model": model.state_dict(), **meta}, tmp)
    os.replace(tmp, path)


def train(model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule, data: DataSet,
          cfg: Mapping[str, Any], writer: RunWriter | None, trial: NoTrial = NoTrial(),
          objective: str = "val/acc") -> Result:
    """Train for `cfg.epochs` epochs; stop early on a non-finite loss or when the trial is pruned."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(int(cfg["seed"]))
    batches = Batches(data.x_train, data.y_train, int(cfg["batch_size"]), device, True,
                      float(cfg.get("on_device_max_mb", 256)), generator)
    x_val, y_val = data.x_val.to(device), data.y_val.to(device)
    bf16 = device.type == "cuda" and cfg.get("precision", "auto") in ("auto", "bf16")
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    clip = cfg.get("grad_clip")
    spe = len(batches)
    pgs = optimizer.param_groups
    targets = [(pg, pg["base_lr"] * pg["mult"], pg["start_epoch"] * spe, pg["frozen"]) for pg in pgs]
    names = list(dict.fromkeys(pg["name"] for pg in pgs))
    first_pg = {n: next(i for i, pg in enumerate(pgs) if pg["name"] == n) for n in names}
    result = Result(COMPLETED)
    t = 0
    for epoch in range(int(cfg["epochs"])):
        started = time.perf_counter()
        for pg in pgs:
            trains = not pg["frozen"] and epoch >= pg["start_epoch"]
            for p in pg["params"]:
                p.requires_grad_(trains)
        curves: dict[str, list[float]] = {n: [] for n in names}
        loss_sum, n_batches = 0.0, 0
        for xb, yb in batches:
            for pg, peak, start, frozen in targets:
                pg["lr"] = 0.0 if frozen else peak * schedule.factor(t, start)
            for n in names:
                curves[n].append(pgs[first_pg[n]]["lr"])
            with autocast():
                loss = nn.functional.cross_entropy(model(xb), yb)
            value = loss.item()
            if not math.isfinite(value):
                result.status = DIVERGED
                result.reason = f"diverged: loss={value} at epoch {epoch}, update {t}"
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), float(clip))
            optimizer.step()
            loss_sum += value
            n_batches += 1
            t += 1
        result.updates = t
        if writer is not None and n_batches:
            writer.lr_curves(t - len(curves[names[0]]) + (result.status == DIVERGED), curves)
        if result.status == DIVERGED:
            log.warning("epoch %d: %s; stopping this run (its logs are kept)", epoch, result.reason)
            break
        val_loss, val_acc = evaluate(model, x_val, y_val, autocast)
        metrics = {"train/loss": loss_sum / max(n_batches, 1), "val/loss": val_loss, "val/acc": val_acc}
        schedule.end_of_epoch(metrics[schedule.spec.get("monitor", "val/loss")])
        result.history.append(metrics)
        result.epochs = epoch + 1
        if writer is not None:
            writer.scalars(metrics, epoch)
        lrs = " ".join(f"{n}={pgs[first_pg[n]]['lr']:.3g}" for n in names)
        log.info("epoch %d/%d  train/loss %.4f  val/loss %.4f  val/acc %.4f  lr %s  (%.0f ms)",
                 epoch + 1, cfg["epochs"], metrics["train/loss"], val_loss, val_acc, lrs,
                 1000 * (time.perf_counter() - started))
        if not math.isfinite(val_loss):
            result.status, result.reason = DIVERGED, f"diverged: val/loss={val_loss} at epoch {epoch}"
            log.warning("epoch %d: %s; stopping this run (its logs are kept)", epoch, result.reason)
            break
        trial.report(metrics[objective], epoch)
        if trial.should_prune():
            result.status = PRUNED
            result.reason = f"pruned at epoch {epoch} ({objective}={metrics[objective]:.4g})"
            log.info("trial %s %s", trial.number, result.reason)
            break
    return result
