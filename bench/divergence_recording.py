"""How a diverged trial is told to the study, measured: trials TPE needs to get within 0.3 points of
the grid's best when about a third of the space diverges.

The space: digits MLP, SGD, `optimizer.lr` log-uniform in [1e-2, 3000], in-process trials (the job
the sweeper runs, `sweep.train.job.train_job`, with the trial handed over), the sweeper's own TPE
(`sweep.search.space.build_sampler`) and recording (`sweep.search.sweeper.record`), no pruner (so
only the recording differs). The grid: `--grid` log-spaced LRs over the same range, each trained
once; its best value is the target. For each way a diverged trial is told (`fail`: FAIL, which TPE
ignores; `pruned`: PRUNED at the epoch it diverged, the sweeper's way; `worst`: COMPLETE with the
worst value seen so far) and each seed, the number of trials until one is within `--within` of
the grid's best (`>N`: not within the budget), and how many of the trials diverged.

    .venv/bin/python bench/divergence_recording.py --seeds 5 --trials 25
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import tempfile
import time

from _common import compose, table, threads

LOW, HIGH = 1e-2, 3000.0  # this MLP gives NaN from lr ~60 (chance-level accuracy from ~3): a third of the log range


def job_config(epochs: int) -> object:
    return compose(["data=digits", "optimizer=sgd", "groups=single", f"trainer.epochs={epochs}", "trainer.threads=1"])


def train_once(cfg: object, lr: float, handle: object) -> object:
    """Train with `lr` under `handle` (a NoTrial or the study's trial); the outcome it finished with."""
    from omegaconf import OmegaConf

    from sweep.train.job import train_job

    run_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.update(run_cfg, "optimizer.lr", float(lr), merge=False)
    try:
        train_job(run_cfg, handle)
    except Exception:  # noqa: BLE001 - a failed job finished its trial as FAILED
        pass
    return handle.outcome


def grid(cfg: object, points: int, job_dir: str) -> list[tuple[float, float | None]]:
    from sweep.trial import NoTrial, Status

    out = []
    for i in range(points):
        lr = LOW * (HIGH / LOW) ** (i / (points - 1))
        handle = NoTrial()
        handle.job_dir = job_dir
        outcome = train_once(cfg, lr, handle)
        out.append((lr, outcome.value if outcome.status == Status.COMPLETE else None))
    return out


def search(cfg: object, way: str, seed: int, trials: int, target: float, job_dir: str) -> tuple[int | None, int]:
    """(the 1-based trial that first reached `target`, or None; diverged trials among those run)."""
    import optuna
    from optuna.distributions import FloatDistribution

    from sweep.search import divergence, space
    from sweep.search.handoff import StudyTrial
    from sweep.search.sweeper import record

    dist = {"optimizer.lr": FloatDistribution(LOW, HIGH, log=True)}
    study = optuna.create_study(
        direction="maximize", sampler=space.build_sampler("tpe", {}, seed, dist), pruner=optuna.pruners.NopPruner()
    )
    reached, diverged = None, 0
    for n in range(1, trials + 1):
        trial = study.ask()
        lr = trial.suggest_float("optimizer.lr", LOW, HIGH, log=True)
        outcome = train_once(cfg, lr, StudyTrial(trial, config=None, job_dir=job_dir))
        diverged += divergence.is_divergence(outcome)
        record(study, trial, outcome, diverged_as=way)
        if reached is None and outcome.value is not None and outcome.value >= target:
            reached = n
    return reached, diverged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=25, help="the budget of each search")
    parser.add_argument("--grid", type=int, default=25, help="log-spaced grid points over the range")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--within", type=float, default=0.003, help="0.3 points of val/acc")
    args = parser.parse_args()
    threads(1)
    logging.disable(logging.WARNING)  # the jobs' and the sweeper's lines; the table says it all
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    from sweep.search.divergence import WAYS

    cfg = job_config(args.epochs)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as job_dir:
        points = grid(cfg, args.grid, job_dir)
        finite = [v for _, v in points if v is not None]
        best = max(finite)
        lowest_bad = min((lr for lr, v in points if v is None), default=math.inf)
        print(
            f"grid: {args.grid} LRs in [{LOW:g}, {HIGH:g}], best val/acc {best:.4f} at lr "
            f"{max(points, key=lambda p: -1 if p[1] is None else p[1])[0]:.3g}; {len(points) - len(finite)} "
            f"diverged (from lr {lowest_bad:.3g}); target >= {best - args.within:.4f}"
        )
        rows, found = [], {w: [] for w in WAYS}
        for seed in range(args.seeds):
            row: list[object] = [seed]
            for way in WAYS:
                reached, diverged = search(cfg, way, seed, args.trials, best - args.within, job_dir)
                found[way].append(reached)
                row.append(f"{reached if reached else f'>{args.trials}'} ({diverged} div)")
            rows.append(row)
    summary: list[object] = ["median"]
    for way in WAYS:
        counts = [r if r else args.trials + 1 for r in found[way]]
        hits = sum(r is not None for r in found[way])
        summary.append(f"{statistics.median(counts):g} ({hits}/{args.seeds} reached)")
    rows.append(summary)
    print(table(["seed", *(f"diverged as {w}" for w in WAYS)], rows))
    print(
        f"trials to within {args.within * 100:g} points of the grid's best (diverged trials among them); "
        f"{time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
