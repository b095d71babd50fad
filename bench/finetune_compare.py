"""Fine-tuning: one LR for all vs backbone/head multiplier vs layer-wise decay, same budget and seeds.

Runs, as a user would (real `python train.py` subprocesses):
  1. python train.py experiment=pretrain trainer.save_to=OUT/pretrain.pt        (task A, once)
  2. for each seed and each of groups=single, backbone_head, layer_decay:
     python train.py -m experiment=finetune search=finetune groups=G model.init_from=OUT/pretrain.pt
         hydra.sweeper.n_trials=N hydra.sweeper.seed=S trainer.seed=S hydra.sweep.dir=OUT/G-sS
  3. (reference, --scratch) the same search with groups=single and no pretrained backbone;
then prints a table read from each sweep's trials.csv and optimization_results.yaml: the best
val/acc, the median of the top 5, the best parameters, the wall time.

    .venv/bin/python bench/finetune_compare.py                       # 30 trials, seed 0, temp dir
    .venv/bin/python bench/finetune_compare.py --out runs/ft --seeds 0 1 2 --parallel 2
    .venv/bin/python bench/finetune_compare.py -- "model.channels=[16,32]"     # for every run
    .venv/bin/python bench/finetune_compare.py --ft data.train_per_class=5 --   # for the sweeps only

Each training process gets OMP_NUM_THREADS=1 unless it is set: these models are tiny, and on a
small shared CPU two BLAS threads per process are several times slower than one.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
GROUPS = ("single", "backbone_head", "layer_decay")
SHORT = {
    "optimizer.lr": "lr",
    "groups.head_lr_mult": "head_mult",
    "groups.decay": "decay",
    "schedule.warmup_epochs": "warmup",
    "schedule.gamma": "gamma",
    "schedule.floor": "floor",
    "schedule.step_size": "step",
}


def train(args: list[str], log: Path) -> float:
    """`python train.py ARGS`, output to `log`; raises on a non-zero exit. Returns the wall time."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    env.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(
            [sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT
        )
    if proc.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise SystemExit(f"train.py {' '.join(args)} exited {proc.returncode}; log {log}:\n{tail}")
    return time.perf_counter() - started


def summarize(sweep_dir: Path) -> dict:
    with open(sweep_dir / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    values = sorted(
        (float(r["value"]) for r in rows if r["state"] == "COMPLETE" and r["value"] not in ("", "nan")), reverse=True
    )
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    best = results.get("best") or {}
    return {
        "n": len(rows),
        "complete": len(values),
        "best": values[0] if values else float("nan"),
        "top5_median": statistics.median(values[:5]) if values else float("nan"),
        "params": best.get("params", {}),
        "overrides": best.get("overrides", []),
    }


def fmt_params(params: dict) -> str:
    out = []
    for k, v in params.items():
        name = SHORT.get(k, k)
        out.append(f"{name}={v:.3g}" if isinstance(v, float) else f"{name}={v}")
    return " ".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="directory for the checkpoint and the sweeps (default: a temp dir)")
    p.add_argument("--trials", type=int, default=30, help="trials per search (default 30)")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="one search per seed and setup; the seed is the sampler's and trainer.seed (default 0)",
    )
    p.add_argument("--groups", nargs="+", default=list(GROUPS), choices=GROUPS)
    p.add_argument(
        "--scratch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the reference search without the pretrained backbone (default on)",
    )
    p.add_argument("--parallel", type=int, default=1, help="sweeps run at once (default 1)")
    p.add_argument(
        "--ft",
        nargs="+",
        default=[],
        metavar="OVERRIDE",
        help="overrides for the fine-tuning sweeps only, e.g. --ft data.train_per_class=5",
    )
    p.add_argument("overrides", nargs="*", help="after --: overrides for every run (pretrain and sweeps)")
    a = p.parse_args()
    out = (a.out or Path(tempfile.mkdtemp(prefix="finetune_compare_"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "pretrain.pt"
    print(f"output in {out}", flush=True)

    if ckpt.exists():
        print(f"pretrain: reusing {ckpt}", flush=True)
    else:
        wall = train(
            ["experiment=pretrain", f"trainer.save_to={ckpt}", f"hydra.run.dir={out / 'pretrain'}", *a.overrides],
            out / "pretrain.log",
        )
        print(f"pretrain: {wall:.0f} s -> {ckpt}", flush=True)

    runs = [(g, s, True) for s in a.seeds for g in a.groups] + (
        [("single", s, False) for s in a.seeds] if a.scratch else []
    )

    def sweep(run: tuple[str, int, bool]) -> tuple[tuple[str, int, bool], float]:
        g, s, pretrained = run
        name = f"{g}-s{s}" if pretrained else f"scratch-s{s}"
        d = out / name
        init = f"model.init_from={ckpt}" if pretrained else "model.init_from=null"
        args = [
            "-m",
            "experiment=finetune",
            "search=finetune",
            f"groups={g}",
            init,
            f"hydra.sweeper.n_trials={a.trials}",
            f"hydra.sweeper.seed={s}",
            f"trainer.seed={s}",
            f"hydra.sweep.dir={d}",
            *a.overrides,
            *a.ft,
        ]
        wall = train(args, out / f"{name}.log")
        print(f"{name}: {wall:.0f} s", flush=True)
        return run, wall

    with ThreadPoolExecutor(max(1, a.parallel)) as pool:
        walls = dict(pool.map(sweep, runs))

    label = lambda g, pretrained: g if pretrained else "scratch (single, no init_from)"  # noqa: E731
    lines = [
        "| setup | seed | trials (complete) | best val/acc | median top-5 | wall s | best parameters |",
        "|---|---|---|---|---|---|---|",
    ]
    table: dict[tuple[str, bool], list[dict]] = {}
    for g, s, pretrained in runs:
        d = out / (f"{g}-s{s}" if pretrained else f"scratch-s{s}")
        r = summarize(d)
        table.setdefault((g, pretrained), []).append(r)
        wall = walls[(g, s, pretrained)]
        lines.append(
            f"| {label(g, pretrained)} | {s} | {r['n']} ({r['complete']}) | {r['best']:.4f} | "
            f"{r['top5_median']:.4f} | {wall:.0f} | "
            f"{fmt_params(r['params'])} |"
        )
    if len(a.seeds) > 1:
        lines += ["", "| setup | mean best val/acc | mean median top-5 | over seeds |", "|---|---|---|---|"]
        for (g, pretrained), rs in table.items():
            lines.append(
                f"| {label(g, pretrained)} | {statistics.mean(r['best'] for r in rs):.4f} | "
                f"{statistics.mean(r['top5_median'] for r in rs):.4f} | "
                f"{' '.join(str(s) for s in a.seeds)} |"
            )
    text = "\n".join(lines)
    print()
    print(text)
    (out / "table.md").write_text(text + "\n")
    with open(out / "summary.json", "w") as f:
        json.dump({f"{label(g, pre)}": rs for (g, pre), rs in table.items()}, f, indent=1)
    print(f"\n(table in {out / 'table.md'})")


if __name__ == "__main__":
    main()
