"""A user's own Hydra app and training loop, tuned by lr-sweep.

The model, the data and the loop are this file's own (nothing named backbone or head); the LR
setup comes from lr-sweep: its config groups compose into this app's config (see conf/my_app.yaml)
and its library turns them into param groups, an optimizer and a per-update scheduler.

    python examples/my_app.py                                   # one run
    python examples/my_app.py groups=layer_decay schedule=onecycle
    python examples/my_app.py -m search=lr                      # an Optuna sweep, with pruning

In a sweep the loop reports its validation accuracy each epoch and stops when the pruner says so;
outside one `sweep.current_trial` returns a handle that reports nowhere, so the loop is the same.
"""

from __future__ import annotations

import logging
import math

import hydra
import torch
from omegaconf import DictConfig
from torch import nn

import sweep
from sweep.lr.groups import group_table
from sweep.trial import Outcome, Status, complete

log = logging.getLogger(__name__)


class SpiralNet(nn.Module):
    """A small MLP: `features` then `classifier` (lr-sweep finds the classifier as the head)."""

    def __init__(self, width: int, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )
        self.classifier = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def spirals(samples: int, noise: float, seed: int, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Points on `classes` interleaved spirals: not separable by a line, learnt in seconds."""
    g = torch.Generator().manual_seed(seed)
    label = torch.arange(samples) % classes
    radius = torch.rand(samples, generator=g)
    angle = radius * 4.0 + label * (2 * math.pi / classes) + noise * torch.randn(samples, generator=g)
    x = torch.stack([radius * torch.sin(angle), radius * torch.cos(angle)], dim=1)
    return x, label


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    model.train()
    return nn.functional.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


@hydra.main(version_base="1.3", config_path="conf", config_name="my_app")
def main(cfg: DictConfig) -> float:
    tr = cfg.trainer
    torch.manual_seed(tr.seed)
    torch.set_num_threads(tr.threads)
    x, y = spirals(cfg.data.samples, cfg.data.noise, tr.seed)
    n_val = len(y) // 4
    x_train, y_train, x_val, y_val = x[n_val:], y[n_val:], x[:n_val], y[:n_val]
    model = SpiralNet(cfg.model.width)

    groups = sweep.build_groups(model, cfg.groups)
    optimizer = sweep.build_optimizer(cfg.optimizer, groups)
    steps_per_epoch = math.ceil(len(y_train) / tr.batch_size)
    scheduler = sweep.build_scheduler(optimizer, cfg.schedule, steps_per_epoch, tr.epochs)
    trial = sweep.current_trial(cfg)
    log.info("layer groups:\n%s", group_table(groups, cfg.optimizer.lr, cfg.optimizer.weight_decay))

    val_acc = float("nan")
    for epoch in range(1, tr.epochs + 1):  # counted from 1, as the logs, the pruner and the reasons say
        order = torch.randperm(len(y_train))
        for i in range(0, len(order), tr.batch_size):
            batch = order[i : i + tr.batch_size]
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            if not math.isfinite(loss.item()):
                trial.finish(
                    Outcome(Status.FAILED, None, f"diverged at epoch {epoch}/{tr.epochs}: loss={loss.item()}", epoch)
                )
                return float("nan")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()  # once per update
        val_loss, val_acc = evaluate(model, x_val, y_val)
        scheduler.end_of_epoch(val_loss)  # only schedule=plateau uses it
        lrs = {pg["name"]: f"{pg['lr']:.3g}" for pg in optimizer.param_groups}
        log.info("epoch %d/%d  val/loss %.4f  val/acc %.4f  lr %s", epoch, tr.epochs, val_loss, val_acc, lrs)
        trial.report(val_acc, epoch)
        if trial.should_prune():
            trial.finish(
                Outcome(Status.PRUNED, None, f"pruned after epoch {epoch}/{tr.epochs} (val/acc={val_acc:.4g})", epoch)
            )
            return val_acc
    trial.finish(complete(val_acc, tr.epochs))
    return val_acc


if __name__ == "__main__":
    main()
