"""Compute saved by pruning: a 40-trial search=lr sweep with each pruner setting against pruner=none.

Each setting runs `python train.py -m search=lr data=digits hydra.sweeper.sampler=tpe
hydra.sweeper.seed=S hydra.sweeper.n_trials=40 <setting>` in a fresh sweep dir (search=lr trains
10 epochs a trial). From the study's journal (<sweep dir>/study.journal, study = the dir's name):
- epochs  : compute, the total epochs trained = sum over all trials of len(intermediate_values)
            (the job reports once per epoch; failed/diverged trials count what they trained);
- saving  : epochs of pruner=none / epochs of the setting (target >= 2x);
- best    : the study's best value (val/acc of the last epoch, COMPLETE trials only); d_best = best -
  best of pruner=none. The validation set has 359 digits, so one more correct answer is +0.0028;
  "within noise" below means d_best >= -0.0056 (two answers); --seeds 0 1 shows the seed-to-seed spread.
- trials  : COMPLETE / PRUNED / FAIL counts (n_trials counts COMPLETE + PRUNED; FAIL is extra);
- wall s  : one run each, on a noisy machine: indicative only. torch and OpenMP use one thread.

Settings: none; median with the defaults (n_startup_trials=5, n_warmup_steps=2); median with
fewer warm-up steps or start-up trials; percentile 25 (keeps the top quarter); successive_halving
and hyperband (min_resource=1, reduction_factor=3). Hyperband assigns brackets by a hash of the
study name, which is the random temp dir's name here, so its figures vary from run to run; the
others are deterministic for a seed. --quick: 12 trials of 5 epochs, none and
the default median only.

    .venv/bin/python bench/pruning.py                 # 40 trials, 10 epochs, seed 0, all settings
    .venv/bin/python bench/pruning.py --seeds 0 1     # the same for two sampler seeds
    .venv/bin/python bench/pruning.py --quick
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import _common as c

SETTINGS = {
    "none": ["hydra.sweeper.pruner=none"],
    "median (default 5/2)": ["hydra.sweeper.pruner=median"],
    "median warmup=1": ["hydra.sweeper.pruner=median", "hydra.sweeper.n_warmup_steps=1"],
    "median startup=3 warmup=1": ["hydra.sweeper.pruner=median", "hydra.sweeper.n_startup_trials=3",
                                  "hydra.sweeper.n_warmup_steps=1"],
    "median warmup=0": ["hydra.sweeper.pruner=median", "hydra.sweeper.n_warmup_steps=0"],
    "percentile 25 (default 5/2)": ["hydra.sweeper.pruner=percentile"],
    "successive_halving": ["hydra.sweeper.pruner=successive_halving"],
    "hyperband": ["hydra.sweeper.pruner=hyperband"],
}
QUICK = ["none", "median (default 5/2)"]


def study_stats(sweep_dir: str) -> dict:
    import optuna

    from sweep.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(os.path.join(sweep_dir, "study.journal"))
    study = optuna.load_study(study_name=os.path.basename(sweep_dir), storage=storage)
    trials = study.get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    done = [t.value for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    return {"epochs": sum(len(t.intermediate_values) for t in trials), "best": max(done, default=float("nan")),
            "trials": f"{states.count('COMPLETE')}/{states.count('PRUNED')}/{states.count('FAIL')}"}


def run(setting: list[str], n_trials: int, epochs: int, seed: int, env: dict, tmp: str) -> dict:
    out = tempfile.mkdtemp(prefix="sweep-", dir=tmp)
    cmd = [c.PY, str(c.REPO / "train.py"), "-m", "search=lr", "data=digits", f"trainer.epochs={epochs}",
           "hydra.sweeper.sampler=tpe", f"hydra.sweeper.seed={seed}", f"hydra.sweeper.n_trials={n_trials}",
           f"hydra.sweep.dir={out}", *setting]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=c.REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return {"wall": wall, **study_stats(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--trials", type=int)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), help="default: all (--quick: none, median)")
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads in the sweeps (0: default)")
    args = ap.parse_args()
    n_trials = args.trials or (12 if args.quick else 40)
    epochs = args.epochs or (5 if args.quick else 10)
    names = args.settings or (QUICK if args.quick else list(SETTINGS))
    names = ["none"] + [n for n in names if n != "none"]
    env = c.threads(args.threads)
    tmp = tempfile.mkdtemp(prefix="bench-pruning-")
    print(f"digits, search=lr, sampler tpe, {n_trials} trials (COMPLETE + PRUNED) of {epochs} epochs; "
          f"seeds {args.seeds}; sweeps in {tmp}")
    rows = []
    for seed in args.seeds:
        base = None
        for name in names:
            r = run(SETTINGS[name], n_trials, epochs, seed, env, tmp)
            base = base or r
            rows.append([name, seed, r["epochs"], base["epochs"] / r["epochs"], r["best"], r["best"] - base["best"],
                         r["trials"], r["wall"], base["wall"] / r["wall"]])
            print(f"  {name}, seed {seed}: {r['epochs']} epochs, best {r['best']:.4f}, {r['wall']:.0f} s",
                  file=sys.stderr, flush=True)
    print(c.table(["setting", "seed", "epochs", "saving", "best", "d_best", "C/P/F", "wall s", "wall x"], rows))
    if len(args.seeds) > 1:
        spread = [r[4] for r in rows if r[0] == "none"]
        print(f"pruner=none best over seeds: {min(spread):.4f} .. {max(spread):.4f} (seed-to-seed noise)")
    hits = [r for r in rows if r[3] >= 2.0 and r[5] >= -0.0056]
    print("settings with >= 2x less compute and best within 2 val samples (0.0056) of pruner=none: "
          + (", ".join(f"{r[0]} (seed {r[1]}: {r[3]:.2f}x, d_best {r[5]:+.4f})" for r in hits) or "none"))


if __name__ == "__main__":
    main()
