"""The sweeper's overhead per trial against a plain Optuna ask/tell loop calling the same training code.

Two programs, each run as a fresh subprocess (start-up and imports included in both):
- sweep : python train.py -m search=lr hydra.sweeper.pruner=none hydra.sweeper.n_trials=N ...
- plain : this file with --plain: conf/train.yaml + search=lr composed once with Hydra's compose API;
          a journal-file study (same TPE sampler, seed 0, NopPruner, same two parameters and ranges);
          per trial: study.ask(), suggest, set the values in the config, chdir to <dir>/<number>,
          sweep.job.train_job(cfg) (the job reports each epoch to the study through trial.*, as in
          the sweep; it writes the same TensorBoard run and checkpoint), study.tell(...).
Both sample the same parameters, so the training work is identical (compare the best values).

(a) default trials (digits, search=lr's 10 epochs): total wall time of each program for N trials,
    the per-trial difference (sweep - plain) / N and the ratio sweep / plain (target <= 1.05).
(b) tiny trials (data=synthetic data.n_samples=64 trainer.epochs=1): each program at N=30 and N=5;
    (T30 - T5) / 25 is the per-trial cost with start-up and end-of-sweep writes cancelled out. The
    sweep's minus the plain loop's is the sweeper machinery per trial (target < 50 ms).
(c) where a tiny trial's time goes in the sweep: one run under cProfile, cumulative ms per trial of
    the named steps (calls in brackets) and the top functions by own time. cProfile inflates
    Python-heavy code; read the shares, and (b) for absolute numbers.

Rounds interleave the programs (sweep, plain, sweep, plain, ...); medians over rounds. torch and
OpenMP run on one thread in every subprocess (see _common.threads).

    .venv/bin/python bench/sweeper_overhead.py            # (a) N=10 x 3 rounds, (b) 3 rounds, (c) N=30
    .venv/bin/python bench/sweeper_overhead.py --quick    # (a) N=3 trials of 3 epochs, 1 round, (c) N=10
"""

from __future__ import annotations

import argparse
import os
import pstats
import subprocess
import sys
import tempfile
import time

import _common as c

TINY = ["data=synthetic", "data.n_samples=64", "trainer.epochs=1"]
SPACE = {"optimizer.lr": (1e-3, 0.5), "groups.head_lr_mult": (1.0, 100.0)}  # conf/search/lr.yaml, log scale


def plain(n: int, out: str, overrides: list[str]) -> None:
    """A plain ask/tell loop over sweep.job.train_job (runs in the --plain subprocess)."""
    import logging

    import optuna
    from omegaconf import OmegaConf

    from sweep.job import train_job
    from sweep.storage import open_storage
    from sweep.trial import OPEN_STUDIES

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    cfg = c.compose(["search=lr", *overrides])
    journal, name = os.path.join(out, "study.journal"), os.path.basename(out)
    storage = open_storage(journal)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0), pruner=optuna.pruners.NopPruner())
    OPEN_STUDIES[(journal, name)] = (study, storage)
    for _ in range(n):
        trial = study.ask()
        for key, (low, high) in SPACE.items():
            OmegaConf.update(cfg, key, trial.suggest_float(key, low, high, log=True))
        OmegaConf.update(cfg, "trial", {"storage": journal, "study_name": name, "number": trial.number})
        os.makedirs(os.path.join(out, str(trial.number)))
        os.chdir(os.path.join(out, str(trial.number)))
        try:
            study.tell(trial, train_job(cfg))
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        except Exception:  # noqa: BLE001
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    print(f"best {study.best_value:.4f}")


def command(kind: str, n: int, out: str, overrides: list[str], profile: str | None = None) -> list[str]:
    if kind == "plain":
        return [c.PY, __file__, "--plain", str(n), "--dir", out, "--", *overrides]
    prof = ["-m", "cProfile", "-o", profile] if profile else []
    return [c.PY, *prof, str(c.REPO / "train.py"), "-m", "search=lr", "hydra.sweeper.pruner=none",
            f"hydra.sweeper.n_trials={n}", f"hydra.sweep.dir={out}", *overrides]


def timed(kind: str, n: int, overrides: list[str], env: dict, tmp: str) -> tuple[float, float]:
    """(wall seconds, best value) of one run in a fresh directory."""
    out = tempfile.mkdtemp(prefix=f"{kind}{n}-", dir=tmp)
    started = time.perf_counter()
    proc = subprocess.run(command(kind, n, out, overrides), cwd=c.REPO, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"{kind} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return secs, best_of(out)


def best_of(out: str) -> float:
    import optuna

    from sweep.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=os.path.basename(out), storage=open_storage(os.path.join(out, "study.journal"))).best_value


def rounds_of(jobs: list[tuple[str, int]], overrides: list[str], rounds: int, env: dict, tmp: str) -> dict:
    times: dict = {j: [] for j in jobs}
    best: dict = {}
    for r in range(rounds):
        for k in range(len(jobs)):
            job = jobs[(r + k) % len(jobs)]
            secs, best[job] = timed(*job, overrides, env, tmp)
            times[job].append(secs)
    return {j: (c.median(t), best[j]) for j, t in times.items()}


# (label, object, attribute): the steps timed in (c); nested labels are included in their parents
def steps() -> list[tuple[str, object, str]]:
    import hydra.core.utils as hydra_utils
    import optuna
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    import sweep.job as job
    import sweep.trial as trial
    from sweep.sweeper import LRSweeper
    from sweep.tensorboard import RunWriter

    return [
        ("sweeper: launch one trial (LRSweeper._launch)", LRSweeper, "_launch"),
        ("  Hydra: compose the job config (load_sweep_config)", ConfigLoaderImpl, "load_sweep_config"),
        ("  Hydra: run_job (job dir, .hydra/, logging, the task)", hydra_utils, "run_job"),
        # patched before Hydra's plugin scan imports the launcher, which binds run_job then
        ("    Hydra: write .hydra/*.yaml (_save_config)", hydra_utils, "_save_config"),
        ("    Hydra: logging set-up (configure_log)", hydra_utils, "configure_log"),
        ("    train_job (the task)", job, "train_job"),
        ("      sweep.loop.train (the epochs)", job, "train"),
        ("      TensorBoard RunWriter()", RunWriter, "__init__"),
        ("      RunWriter.hparams", RunWriter, "hparams"),
        ("      RunWriter.close", RunWriter, "close"),
        ("      save_checkpoint", job, "save_checkpoint"),
        ("      trial handle (trial.from_config)", trial, "from_config"),
        ("      StudyTrial.report", trial.StudyTrial, "report"),
        ("sweeper: _record (tell + log line)", LRSweeper, "_record"),
        ("sweeper: _reclaim_dead", LRSweeper, "_reclaim_dead"),
        ("sweeper: _surplus", LRSweeper, "_surplus"),
        ("sweeper: _count", LRSweeper, "_count"),
        ("optuna: Study.ask", optuna.Study, "ask"),
        ("optuna: Study.tell", optuna.Study, "tell"),
        ("optuna: Study.get_trials (all callers)", optuna.Study, "get_trials"),
        ("optuna: Trial.set_user_attr (all callers)", optuna.trial.Trial, "set_user_attr"),
        ("optuna: journal _sync_with_backend (all callers)", optuna.storages.JournalStorage, "_sync_with_backend"),
    ]


def inproc(mode: str, n: int, out: str, overrides: list[str]) -> None:
    """Run the sweep in this process (as train.py would) and time trials 2..n (the first pays imports).

    mode "timers": wall time of each step of steps(); mode "profile": cProfile of the same span.
    Writes <out>.json or <out>.prof.
    """
    import cProfile
    import functools
    import json
    import runpy

    from sweep.sweeper import LRSweeper

    totals: dict[str, list[float]] = {}
    on = [False]
    if mode == "timers":
        for label, owner, attr in steps():
            def timed_fn(*a, _f=getattr(owner, attr), _label=label, **k):
                started = time.perf_counter()
                try:
                    return _f(*a, **k)
                finally:
                    if on[0]:
                        t = totals.setdefault(_label, [0.0, 0])
                        t[0] += time.perf_counter() - started
                        t[1] += 1
            wrapped = functools.wraps(getattr(owner, attr))(timed_fn)
            is_static = isinstance(vars(owner).get(attr), staticmethod)
            setattr(owner, attr, staticmethod(wrapped) if is_static else wrapped)
    prof = cProfile.Profile()
    record, run, span = LRSweeper._record, LRSweeper._run, [0.0, 0.0]

    def record_then_measure(self, study, storage, trial_id, trial, ret):
        try:
            return record(self, study, storage, trial_id, trial, ret)
        finally:
            if trial.number == 0:  # trial 0 is recorded: measure from here on
                on[0], span[0] = True, time.perf_counter()
                if mode == "profile":
                    prof.enable()

    def run_then_stop(self, *a, **k):
        try:
            return run(self, *a, **k)
        finally:
            prof.disable()
            on[0], span[1] = False, time.perf_counter()

    LRSweeper._record, LRSweeper._run = record_then_measure, run_then_stop
    sys.argv = [str(c.REPO / "train.py"), *command("sweep", n, out, overrides)[2:]]
    runpy.run_path(sys.argv[0], run_name="__main__")
    if mode == "profile":
        prof.dump_stats(out + ".prof")
    else:
        with open(out + ".json", "w") as f:
            json.dump({"span": span[1] - span[0], "steps": totals}, f)


def breakdown(n: int, env: dict, tmp: str) -> None:
    import json

    out = os.path.join(tmp, "inproc")
    for mode in ("timers", "profile"):
        subprocess.run([c.PY, __file__, "--inproc", f"{mode}:{n}", "--dir", f"{out}-{mode}", "--", *TINY],
                       cwd=c.REPO, env=env, capture_output=True, check=True)
    m = n - 1
    data = json.load(open(f"{out}-timers.json"))
    rows = [["all of it: sweep loop time / trial", 1000 * data["span"] / m, m]]
    for label, _, _ in steps():
        secs, calls = data["steps"].get(label, (0.0, 0))
        rows.append([label, 1000 * secs / m, calls])
    got = {r[0]: r[1] for r in rows}
    outside = got["all of it: sweep loop time / trial"] - got["    train_job (the task)"]
    print(f"\n(c) one sweep of {n} tiny trials in-process, trials 1..{n - 1} timed (trial 0 pays the imports): "
          f"wall ms per trial of each step, [calls]")
    print(c.table(["step", "ms/trial", "calls"], rows))
    print(f"sweep loop minus train_job = {outside:.1f} ms/trial (Hydra + sweeper + Optuna around the task)")
    stats = pstats.Stats(f"{out}-profile.prof").stats
    print(f"\ncProfile of the same span, top 15 functions by own time (ms/trial under the profiler, calls):")
    for (f, line, fn), (cc, nc, tt, ct, _) in sorted(stats.items(), key=lambda kv: -kv[1][2])[:15]:
        short = f.split("site-packages/")[-1].split("lib/python3")[-1].replace(str(c.REPO) + "/", "")
        print(f"  {1000 * tt / m:7.2f}  {nc:7d}  {short}:{line} {fn}")
    print(f"cProfile top 12 by cumulative time below the sweep loop (ms/trial under the profiler):")
    skip = ("_run", "run_then_stop", "record_then_measure", "_launch", "launch", "run_job", "main", "run",
            "train_job", "<lambda>", "wrapper")
    cum = [(k, v) for k, v in stats.items() if k[2] not in skip and not k[0].startswith("<") and k[0] != "~"]
    for (f, line, fn), (cc, nc, tt, ct, _) in sorted(cum, key=lambda kv: -kv[1][3])[:12]:
        short = f.split("site-packages/")[-1].replace(str(c.REPO) + "/", "")
        print(f"  {1000 * ct / m:7.2f}  {nc:7d}  {short}:{line} {fn}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads in the subprocesses (0: default)")
    ap.add_argument("--plain", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--inproc", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain is not None:
        return plain(args.plain, args.dir, args.overrides)
    if args.inproc is not None:
        mode, n = args.inproc.split(":")
        return inproc(mode, int(n), args.dir, args.overrides)
    env = c.threads(args.threads)
    tmp = tempfile.mkdtemp(prefix="bench-sweeper-")
    n_a, rounds, default = (3, 1, ["trainer.epochs=3"]) if args.quick else (10, 3, [])
    n_hi, n_lo, n_prof = (15, 5, 10) if args.quick else (30, 5, 30)

    a = rounds_of([("sweep", n_a), ("plain", n_a)], default, rounds, env, tmp)
    (ts, bs), (tp, bp) = a[("sweep", n_a)], a[("plain", n_a)]
    print(f"(a) default trials (digits, {'3 epochs' if args.quick else '10 epochs'}), N={n_a}, "
          f"median of {rounds} round(s)")
    print(c.table(["program", "wall s", "s/trial", "best value"],
                  [["sweep", ts, ts / n_a, bs], ["plain", tp, tp / n_a, bp]]))
    print(f"sweep - plain = {1000 * (ts - tp) / n_a:.0f} ms/trial; sweep / plain = {ts / tp:.3f} (target <= 1.05)")

    b = rounds_of([("sweep", n_hi), ("plain", n_hi), ("sweep", n_lo), ("plain", n_lo)], TINY, rounds, env, tmp)
    per = {k: 1000 * (b[(k, n_hi)][0] - b[(k, n_lo)][0]) / (n_hi - n_lo) for k in ("sweep", "plain")}
    print(f"\n(b) tiny trials ({' '.join(TINY)}), median of {rounds} round(s)")
    print(c.table(["program", f"T{n_hi} s", f"T{n_lo} s", f"(T{n_hi}-T{n_lo})/{n_hi - n_lo} ms/trial"],
                  [[k, b[(k, n_hi)][0], b[(k, n_lo)][0], per[k]] for k in ("sweep", "plain")]))
    print(f"sweeper machinery per trial = sweep - plain = {per['sweep'] - per['plain']:.1f} ms "
          f"(target < 50 ms); sweep per trial incl. tiny training = {per['sweep']:.1f} ms")

    breakdown(n_prof, env, tmp)


if __name__ == "__main__":
    main()
