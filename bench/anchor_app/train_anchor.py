"""The anchor's training app: the digits job that lr-sweep's `search=lr` sweeps, written as a user of
the Hydra Optuna plugin would write it (plain PyTorch, no lr-sweep code), so both sweeps train the same
thing and only the sweep machinery differs.

Same data (scikit-learn's digits CSV, 20% held out by a seed-0 permutation, as sweep/train/data.py), model
(MLP 64-256-256-10: a backbone and a head), optimizer (SGD, momentum 0.9, weight decay 1e-4, the head's
LR = optimizer.lr x groups.head_lr_mult), step decay per epoch, batch 64, torch's default threads.
Returns the last epoch's val accuracy. Each job writes `epochs.json` (per-epoch ms and their sum) in
its job dir, which the bench reads as the trial's training time.

    bench/.venv-anchor/bin/python bench/anchor_app/train_anchor.py -m hydra.sweeper.n_trials=10 data.csv=...
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import logging
import os
import time

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from torch import nn

log = logging.getLogger(__name__)


def digits_csv(path: str | None) -> str:
    """The CSV that scikit-learn ships; read directly, so this environment needs no scikit-learn."""
    if path:
        return path
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: data.csv is not set and scikit-learn is not installed to find digits.csv.gz")
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "digits.csv.gz")


def load_digits(cfg: DictConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return _load_digits(digits_csv(cfg.csv), int(cfg.seed), float(cfg.val_fraction))


@functools.lru_cache(maxsize=4)
def _load_digits(csv: str, seed: int, val_fraction: float) -> tuple[torch.Tensor, ...]:
    """Read once per process, as lr-sweep does: the trials of one sweep share the data (the bench
    compares the sweep machinery, not CSV parsing)."""
    with gzip.open(csv, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x, y = table[:, :-1] / 16.0, table[:, -1].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = int(round(len(y) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return t(x[train]), t(y[train]), t(x[val]), t(y[val])


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, hidden: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    model.train()
    return nn.functional.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    torch.manual_seed(int(cfg.trainer.seed))
    np.random.seed(int(cfg.trainer.seed))
    x_train, y_train, x_val, y_val = load_digits(cfg.data)
    model = MLP(x_train.shape[1], int(y_train.max()) + 1, list(cfg.model.hidden))
    lr, mult = float(cfg.optimizer.lr), float(cfg.groups.head_lr_mult)
    optimizer = torch.optim.SGD(
        [{"params": model.backbone.parameters(), "lr": lr}, {"params": model.head.parameters(), "lr": lr * mult}],
        lr=lr,
        momentum=float(cfg.optimizer.momentum),
        weight_decay=float(cfg.optimizer.weight_decay),
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, int(cfg.schedule.step_size), float(cfg.schedule.gamma))
    generator = torch.Generator().manual_seed(int(cfg.trainer.seed))
    bs, n = int(cfg.trainer.batch_size), len(y_train)
    epoch_ms: list[float] = []
    val_acc = float("nan")
    for epoch in range(int(cfg.trainer.epochs)):
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator)
        loss_sum, n_batches = 0.0, 0
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
            n_batches += 1
        scheduler.step()
        val_loss, val_acc = accuracy(model, x_val, y_val)
        epoch_ms.append(1000 * (time.perf_counter() - started))
        log.info(
            "epoch %d/%d  train/loss %.4f  val/loss %.4f  val/acc %.4f  (%.0f ms)",
            epoch + 1,
            cfg.trainer.epochs,
            loss_sum / n_batches,
            val_loss,
            val_acc,
            epoch_ms[-1],
        )
        if not np.isfinite(val_loss):
            break
    with open(os.path.join(HydraConfig.get().runtime.output_dir, "epochs.json"), "w") as f:
        json.dump({"epoch_ms": epoch_ms, "train_s": sum(epoch_ms) / 1000}, f)
    return val_acc


if __name__ == "__main__":
    main()
