"""Which pruner `search=` should use: compute saved and best value against no pruning, and how many
trials of a default 20-trial sweep complete (enough to compare them and to draw importance).

Each (task, seed, setting) runs the default sweep as a user would, in a fresh sweep dir:
    python train.py -m search=lr <task> hydra.sweeper.seed=S hydra.sweeper.n_trials=20 <setting>
(search=lr: TPE, 10 epochs a trial, optimizer.lr and groups.head_lr_mult on log scales).
Tasks: digits with the MLP, digits with the CNN, and the synthetic data set with the MLP.
From the study's journal:
- complete: COMPLETE trials of the 20 (PRUNED make up the rest; FAIL are extra); the sweep's
            importance plot needs >= 2, a comparison of settings wants more (target here: >= 5);
- epochs  : compute, the total epochs trained (sum over trials of `epochs` in each job's status.yaml);
- saving  : epochs with pruner=none / epochs with the setting;
- d_best  : best value (val/acc, COMPLETE trials) minus pruner=none's best for the same task and
            seed. digits' validation set has 359 images: one more right answer is +0.0028.
Per task and setting the table gives the mean over seeds (complete: the smallest over seeds, as
the default must hold for every seed). Training is deterministic for a seed; torch and OpenMP use
one thread; plots are off (they are drawn in a background process otherwise).

Settings: none; median (n_startup_trials=5, n_warmup_steps=2: the first 5 trials run in full, then a
trial stops when its val/acc is below the median of earlier trials at the same epoch, from epoch 3);
median 5/4 (from epoch 5); percentile 75 (5/2; stops only a trial in the worst quarter, Optuna's
PercentilePruner keeping the top 75%); successive_halving
(min_resource=1, reduction_factor=3: rungs at epochs 1, 3, 9, each keeping the top third).

    .venv/bin/python bench/pruning.py                          # 3 tasks x 3 seeds x 5 settings
    .venv/bin/python bench/pruning.py --tasks digits-mlp --seeds 0 --settings none median
    .venv/bin/python bench/pruning.py --quick                  # 6 trials of 3 epochs, MLP, seed 0
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import _common as c

TASKS = {
    "digits-mlp": ["data=digits", "model=mlp"],
    "digits-cnn": ["data=digits", "model=cnn"],
    "synthetic-mlp": ["data=synthetic", "model=mlp"],
}
SETTINGS = {
    "none": ["hydra.sweeper.pruner=none"],
    "median 5/2": ["hydra.sweeper.pruner=median", "hydra.sweeper.n_startup_trials=5", "hydra.sweeper.n_warmup_steps=2"],
    "median 5/4": ["hydra.sweeper.pruner=median", "hydra.sweeper.n_startup_trials=5", "hydra.sweeper.n_warmup_steps=4"],
    "percentile 75": [
        "hydra.sweeper.pruner=percentile",
        "+hydra.sweeper.pruner_options.percentile=75.0",
        "hydra.sweeper.n_startup_trials=5",
        "hydra.sweeper.n_warmup_steps=2",
    ],
    "successive_halving": ["hydra.sweeper.pruner=successive_halving", "+hydra.sweeper.pruner_options.min_resource=1"],
}
MIN_COMPLETE = 5


def epochs_trained(sweep_dir: str, trial) -> int:
    """The epochs a trial trained, from its job's status.yaml (no pruner: nothing is reported)."""
    from omegaconf import OmegaConf

    path = os.path.join(sweep_dir, str(trial.number), "status.yaml")
    if os.path.isfile(path):
        return int(OmegaConf.load(path).get("epochs", 0))
    return len(trial.intermediate_values)


def study_stats(sweep_dir: str) -> dict:
    import optuna

    from sweep.search.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(os.path.join(sweep_dir, "study.journal"))
    study = optuna.load_study(study_name=os.path.basename(sweep_dir), storage=storage)
    trials = study.get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    done = [t.value for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    return {
        "epochs": sum(epochs_trained(sweep_dir, t) for t in trials),
        "best": max(done, default=float("nan")),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
    }


def run(task: list[str], setting: list[str], n_trials: int, epochs: int | None, seed: int, env: dict, tmp: str) -> dict:
    out = tempfile.mkdtemp(prefix="sweep-", dir=tmp)
    cmd = [
        c.PY,
        str(c.REPO / "train.py"),
        "-m",
        "search=lr",
        *task,
        f"hydra.sweeper.seed={seed}",
        f"hydra.sweeper.n_trials={n_trials}",
        "hydra.sweeper.plots=false",
        "trainer.threads=1",
        f"hydra.sweep.dir={out}",
        *setting,
        *([f"trainer.epochs={epochs}"] if epochs else []),
    ]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=c.REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return {"wall": wall, **study_stats(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--epochs", type=int, help="default: search=lr's 10")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    args = ap.parse_args()
    if args.quick:
        args.trials, args.epochs, args.seeds, args.tasks = 6, 3, [0], ["digits-mlp"]
    names = ["none"] + [n for n in args.settings if n != "none"]
    env = c.threads(1)
    tmp = tempfile.mkdtemp(prefix="bench-pruning-")
    print(f"search=lr (TPE), {args.trials} trials of {args.epochs or 10} epochs; seeds {args.seeds}; sweeps in {tmp}")
    per_run = []
    for task in args.tasks:
        for seed in args.seeds:
            base = None
            for name in names:
                r = run(TASKS[task], SETTINGS[name], args.trials, args.epochs, seed, env, tmp)
                base = base or r
                per_run.append(
                    {
                        "task": task,
                        "seed": seed,
                        "setting": name,
                        **r,
                        "saving": base["epochs"] / r["epochs"],
                        "d_best": r["best"] - base["best"],
                    }
                )
                print(
                    f"  {task} seed {seed} {name}: {r['complete']} complete / {r['pruned']} pruned / "
                    f"{r['failed']} failed, {r['epochs']} epochs, best {r['best']:.4f}, {r['wall']:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
    rows = []
    for task in args.tasks:
        for name in names:
            rs = [r for r in per_run if r["task"] == task and r["setting"] == name]
            rows.append(
                [
                    task,
                    name,
                    min(r["complete"] for r in rs),
                    statistics.mean(r["complete"] for r in rs),
                    statistics.mean(r["epochs"] for r in rs),
                    statistics.mean(r["saving"] for r in rs),
                    statistics.mean(r["d_best"] for r in rs),
                    min(r["d_best"] for r in rs),
                    statistics.mean(r["wall"] for r in rs),
                ]
            )
    print(
        c.table(
            [
                "task",
                "setting",
                "complete min",
                "complete mean",
                "epochs",
                "saving",
                "d_best mean",
                "d_best worst",
                "wall s",
            ],
            rows,
        )
    )
    for name in names[1:]:
        rs = [r for r in per_run if r["setting"] == name]
        ok = all(r["complete"] >= MIN_COMPLETE for r in rs)
        print(
            f"{name}: saving {statistics.mean(r['saving'] for r in rs):.2f}x over all tasks and seeds, "
            f"d_best mean {statistics.mean(r['d_best'] for r in rs):+.4f}, "
            f"{'every' if ok else 'NOT every'} sweep completed >= {MIN_COMPLETE} trials "
            f"(fewest: {min(r['complete'] for r in rs)})"
        )


if __name__ == "__main__":
    main()
