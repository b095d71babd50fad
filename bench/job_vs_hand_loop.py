"""Time per epoch: the default job's training loop against a hand-written minimal PyTorch loop.

What runs (in this process; start-up, imports and set-up are not timed):
- job+tb  : the default job (digits, MLP 64-256-256-10, batch 64, SGD momentum, step decay,
            backbone_head groups) made by sweep.train.build.build(cfg), as train_job does, then
            sweep.train.loop.train(...) with a RunWriter writing TensorBoard events to a temp dir, plus the
            closing writer.close() (the flush); its per-epoch log line goes to a file, as under Hydra.
- job-tb  : the same with writer=None (no TensorBoard), so the logging cost shows as job+tb / job-tb.
- hand    : the same MLP, data tensors and batch size; one param group (no per-group LRs), SGD
            momentum + StepLR, batches by indexing with randperm, validation each epoch, no logging.
- hand+4pg: the hand loop with the job's four SGD param groups (backbone / head x decayed weights /
            undecayed biases, head LR x 10), to split the job's extra cost into the optimizer's
            per-group work (hand+4pg / hand) and the job's loop code (job-tb / hand+4pg).

torch runs on one thread unless --threads says otherwise (see _common.threads: on a small shared
machine the default thread pool makes timings swing 10x). Each round runs every variant once, in
rotating order (A,B,C,D / B,C,D,A / ...); the first round is a warm-up and is dropped. A variant's time
for a round is (time of its `epochs` epochs) / epochs. Short runs and many rounds keep the variants
of one round close in time, which matters on a machine whose speed swings 2-3x within a minute.

How to read it: per variant, the median over the rounds of the wall time and of the CPU time
(time.process_time: this process, all threads, so the TensorBoard writer's thread counts) per epoch,
and `min`, the least disturbed round. Ratios are median / median, and in brackets the median of
the per-round ratios. On a busy machine wall time swings with other processes; CPU time much less
(it still grows when a sibling hyperthread is busy), so read the CPU ratios first.
Target (issue): job+tb <= 1.05 x hand. The last lines give the time inside the RunWriter's calls,
timed directly, and the split described for hand+4pg. val/acc: the loops learn the same task.

    .venv/bin/python bench/job_vs_hand_loop.py            # 10 epochs, 30 timed rounds
    .venv/bin/python bench/job_vs_hand_loop.py --quick    # 5 epochs, 3 timed rounds
    .venv/bin/python bench/job_vs_hand_loop.py +optimizer.fused=true   # the job with extra overrides
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


def clock() -> tuple[float, float]:
    """(wall, CPU) seconds; CPU is this process's, all threads (the TensorBoard writer's included)."""
    return time.perf_counter(), time.process_time()


def _timed(method, secs: list[float]):
    """`method`, adding the seconds each call takes to `secs[0]`."""

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            secs[0] += time.perf_counter() - t0

    return timed


def run_job(parts: dict, writer_dir: str | None, tb_secs: list[float] | None = None) -> tuple[float, float, float]:
    """(wall s, CPU s) of train() [+ the writer's last scalar and close], and the last val/acc; the
    time spent in the writer's methods is added to tb_secs[0]."""
    from sweep.logs.tensorboard import RunWriter
    from sweep.train.loop import train
    from sweep.trial import NoTrial

    writer = RunWriter(writer_dir, sweep_dir=None) if writer_dir else None
    if writer is not None and tb_secs is not None:
        for name in ("lr_curves", "scalars", "close"):
            setattr(writer, name, _timed(getattr(writer, name), tb_secs))
    wall, cpu = clock()
    result = train(
        parts["model"],
        parts["optimizer"],
        parts["schedule"],
        parts["data"],
        parts["trainer"],
        writer,
        NoTrial(),
        parts["metric"],
    )
    if writer is not None:
        writer.scalars({"best/val_acc": max(h["val/acc"] for h in result.history)}, result.epochs - 1)
        writer.close()
    return clock()[0] - wall, clock()[1] - cpu, result.history[-1]["val/acc"]


def run_hand(
    data, device: torch.device, epochs: int, batch_size: int, seed: int, four_groups: bool = False
) -> tuple[float, float, float]:
    """The minimal loop; with four_groups, SGD gets the job's param-group layout (backbone / head x
    weights with weight decay / biases without, head LR x 10), LRs fixed per group apart from StepLR."""
    torch.manual_seed(seed)
    from sweep.train.models import MLP

    model = MLP(data.num_features, data.num_classes, (256, 256)).to(device)
    params: list | object = model.parameters()
    if four_groups:
        params = [
            {
                "params": [p for p in part.parameters() if p.ndim == ndim],
                "lr": 0.05 * mult,
                "weight_decay": 1e-4 if ndim > 1 else 0.0,
            }
            for part, mult in ((model.backbone, 1.0), (model.head, 10.0))
            for ndim in (2, 1)
        ]
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.1)
    gen = torch.Generator().manual_seed(seed)
    x, y = data.x_train.to(device), data.y_train.to(device)
    xv, yv = data.x_val.to(device), data.y_val.to(device)
    n = len(y)
    wall, cpu = clock()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
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
    return clock()[0] - wall, clock()[1] - cpu, val_acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("overrides", nargs="*", help="extra overrides for the job's config, e.g. +optimizer.fused=true")
    args = ap.parse_args()
    c.threads(args.threads)
    epochs = args.epochs or (5 if args.quick else 10)
    rounds = args.rounds or (3 if args.quick else 30)
    tmp = tempfile.mkdtemp(prefix="bench-job-")
    handler = logging.FileHandler(os.path.join(tmp, "train.log"))  # Hydra's job log, without the console
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])

    cfg = c.compose([f"trainer.epochs={epochs}", *args.overrides])
    names = ["job+tb", "job-tb", "hand", "hand+4pg"]
    wall: dict[str, list[float]] = {n: [] for n in names}  # ms/epoch, one entry per timed round
    cpu: dict[str, list[float]] = {n: [] for n in names}
    accs: dict[str, float] = {}
    tb_ms: list[float] = []
    for r in range(rounds + 1):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            parts, tb = c.build_job(cfg), [0.0]  # the hand loops use its data tensors and device; untimed
            if name.startswith("hand"):
                w, u, acc = run_hand(
                    parts["data"],
                    parts["device"],
                    epochs,
                    int(cfg.trainer.batch_size),
                    int(cfg.trainer.seed),
                    four_groups=name == "hand+4pg",
                )
            else:
                w, u, acc = run_job(
                    parts, os.path.join(tmp, f"{name}-{r}", "tensorboard") if name == "job+tb" else None, tb
                )
            if r:  # round 0 is the warm-up
                wall[name].append(1000 * w / epochs)
                cpu[name].append(1000 * u / epochs)
                if name == "job+tb":
                    tb_ms.append(1000 * tb[0] / epochs)
            accs[name] = acc

    def ratio(t: dict, a: str, b: str) -> str:
        """median(a) / median(b), and the median of the per-round ratios in brackets."""
        return f"{c.median(t[a]) / c.median(t[b]):.3f} [{c.median([x / y for x, y in zip(t[a], t[b])]):.3f}]"

    print(
        f"device {parts['device']}, torch threads {torch.get_num_threads()}, {epochs} epochs x {rounds} rounds "
        f"(+1 warm-up), {-(-len(parts['data'].y_train) // 64)} updates/epoch; job overrides: {args.overrides or 'none'}"
    )
    print(
        c.table(
            ["variant", "wall ms/epoch", "min wall", "cpu ms/epoch", "min cpu", "wall / hand", "cpu / hand", "val/acc"],
            [
                [
                    n,
                    c.median(wall[n]),
                    min(wall[n]),
                    c.median(cpu[n]),
                    min(cpu[n]),
                    ratio(wall, n, "hand"),
                    ratio(cpu, n, "hand"),
                    accs[n],
                ]
                for n in names
            ],
        )
    )
    print("ratios: median / median [median of per-round ratios]; wall | CPU")
    print(
        f"job+tb / hand = {ratio(wall, 'job+tb', 'hand')} | {ratio(cpu, 'job+tb', 'hand')} (target <= 1.05); "
        f"job-tb / hand = {ratio(wall, 'job-tb', 'hand')} | {ratio(cpu, 'job-tb', 'hand')}"
    )
    print(
        f"TensorBoard: job+tb / job-tb = {ratio(wall, 'job+tb', 'job-tb')} | {ratio(cpu, 'job+tb', 'job-tb')}; "
        f"inside the RunWriter calls (lr_curves, scalars, close): {c.median(tb_ms):.2f} ms/epoch wall "
        f"= {c.median(tb_ms) / c.median(wall['job-tb']):.1%} of job-tb"
    )
    print(
        f"the job's 4 SGD param groups: hand+4pg / hand = {ratio(wall, 'hand+4pg', 'hand')} | "
        f"{ratio(cpu, 'hand+4pg', 'hand')}; the job's loop code (LR per group per update, LR curves, loss.item, "
        f"log line): job-tb / hand+4pg = {ratio(wall, 'job-tb', 'hand+4pg')} | {ratio(cpu, 'job-tb', 'hand+4pg')}"
    )


if __name__ == "__main__":
    main()
