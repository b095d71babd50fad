"""LR range test (`python train.py mode=lr_find`; Leslie Smith 2015, fastai's `lr_find`).

The base LR grows exponentially from `lr_find.start_lr` to `lr_find.end_lr` over
`lr_find.num_updates` real training updates. Every param group keeps its multiplier (its LR is
base LR x mult), so a head at 10x the backbone stays at 10x; Lightning's and ignite's finders set
every group to one LR and so measure a different optimizer from the one that will train. The loss
is smoothed (a bias-corrected moving average), the test stops once the smoothed loss exceeds
`lr_find.diverge` x its minimum or turns non-finite, and the model's weights, the optimizer's
state and torch's RNG are restored afterwards, so what follows starts from where it would have.

The suggestion (`lr_find.rule`, steepest by default) and the search interval around it are read
from the smoothed curve by `sweep/tools/lr_suggestion.py`, which cites the measurement behind them.
The settings' defaults live in one place, `conf/lr_find/default.yaml` (commented there); a caller
whose config has no `lr_find` node (a user's own app) gets them from that file too.

Writes `lr_find.png` (loss against the base LR, the suggestion and the interval marked),
`lr_find.csv` (update, each group's LR, loss, smoothed loss) and `lr_find.yaml` (`suggested_lr`,
`interval`, ...). `find(cfg, out_dir)` is the entry point for other code (the sweeper's
`lr_bounds=lr_find`); it needs no Optuna.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sweep.errors import check
from sweep.plain import plain
from sweep.tools.lr_suggestion import RULES, suggest
from sweep.tools.range_test_outputs import write_csv, write_png, write_yaml

log = logging.getLogger(__name__)

SETTINGS_FILE = Path(__file__).resolve().parents[1] / "conf" / "lr_find" / "default.yaml"


@functools.cache
def defaults() -> dict[str, Any]:
    """`lr_find.*` as shipped: read from conf/lr_find/default.yaml, the one place they are written."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(SETTINGS_FILE))  # type: ignore[return-value]


@dataclass(frozen=True)
class LRFindResult:
    """What the range test recommends: a base LR (`optimizer.lr`) and a search interval around it."""

    suggested_lr: float
    interval: tuple[float, float]
    rule: str
    group_lrs: dict[str, float] = field(default_factory=dict)  # each group's LR at the suggestion
    stopped: str = ""


@dataclass
class RangeTest:
    """The range test's record: one row per update done."""

    names: list[str]
    base_lrs: list[float] = field(default_factory=list)
    group_lrs: list[list[float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    stopped: str = ""


def settings(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """`lr_find.*` with defaults, checked."""
    s = {**defaults(), **dict(cfg or {})}
    lo, hi = s["start_lr"], s["end_lr"]
    check(isinstance(lo, (int, float)) and lo > 0, "lr_find.start_lr", lo, "a number > 0")
    check(isinstance(hi, (int, float)) and hi > lo, "lr_find.end_lr", hi, f"a number > lr_find.start_lr ({lo})")
    n = s["num_updates"]
    check(isinstance(n, int) and n >= 10, "lr_find.num_updates", n, "an integer >= 10")
    b = s["smoothing"]
    check(isinstance(b, (int, float)) and 0 <= b < 1, "lr_find.smoothing", b, "a number in [0, 1)")
    d = s["diverge"]
    check(isinstance(d, (int, float)) and d > 1, "lr_find.diverge", d, "a number > 1")
    check(s["rule"] in RULES, "lr_find.rule", s["rule"], f"one of {', '.join(RULES)}")
    return s


def base_lr_at(i: int, n: int, start_lr: float, end_lr: float) -> float:
    """The exponential sweep: start_lr at i = 0, end_lr at i = n - 1."""
    return start_lr * (end_lr / start_lr) ** (i / max(n - 1, 1))


# ----------------------------------------------------------------------------- the test


@contextlib.contextmanager
def _restored(model: nn.Module, optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Put back, on the way out, the model's weights and mode, the optimizer's state and every
    group's LR, each parameter's requires_grad and gradient, and torch's RNG state."""
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_params = [
        (p, p.requires_grad, None if p.grad is None else p.grad.detach().clone())
        for group in optimizer.param_groups
        for p in group["params"]
    ]
    saved_rng = torch.get_rng_state()
    saved_cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    was_training = model.training
    try:
        yield
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)  # state and every group's lr, as they were
        for p, flag, grad in saved_params:
            p.requires_grad_(flag)
            p.grad = grad
        torch.set_rng_state(saved_rng)
        if saved_cuda_rng is not None:
            torch.cuda.set_rng_state_all(saved_cuda_rng)
        model.train(was_training)


def range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[], Iterator[Any]],
    loss_of: Callable[[Any], torch.Tensor],
    s: Mapping[str, Any],
    grad_clip: float | None = None,
) -> RangeTest:
    """Train `s["num_updates"]` updates at exponentially growing LRs, then restore model, optimizer
    and RNG. `batches()` starts a new pass over the training data; `loss_of(batch)` is one batch's loss."""
    param_groups = optimizer.param_groups
    names = [
        group.get("group", group.get("name", f"group{i}"))  # the named group; any torch optimizer works
        for i, group in enumerate(param_groups)
    ]
    mults = [0.0 if group.get("frozen") else float(group.get("mult", 1.0)) for group in param_groups]
    firsts: dict[str, int] = {}
    for i, name in enumerate(names):
        firsts.setdefault(name, i)
    record = RangeTest(list(firsts))
    beta, average, best = float(s["smoothing"]), 0.0, math.inf
    with _restored(model, optimizer):
        model.train()
        for group in param_groups:
            for p in group["params"]:
                p.requires_grad_(not group.get("frozen"))  # a group unfrozen later in training is swept too
        stream = _cycle(batches)
        n = int(s["num_updates"])
        for i in range(n):
            base = base_lr_at(i, n, float(s["start_lr"]), float(s["end_lr"]))
            for group, mult in zip(param_groups, mults):
                group["lr"] = base * mult
            loss = loss_of(next(stream))
            value = float(loss.item())
            if not math.isfinite(value):
                record.stopped = f"loss={value} at update {i} (base LR {base:.3g})"
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), float(grad_clip))
            optimizer.step()
            average = beta * average + (1 - beta) * value
            smooth = average / (1 - beta ** (i + 1))
            record.base_lrs.append(base)
            record.group_lrs.append([param_groups[j]["lr"] for j in firsts.values()])
            record.losses.append(value)
            record.smoothed.append(smooth)
            best = min(best, smooth)
            if smooth > float(s["diverge"]) * best:
                record.stopped = (
                    f"smoothed loss {smooth:.4g} > {s['diverge']:g} x its minimum {best:.4g} "
                    f"at update {i} (base LR {base:.3g})"
                )
                break
        else:
            record.stopped = f"reached lr_find.end_lr after {n} updates"
    return record


def _cycle(batches: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    while True:
        empty = True
        for batch in batches():
            empty = False
            yield batch
        if empty:
            raise ValueError("the training data yields no batches")


# ----------------------------------------------------------------------------- entry points


def training_batches(cfg: Any, built: Any) -> Callable[[], Iterator[Any]]:
    """A new shuffled pass over the training data per call, batched as the training loop batches it."""
    from sweep.train.loop import train_batches

    tr = cfg.trainer
    batches = train_batches(
        built.data, int(tr.batch_size), built.device, int(tr.seed), float(tr.get("on_device_max_mb") or 256)
    )
    return lambda: iter(batches)


def batch_loss_of(cfg: Any, built: Any) -> Callable[[Any], torch.Tensor]:
    """One batch's loss as the training loop computes it (the job's task, its autocast)."""
    from sweep.train.loop import autocast_for, batch_loss

    autocast = autocast_for(built.device, cfg.trainer.get("precision", "auto"))
    return lambda batch: batch_loss(built.model, batch, built.task, autocast)


def measure(cfg: Any) -> tuple[RangeTest, dict[str, Any], dict[str, float]]:
    """Build the job `cfg` describes and run the range test on it: (record, settings, group multipliers)."""
    from sweep.train.build import build

    cfg = copy.deepcopy(cfg)  # build() fills in data facts; the caller's config (a sweeper's) stays as it was
    s = settings(plain(cfg.get("lr_find")))
    built = build(cfg)
    curve = range_test(
        built.model,
        built.optimizer,
        training_batches(cfg, built),
        batch_loss_of(cfg, built),
        s,
        cfg.trainer.get("grad_clip"),
    )
    mults: dict[str, float] = {}
    for pg in built.optimizer.param_groups:
        mults.setdefault(pg["group"], 0.0 if pg["frozen"] else float(pg["mult"]))
    return curve, s, mults


def find(cfg: Any, out_dir: str) -> LRFindResult:
    """Run the range test on the job `cfg` describes and write lr_find.{png,csv,yaml} into `out_dir`."""
    curve, s, mults = measure(cfg)
    lr, interval = suggest(curve.base_lrs, curve.smoothed, s["rule"])
    result = LRFindResult(lr, interval, s["rule"], {n: lr * m for n, m in mults.items()}, curve.stopped)
    os.makedirs(out_dir, exist_ok=True)
    write_csv(curve, os.path.join(out_dir, "lr_find.csv"))
    write_png(curve, result, mults, os.path.join(out_dir, "lr_find.png"))
    write_yaml(result, curve, {k: s[k] for k in defaults()}, os.path.join(out_dir, "lr_find.yaml"))
    return result


def report(result: LRFindResult, out_dir: str, overrides: Sequence[str] = ()) -> str:
    """What mode=lr_find prints: the suggestion, the interval, the files, and the command to train."""
    kept = " ".join(o for o in overrides if not o.startswith(("mode=", "lr_find.", "optimizer.lr=", "hydra.")))
    groups = ", ".join(f"{n} {v:.3g}" for n, v in result.group_lrs.items())
    return (
        f"LR range test ({result.stopped})\n"
        f"suggested_lr: {result.suggested_lr:.3g}   (rule {result.rule}; group LRs: {groups})\n"
        f"interval: [{result.interval[0]:.3g}, {result.interval[1]:.3g}]   (search optimizer.lr on a log scale here)\n"
        f"written: {out_dir}/lr_find.png, lr_find.csv, lr_find.yaml\n"
        f"next: python train.py {kept + ' ' if kept else ''}optimizer.lr={result.suggested_lr:.3g}"
    )


def run_lr_find(cfg: Any) -> float:
    """Hydra task for mode=lr_find: run the test in the job dir, log the result, return the suggestion."""
    from sweep.train.runtime import job_dir, task_overrides

    out = job_dir()
    result = find(cfg, out)
    log.info("%s", report(result, out, task_overrides()))
    return result.suggested_lr
