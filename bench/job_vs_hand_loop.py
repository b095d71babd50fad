"""Time per epoch: the default job's training loop against a hand-written minimal PyTorch loop.

What runs (in this process; start-up, imports and set-up are not timed):
- job+tb  : the default job (digits, MLP 64-256-256-10, batch 64, SGD momentum, step decay,
            backbone_head groups) built with the functions sweep.job.train_job uses, then
            sweep.loop.train(...) with a RunWriter writing TensorBoard events to a temp dir, plus the
            closing writer.close() (the flush); its per-epoch log line goes to a file, as under Hydra.
- job-tb  : the same with writer=None (no TensorBoard), so the logging cost shows as job+tb / job-tb.
- hand    : the same MLP, data tensors and batch size; one param group (no per-group LRs), SGD
            momentum + StepLR, batches by indexing with randperm, validation each epoch, no logging.

torch runs on one thread unless --threads says otherwise (see _common.threads: on a small shared
machine the default thread pool makes timings swing 10x). Each round runs every variant once, in rotating order (A,B,C / B,C,A / ...); the first round is a
warm-up and is dropped. A variant's time for a round is (wall time of its `epochs` epochs) / epochs.

How to read it: `median ms/epoch` per variant over the rounds; `ratio` is the variant's median over
the hand loop's; `paired` is the median of the per-round ratios (more robust on a noisy machine).
Target (issue): job+tb <= 1.05 x hand. val/acc is printed to show the loops learn the same task.

    .venv/bin/python bench/job_vs_hand_loop.py            # 20 epochs, 7 timed rounds
    .venv/bin/python bench/job_vs_hand_loop.py --quick    # 5 epochs, 3 timed rounds
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

import _common as c
import torch
from torch import nn


def run_job(parts: dict, writer_dir: str | None) -> tuple[float, float]:
    from sweep.loop import train
    from sweep.tensorboard import RunWriter
    from sweep.trial import NoTrial

    writer = RunWriter(writer_dir, float(parts["trainer"]["lr_log_tolerance"])) if writer_dir else None
    started = time.perf_counter()
    result = train(parts["model"], parts["optimizer"], parts["schedule"], parts["data"], parts["trainer"],
                   writer, NoTrial(), parts["metric"])
    if writer is not None:
        writer.scalars({"best/val_acc": max(h["val/acc"] for h in result.history)}, result.epochs - 1)
        writer.close()
    return time.perf_counter() - started, result.history[-1]["val/acc"]


def run_hand(data, device: torch.device, epochs: int, batch_size: int, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    from sweep.models import MLP

    model = MLP(data.num_features, data.num_classes, (256, 256)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.1)
    gen = torch.Generator().manual_seed(seed)
    x, y = data.x_train.to(device), data.y_train.to(device)
    xv, yv = data.x_val.to(device), data.y_val.to(device)
    n = len(y)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            logits = model(xv)
            val_loss = nn.functional.cross_entropy(logits, yv).item()  # noqa: F841 - validated like the job
            val_acc = (logits.argmax(1) == yv).float().mean().item()
    return time.perf_counter() - started, val_acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    c.threads(args.threads)
    epochs = args.epochs or (5 if args.quick else 20)
    rounds = args.rounds or (3 if args.quick else 7)
    tmp = tempfile.mkdtemp(prefix="bench-job-")
    handler = logging.FileHandler(os.path.join(tmp, "train.log"))  # Hydra's job log, without the console
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])

    cfg = c.compose([f"trainer.epochs={epochs}"])
    names = ["job+tb", "job-tb", "hand"]
    times: dict[str, list[float]] = {n: [] for n in names}
    accs: dict[str, float] = {}
    for r in range(rounds + 1):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            if name == "hand":
                parts = c.build_job(cfg)  # the same data tensors and device; untimed
                secs, acc = run_hand(parts["data"], parts["device"], epochs, int(cfg.trainer.batch_size),
                                     int(cfg.trainer.seed))
            else:
                parts = c.build_job(cfg)
                secs, acc = run_job(parts, os.path.join(tmp, f"{name}-{r}", "tensorboard") if name == "job+tb" else None)
            if r:  # round 0 is the warm-up
                times[name].append(1000 * secs / epochs)
            accs[name] = acc

    hand = c.median(times["hand"])
    rows = []
    for n in names:
        paired = c.median([a / b for a, b in zip(times[n], times["hand"])])
        rows.append([n, c.median(times[n]), min(times[n]), c.median(times[n]) / hand, paired, accs[n]])
    print(f"device {parts['device']}, torch threads {torch.get_num_threads()}, {epochs} epochs x {rounds} rounds "
          f"(+1 warm-up), {-(-len(parts['data'].y_train) // 64)} updates/epoch")
    print(c.table(["variant", "median ms/epoch", "min ms/epoch", "ratio", "paired", "val/acc"], rows))
    tb = c.median([a / b for a, b in zip(times["job+tb"], times["job-tb"])])
    print(f"job+tb / hand = {rows[0][3]:.3f} (target <= 1.05); job-tb / hand = {rows[1][3]:.3f}; "
          f"TensorBoard cost: job+tb / job-tb = {tb:.3f} (paired median)")


if __name__ == "__main__":
    main()
