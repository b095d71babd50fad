"""LR range test (`python train.py mode=lr_find`; Leslie Smith 2015, fastai's `lr_find`).

The base LR grows exponentially from `lr_find.start_lr` to `lr_find.end_lr` over
`lr_find.num_updates` real training updates. Every param group keeps its multiplier (its LR is
base LR x mult), so a head at 10x the backbone stays at 10x; Lightning's and ignite's finders set
every group to one LR and so measure a different optimizer from the one that will train. The loss
is smoothed (a bias-corrected moving average), the test stops once the smoothed loss exceeds
`lr_find.diverge` x its minimum or turns non-finite, and the model's weights, the optimizer's
state and torch's RNG are restored afterwards, so what follows starts from where it would have.

The suggestion is the steepest fall of the smoothed loss against log LR (`lr_find.rule=steepest`,
Lightning's rule), chosen by measurement: `bench/lr_find_rules.py` trains the default job at 8
base LRs (1e-3 ... 3.2, half-decade steps, 2 seeds, 20 epochs) on digits with the MLP and the CNN
and on the synthetic set, and compares each rule's suggestion with the best of those real runs.
With the default settings `steepest` landed within half a decade of the best base LR in 6 of 6
cases (digits MLP 0.056 vs best 0.1; CNN 0.023-0.032 vs 0.032; synthetic 0.0046 vs 0.0032-0.01);
`minimum` (the LR of the lowest smoothed loss / 10) in 2 of 6 (on the synthetic set the loss keeps
falling almost to divergence, so it lands 1-2 decades too high); fastai's `valley` in 1 of 6 (the
long flat start of these curves makes its "longest fall" start at lr_find.start_lr, 1.5-2 decades
too low). The suggestion depends on the settings together (the smoothing lags by about
1/(1 - smoothing) updates, a fixed share of the sweep's decades), and they were measured together.

The recommended search interval runs from a decade below the suggestion to the LR of the lowest
smoothed loss (the edge beyond which training gets worse), kept between sqrt(10) and 10 x the
suggestion (on the synthetic set the loss falls until 8, far past where 20-epoch runs diverge);
it held the best base LR in 6 of 6 cases.

Writes `lr_find.png` (loss against the base LR, the suggestion and the interval marked),
`lr_find.csv` (update, each group's LR, loss, smoothed loss) and `lr_find.yaml` (`suggested_lr`,
`interval`, ...). `find(cfg, out_dir)` is the entry point for other code (the sweeper's
`lr_bounds=lr_find`); it needs no Optuna.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sweep.errors import check

log = logging.getLogger(__name__)

RULES = ("valley", "steepest", "minimum")
DEFAULTS = {"start_lr": 1e-6, "end_lr": 10.0, "num_updates": 200, "smoothing": 0.98, "diverge": 4.0,
            "rule": "steepest"}


@dataclass(frozen=True)
class LRFindResult:
    """What the range test recommends: a base LR (`optimizer.lr`) and a search interval around it."""

    suggested_lr: float
    interval: tuple[float, float]
    rule: str = "steepest"
    group_lrs: dict[str, float] = field(default_factory=dict)  # each group's LR at the suggestion
    stopped: str = ""


@dataclass
class Sweep:
    """The range test's record: one row per update done."""

    names: list[str]
    base_lrs: list[float] = field(default_factory=list)
    group_lrs: list[list[float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    stopped: str = ""


def settings(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """`lr_find.*` with defaults, checked."""
    s = {**DEFAULTS, **dict(cfg or {})}
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


def range_test(model: nn.Module, optimizer: torch.optim.Optimizer,
               batches: Callable[[], Iterator[Any]], loss_of: Callable[[Any], torch.Tensor],
               s: Mapping[str, Any], grad_clip: float | None = None) -> Sweep:
    """Train `s["num_updates"]` updates at exponentially growing LRs, then restore model, optimizer
    and RNG. `batches()` starts a new pass over the training data; `loss_of(batch)` is one batch's loss."""
    pgs = optimizer.param_groups
    names = [pg.get("name", f"group{i}") for i, pg in enumerate(pgs)]  # any torch optimizer works
    mults = [0.0 if pg.get("frozen") else float(pg.get("mult", 1.0)) for pg in pgs]
    firsts: dict[str, int] = {}
    for i, name in enumerate(names):
        firsts.setdefault(name, i)
    record = Sweep(list(firsts))
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_params = [(p, p.requires_grad, None if p.grad is None else p.grad.detach().clone())
                    for pg in pgs for p in pg["params"]]
    saved_rng = torch.get_rng_state()
    saved_cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    was_training = model.training
    beta, average, best = float(s["smoothing"]), 0.0, math.inf
    try:
        model.train()
        for pg in pgs:
            for p in pg["params"]:
                p.requires_grad_(not pg.get("frozen"))  # a group unfrozen later in training is swept too
        stream = _cycle(batches)
        n = int(s["num_updates"])
        for i in range(n):
            base = base_lr_at(i, n, float(s["start_lr"]), float(s["end_lr"]))
            for pg, mult in zip(pgs, mults):
                pg["lr"] = base * mult
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
            record.group_lrs.append([pgs[j]["lr"] for j in firsts.values()])
            record.losses.append(value)
            record.smoothed.append(smooth)
            best = min(best, smooth)
            if smooth > float(s["diverge"]) * best:
                record.stopped = (f"smoothed loss {smooth:.4g} > {s['diverge']:g} x its minimum {best:.4g} "
                                  f"at update {i} (base LR {base:.3g})")
                break
        else:
            record.stopped = f"reached lr_find.end_lr after {n} updates"
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
    return record


def _cycle(batches: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    while True:
        empty = True
        for batch in batches():
            empty = False
            yield batch
        if empty:
            raise ValueError("the training data yields no batches")


# ----------------------------------------------------------------------------- suggestion rules


def valley(lrs: Sequence[float], smoothed: Sequence[float]) -> int:
    """fastai's default: the longest run of falling loss (a longest decreasing subsequence), and the
    point halfway along it (in log LR: the updates are log-spaced)."""
    n = len(smoothed)
    length, first = [1] * n, list(range(n))
    for i in range(n):
        for j in range(i):
            if smoothed[j] > smoothed[i] and length[j] + 1 > length[i]:
                length[i], first[i] = length[j] + 1, first[j]
    end = max(range(n), key=lambda i: (length[i], -i))
    return first[end] + (end - first[end]) // 2


def steepest(lrs: Sequence[float], smoothed: Sequence[float]) -> int:
    """Lightning's suggestion: the steepest fall of the smoothed loss against log LR (skipping the
    first 10 points, where the moving average is still settling)."""
    x, y = np.log10(np.asarray(lrs)), np.asarray(smoothed)
    skip = min(10, max(len(y) - 3, 0))
    slope = np.gradient(y[skip:], x[skip:]) if len(y) - skip >= 2 else np.zeros(1)
    return skip + int(np.argmin(slope))


def minimum(lrs: Sequence[float], smoothed: Sequence[float]) -> int:
    """fastai's `minimum`: the lowest smoothed loss (the caller divides its LR by 10)."""
    return int(np.argmin(smoothed))


def suggest(lrs: Sequence[float], smoothed: Sequence[float], rule: str) -> tuple[float, tuple[float, float]]:
    """(suggested base LR, recommended interval) from the sweep's LRs and smoothed losses."""
    check(len(lrs) >= 3, "lr_find", f"{len(lrs)} finite updates",
          "at least 3 updates before the loss diverged: lower lr_find.start_lr")
    lrs = [float(v) for v in lrs]
    at_min = lrs[minimum(lrs, smoothed)]
    if rule == "minimum":
        lr = at_min / 10
    else:
        lr = lrs[{"valley": valley, "steepest": steepest}[rule](lrs, smoothed)]
    high = min(max(at_min, lr * math.sqrt(10)), lr * 10)  # holds the suggestion; at most 2 decades wide
    return lr, (lr / 10, high)


# ----------------------------------------------------------------------------- outputs


def write_csv(sweep: Sweep, path: str) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["update", *sweep.names, "loss", "smoothed_loss"])
        for i, (lrs, loss, smooth) in enumerate(zip(sweep.group_lrs, sweep.losses, sweep.smoothed)):
            out.writerow([i, *(f"{v:.10g}" for v in lrs), f"{loss:.6g}", f"{smooth:.6g}"])


def write_png(sweep: Sweep, result: LRFindResult, mults: Mapping[str, float], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(sweep.base_lrs, sweep.losses, color="0.75", linewidth=0.8, label="loss")
    ax.plot(sweep.base_lrs, sweep.smoothed, color="tab:blue", linewidth=1.8, label="smoothed loss")
    low, high = result.interval
    ax.axvspan(low, high, color="tab:green", alpha=0.12, label=f"interval [{low:.2g}, {high:.2g}]")
    at = int(np.argmin(np.abs(np.log(sweep.base_lrs) - math.log(result.suggested_lr))))
    ax.axvline(result.suggested_lr, color="tab:red", linestyle="--", linewidth=1)
    ax.plot([result.suggested_lr], [sweep.smoothed[at]], "o", color="tab:red",
            label=f"suggested_lr {result.suggested_lr:.3g} ({result.rule})")
    ax.set_xscale("log")
    first, lowest = sweep.smoothed[0], min(sweep.smoothed)
    ax.set_ylim(lowest - 0.1 * (first - lowest + 1e-12), max(first, lowest) * 1.3 + 1e-12)
    groups = ", ".join(f"{n} x{m:g}" for n, m in mults.items())
    ax.set_xlabel(f"base LR (optimizer.lr); group LRs: {groups}")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_yaml(result: LRFindResult, sweep: Sweep, s: Mapping[str, Any], path: str) -> None:
    from omegaconf import OmegaConf

    record = {
        "suggested_lr": float(result.suggested_lr),
        "interval": [float(v) for v in result.interval],
        "rule": result.rule,
        "group_lrs": {k: float(v) for k, v in result.group_lrs.items()},
        "updates": len(sweep.losses),
        "stopped": sweep.stopped,
        "settings": {k: s[k] for k in DEFAULTS},
    }
    OmegaConf.save(OmegaConf.create(record), path)


# ----------------------------------------------------------------------------- entry points


def training_batches(cfg: Any, built: Any) -> Callable[[], Iterator[Any]]:
    """A new shuffled pass over the training data per call, batched as the training loop batches it."""
    from sweep.train.loop import train_batches

    tr = cfg.trainer
    batches = train_batches(built.data, int(tr.batch_size), built.device, int(tr.seed),
                            float(tr.get("on_device_max_mb") or 256))
    return lambda: iter(batches)


def batch_loss_of(cfg: Any, built: Any) -> Callable[[Any], torch.Tensor]:
    """One batch's loss as the training loop computes it (the job's task, its autocast)."""
    from sweep.train.loop import autocast_for, batch_loss

    autocast = autocast_for(built.device, cfg.trainer.get("precision", "auto"))
    return lambda batch: batch_loss(built.model, batch, built.task, autocast)


def measure(cfg: Any) -> tuple[Sweep, dict[str, Any], dict[str, float]]:
    """Build the job `cfg` describes and run the range test on it: (record, settings, group multipliers)."""
    from omegaconf import OmegaConf

    from sweep.train.build import build

    cfg = copy.deepcopy(cfg)  # build() fills in data facts; the caller's config (a sweeper's) stays as it was
    s = settings(OmegaConf.to_container(cfg.lr_find, resolve=True) if cfg.get("lr_find") is not None else None)
    built = build(cfg)
    sweep = range_test(built.model, built.optimizer, training_batches(cfg, built), batch_loss_of(cfg, built), s,
                       cfg.trainer.get("grad_clip"))
    mults: dict[str, float] = {}
    for pg in built.optimizer.param_groups:
        mults.setdefault(pg["name"], 0.0 if pg["frozen"] else float(pg["mult"]))
    return sweep, s, mults


def find(cfg: Any, out_dir: str) -> LRFindResult:
    """Run the range test on the job `cfg` describes and write lr_find.{png,csv,yaml} into `out_dir`."""
    sweep, s, mults = measure(cfg)
    lr, interval = suggest(sweep.base_lrs, sweep.smoothed, s["rule"])
    result = LRFindResult(lr, interval, s["rule"], {n: lr * m for n, m in mults.items()}, sweep.stopped)
    os.makedirs(out_dir, exist_ok=True)
    write_csv(sweep, os.path.join(out_dir, "lr_find.csv"))
    write_png(sweep, result, mults, os.path.join(out_dir, "lr_find.png"))
    write_yaml(result, sweep, s, os.path.join(out_dir, "lr_find.yaml"))
    return result


def report(result: LRFindResult, out_dir: str, overrides: Sequence[str] = ()) -> str:
    """What mode=lr_find prints: the suggestion, the interval, the files, and the command to train."""
    kept = " ".join(o for o in overrides if not o.startswith(("mode=", "lr_find.", "optimizer.lr=", "hydra.")))
    groups = ", ".join(f"{n} {v:.3g}" for n, v in result.group_lrs.items())
    return (f"LR range test ({result.stopped})\n"
            f"suggested_lr: {result.suggested_lr:.3g}   (rule {result.rule}; group LRs: {groups})\n"
            f"interval: [{result.interval[0]:.3g}, {result.interval[1]:.3g}]   (search optimizer.lr on a log scale here)\n"
            f"written: {out_dir}/lr_find.png, lr_find.csv, lr_find.yaml\n"
            f"next: python train.py {kept + ' ' if kept else ''}optimizer.lr={result.suggested_lr:.3g}")


def run_lr_find(cfg: Any) -> float:
    """Hydra task for mode=lr_find: run the test in the job dir, log the result, return the suggestion."""
    from sweep.train.runtime import job_dir, task_overrides

    out = job_dir()
    result = find(cfg, out)
    log.info("%s", report(result, out, task_overrides()))
    return result.suggested_lr
