"""The sweeper's overhead per trial against a plain Optuna ask/tell loop calling the same training code.

Two programs, each run as a fresh subprocess (start-up and imports included in both):
- sweep : python train.py -m search=lr hydra.sweeper.pruner=none hydra.sweeper.n_trials=N ...
- plain : this file with --plain: conf/train.yaml + search=lr composed once with Hydra's compose API;
          a journal-file study (same TPE sampler, seed 0, NopPruner, same two parameters and ranges);
          per trial: study.ask(), suggest, set the values in the config, chdir to <dir>/<number>,
          sweep.job.train_job(cfg) (the job reports each epoch to the study through trial.*, as in
          the sweep, and writes the same TensorBoard run and checkpoint), study.tell(...).
Both sample the same parameters, so the training work is identical (compare the best values).

(a) default trials (digits, search=lr's 10 epochs): total wall time T of each program at N=10 and
    N=2; end to end, the difference per trial and the ratio sweep / plain at N=10; per trial, the
    slope (T10 - T2) / 8 and the in-run time per trial (from the journal's completion times of
    trials 0 and N-1, so start-up, the first trial's imports and end-of-sweep writes are left out),
    whose ratio is the cost of one more default trial (target: sweep <= 1.05 x plain).
(b) tiny trials (data=synthetic data.n_samples=64 trainer.epochs=1): each program at N=30 and N=5;
    (T30 - T5) / 25 and the in-run figure are the per-trial cost; the sweep's minus the plain loop's
    is the sweeper machinery per trial (target < 50 ms). `fixed` = T5 - 5 x slope: start-up, imports
    and end-of-sweep work. The slope subtracts two noisy totals; the in-run figure is steadier.
(c) where the time goes: one tiny sweep of 30 trials run in-process with timers (wall clock, and the
    main thread's CPU time) around the named steps (trial 0 pays the imports and is left out: ms per
    trial over trials 1..29; nested steps are included in their parents), the once-per-sweep steps, what composing a job config
    would cost as a copy + update of an already composed one, and a cProfile of the same span (top
    functions by own time; cProfile inflates Python-heavy code, so read shares there).

Rounds interleave the programs (sweep, plain, ... rotating); medians over rounds. torch and OpenMP
run on one thread in every subprocess (see _common.threads).

    .venv/bin/python bench/sweeper_overhead.py            # (a) N=10/2 x 3 rounds, (b) 3 rounds, (c) N=30
    .venv/bin/python bench/sweeper_overhead.py --quick    # (a) N=4/2 of 3 epochs, 1 round, (b) N=15/5, (c) N=10
"""

from __future__ import annotations

import argparse
import functools
import json
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


def command(kind: str, n: int, out: str, overrides: list[str]) -> list[str]:
    if kind == "plain":
        return [c.PY, __file__, "--plain", str(n), "--dir", out, "--", *overrides]
    return [c.PY, str(c.REPO / "train.py"), "-m", "search=lr", "hydra.sweeper.pruner=none",
            f"hydra.sweeper.n_trials={n}", f"hydra.sweep.dir={out}", *overrides]


def study_stats(out: str) -> tuple[float, float]:
    """(best value, in-run seconds per trial) from the run's journal: the in-run figure is
    (last trial's completion - trial 0's completion) / (N - 1), so it leaves out start-up, the first
    trial (imports) and the end-of-sweep writes, measured the same way for both programs."""
    import optuna

    from sweep.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(os.path.join(out, "study.journal"))
    study = optuna.load_study(study_name=os.path.basename(out), storage=storage)
    done = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    span = (done[-1].datetime_complete - done[0].datetime_complete).total_seconds()
    return study.best_value, span / max(len(done) - 1, 1)


def rounds_of(jobs: list[tuple[str, int]], overrides: list[str], rounds: int, env: dict, tmp: str) -> dict:
    """{(program, N): (median wall s, median in-run s/trial, best value)}; jobs in rotating order each round."""
    walls: dict = {j: [] for j in jobs}
    inrun: dict = {j: [] for j in jobs}
    best: dict = {}
    for r in range(rounds):
        for k in range(len(jobs)):
            kind, n = jobs[(r + k) % len(jobs)]
            out = tempfile.mkdtemp(prefix=f"{kind}{n}-", dir=tmp)
            started = time.perf_counter()
            proc = subprocess.run(command(kind, n, out, overrides), cwd=c.REPO, env=env, capture_output=True,
                                  text=True)
            walls[(kind, n)].append(time.perf_counter() - started)
            if proc.returncode:
                sys.exit(f"{kind} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            best[(kind, n)], per_trial = study_stats(out)
            inrun[(kind, n)].append(per_trial)
    return {j: (c.median(walls[j]), c.median(inrun[j]), best[j]) for j in jobs}


def steps() -> list[tuple[str, object, str, bool]]:
    """(label, owner, attribute, per trial?) of the steps timed in (c)."""
    import hydra.core.utils as hydra_utils
    import optuna
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    import sweep.data as data
    import sweep.job as job
    import sweep.results as results
    import sweep.trial as trial
    from sweep.sweeper import LRSweeper
    from sweep.tensorboard import RunWriter

    return [
        ("sweeper: launch one trial (LRSweeper._launch)", LRSweeper, "_launch", True),
        ("  Hydra: compose the job config (load_sweep_config)", ConfigLoaderImpl, "load_sweep_config", True),
        # patched before Hydra's plugin scan imports the launcher, which binds run_job then
        ("  Hydra: run_job (job dir, .hydra/, logging, the task)", hydra_utils, "run_job", True),
        ("    Hydra: write .hydra/*.yaml (_save_config)", hydra_utils, "_save_config", True),
        ("    Hydra: logging set-up (configure_log)", hydra_utils, "configure_log", True),
        ("    train_job (the task)", job, "train_job", True),
        ("      sweep.loop.train (the epochs)", job, "train", True),
        ("      data load (sweep.data.load)", data, "load", True),
        ("      build_model (hydra.utils.instantiate)", job, "build_model", True),
        ("      TensorBoard RunWriter()", RunWriter, "__init__", True),
        ("      RunWriter.hparams + close", RunWriter, "hparams", True),
        ("      RunWriter.hparams + close", RunWriter, "close", True),
        ("      save_checkpoint", job, "save_checkpoint", True),
        ("      trial handle (trial.from_config)", trial, "from_config", True),
        ("      StudyTrial.report", trial.StudyTrial, "report", True),
        ("sweeper: _record (tell + log line)", LRSweeper, "_record", True),
        ("sweeper: _reclaim_dead", LRSweeper, "_reclaim_dead", True),
        ("sweeper: _surplus", LRSweeper, "_surplus", True),
        ("sweeper: _count", LRSweeper, "_count", True),
        ("optuna: Study.ask", optuna.Study, "ask", True),
        ("optuna: Study.tell", optuna.Study, "tell", True),
        ("optuna: Study.get_trials (all callers)", optuna.Study, "get_trials", True),
        ("optuna: Trial.set_user_attr (all callers)", optuna.trial.Trial, "set_user_attr", True),
        ("optuna: journal _sync_with_backend (all callers)", optuna.storages.JournalStorage, "_sync_with_backend", True),
        ("set-up: LRSweeper._validate (incl. one composition)", LRSweeper, "_validate", False),
        ("end: results.write_plots", results, "write_plots", False),
        ("end: results.write_results", results, "write_results", False),
        ("end: results.write_csv", results, "write_csv", False),
        ("end: LRSweeper._write_experiment", LRSweeper, "_write_experiment", False),
    ]


def inproc(mode: str, n: int, out: str, overrides: list[str]) -> None:
    """Run the sweep in this process, as train.py does, measuring trials 1..n-1 (trial 0 pays the imports).

    mode "timers": wall time of each step of steps(); "profile": cProfile of the same span.
    Writes <out>.json or <out>.prof.
    """
    import cProfile
    import copy
    import runpy

    from omegaconf import OmegaConf, open_dict

    from sweep.sweeper import LRSweeper

    totals: dict[str, list[float]] = {}
    on, composed = [False], []
    if mode == "timers":
        for label, owner, attr, per_trial in steps():
            def timed_fn(*a, _f=getattr(owner, attr), _label=label, _always=not per_trial, **k):
                started, cpu = time.perf_counter(), time.thread_time()
                try:
                    result = _f(*a, **k)
                    if _label.startswith("  Hydra: compose") and not composed:  # the one in _validate
                        composed.append(copy.deepcopy(result))
                    return result
                finally:
                    if on[0] or _always:
                        t = totals.setdefault(_label, [0.0, 0, 0.0])
                        t[0] += time.perf_counter() - started
                        t[1] += 1
                        t[2] += time.thread_time() - cpu
            wrapped = functools.wraps(getattr(owner, attr))(timed_fn)
            setattr(owner, attr, staticmethod(wrapped) if isinstance(vars(owner).get(attr), staticmethod) else wrapped)
    prof = cProfile.Profile()
    record, run, span = LRSweeper._record, LRSweeper._run, [0.0, 0.0, 0.0, 0.0]

    def record_then_measure(self, study, storage, trial_id, trial, ret):
        try:
            return record(self, study, storage, trial_id, trial, ret)
        finally:
            if trial.number == 0:  # trial 0 is recorded: measure from here on
                on[0], span[0], span[2] = True, time.perf_counter(), time.thread_time()
                if mode == "profile":
                    prof.enable()

    def run_then_stop(self, *a, **k):
        try:
            return run(self, *a, **k)
        finally:
            prof.disable()
            on[0], span[1], span[3] = False, time.perf_counter(), time.thread_time()

    LRSweeper._record, LRSweeper._run = record_then_measure, run_then_stop
    sys.argv = [str(c.REPO / "train.py"), *command("sweep", n, out, overrides)[2:]]
    runpy.run_path(sys.argv[0], run_name="__main__")
    if mode == "profile":
        return prof.dump_stats(out + ".prof")
    # the alternative to recomposing: copy one composed job config and set the trial's values
    started, reps = time.perf_counter(), 20
    for _ in range(reps):
        cfg = copy.deepcopy(composed[-1])
        with open_dict(cfg):
            for key, value in {"optimizer.lr": 0.01, "groups.head_lr_mult": 3.0, "trial.number": 7,
                               "hydra.job.id": 7, "hydra.job.num": 7}.items():
                OmegaConf.update(cfg, key, value)
    copy_ms = 1000 * (time.perf_counter() - started) / reps
    with open(out + ".json", "w") as f:
        json.dump({"span": span[1] - span[0], "span_cpu": span[3] - span[2], "steps": totals, "copy_update_ms": copy_ms}, f)


def breakdown(n: int, env: dict, tmp: str) -> None:
    out = os.path.join(tmp, "inproc")
    for mode in ("timers", "profile"):
        subprocess.run([c.PY, __file__, "--inproc", f"{mode}:{n}", "--dir", f"{out}-{mode}", "--", *TINY],
                       cwd=c.REPO, env=env, capture_output=True, check=True)
    m = n - 1
    with open(f"{out}-timers.json") as f:
        data = json.load(f)
    labels = list(dict.fromkeys((label, per_trial) for label, _, _, per_trial in steps()))
    total, total_cpu = 1000 * data["span"] / m, 1000 * data["span_cpu"] / m
    per = {label: data["steps"].get(label, (0.0, 0, 0.0)) for label, per_trial in labels if per_trial}
    rows = [["all of it: the sweep loop's time per trial", total, total_cpu, m]]
    rows += [[label, 1000 * secs / m, 1000 * cpu / m, calls] for label, (secs, calls, cpu) in per.items()]
    print(f"\n(c) one sweep of {n} tiny trials in-process; trials 1..{m} timed: ms per trial, wall and CPU "
          f"(the main thread's), [calls]")
    print(c.table(["step", "wall ms/trial", "cpu ms/trial", "calls"], rows))
    task, task_cpu = (1000 * per["    train_job (the task)"][i] / m for i in (0, 2))
    compose = 1000 * per["  Hydra: compose the job config (load_sweep_config)"][0] / m
    print(f"sweep loop minus train_job = {total - task:.1f} ms/trial wall, {total_cpu - task_cpu:.1f} ms CPU "
          f"(Hydra + sweeper + Optuna around the task)")
    print(f"for comparison: deepcopy of a composed job config + 5 OmegaConf.update = {data['copy_update_ms']:.1f} ms "
          f"(against {compose:.1f} ms for load_sweep_config)")
    once = [[label, 1000 * data["steps"].get(label, (0, 0, 0))[0]] for label, per_trial in labels if not per_trial]
    print("\nonce per sweep (ms):")
    print(c.table(["step", "ms"], once))
    stats = pstats.Stats(f"{out}-profile.prof").stats
    print("\ncProfile of the same span: top 15 functions by own time (ms/trial under the profiler, calls)")
    for (f, line, fn), (cc, nc, tt, ct, _) in sorted(stats.items(), key=lambda kv: -kv[1][2])[:15]:
        short = f.split("site-packages/")[-1].split("/lib/python3.11/")[-1].replace(str(c.REPO) + "/", "")
        print(f"  {1000 * tt / m:7.2f}  {nc:7d}  {short}:{line} {fn}")


def report(res: dict, hi: int, lo: int) -> dict:
    """Print the table of one part; return {program: (T_hi - T_lo) / (hi - lo)} in seconds."""
    slope = {k: (res[(k, hi)][0] - res[(k, lo)][0]) / (hi - lo) for k in ("sweep", "plain")}
    print(c.table(["program", f"T{hi} s", f"T{lo} s", f"(T{hi}-T{lo})/{hi - lo} ms", "fixed s", f"in-run ms/trial N={hi}",
                   "best value"],
                  [[k, res[(k, hi)][0], res[(k, lo)][0], 1000 * slope[k], res[(k, lo)][0] - lo * slope[k],
                    1000 * res[(k, hi)][1], res[(k, hi)][2]] for k in ("sweep", "plain")]))
    return slope


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads in the subprocesses (0: default)")
    ap.add_argument("--rounds", type=int, help="rounds of (a) and (b) (default 3, --quick 1)")
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
    (a_hi, a_lo), rounds, default = ((4, 2), 1, ["trainer.epochs=3"]) if args.quick else ((10, 2), 3, [])
    rounds = args.rounds or rounds
    (b_hi, b_lo), n_prof = ((15, 5), 10) if args.quick else ((30, 5), 30)

    a = rounds_of([("sweep", a_hi), ("plain", a_hi), ("sweep", a_lo), ("plain", a_lo)], default, rounds, env, tmp)
    print(f"(a) default trials (digits, {'3 epochs' if args.quick else '10 epochs'}), median of {rounds} round(s)")
    report(a, a_hi, a_lo)
    (ws, ins, _), (wp, inp, _) = a[("sweep", a_hi)], a[("plain", a_hi)]
    print(f"N={a_hi} end to end: sweep - plain = {1000 * (ws - wp) / a_hi:.0f} ms/trial, sweep / plain = {ws / wp:.3f}; "
          f"per default trial (in-run): sweep - plain = {1000 * (ins - inp):.0f} ms, sweep / plain = {ins / inp:.3f} "
          f"(target <= 1.05)")

    b = rounds_of([("sweep", b_hi), ("plain", b_hi), ("sweep", b_lo), ("plain", b_lo)], TINY, rounds, env, tmp)
    print(f"\n(b) tiny trials ({' '.join(TINY)}), median of {rounds} round(s)")
    slope = report(b, b_hi, b_lo)
    print(f"sweeper machinery per trial = sweep - plain = {1000 * (slope['sweep'] - slope['plain']):.1f} ms from "
          f"(T{b_hi}-T{b_lo})/{b_hi - b_lo}, {1000 * (b[('sweep', b_hi)][1] - b[('plain', b_hi)][1]):.1f} ms in-run "
          f"(target < 50 ms)")

    breakdown(n_prof, env, tmp)


if __name__ == "__main__":
    main()
