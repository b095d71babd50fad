"""lr-sweep's sweep against the Hydra Optuna plugin (hydra-optuna-sweeper 1.3.0 + optuna 2.10.1) on the same job.

Two programs, each a fresh subprocess (start-up, imports and end-of-sweep work included in both):
- anchor  : bench/anchor_app/train_anchor.py -m (hydra/sweeper=optuna), in its own venv bench/.venv-anchor,
            built here on first use (the same torch as .venv; the project's own dependencies are unchanged)
- lr-sweep: .venv/bin/python train.py -m search=lr hydra.sweeper.pruner=none trainer.epochs=20 ...
The same digits job (MLP 64-256-256-10, backbone/head groups, SGD momentum 0.9, batch 64, step decay,
20 epochs, torch's default threads), the same log-scale space for optimizer.lr and groups.head_lr_mult,
TPE seed 0, no pruning, one trial at a time, a fresh sweep dir per run.

Each repetition runs both programs at 10 and 30 trials, interleaved (the order rotates per repetition),
and twice the floor that any PyTorch training app pays: a process that imports torch and builds one
optimizer (torch's first optimizer constructor imports torch._dynamo), exiting the usual way.
"train" is the summed time of the epochs (anchor: epochs.json in each job dir; lr-sweep: the per-epoch
"(NN ms)" of each job's train.log), so "wall - train" is everything but training.
Per program and repetition:
    per extra trial = median over trials k = 1 .. n-2 of (start of trial k+1 - start of trial k - train of k),
                      where a trial starts when its job dir's .hydra/config.yaml is written (both programs
                      write it before the job runs); trial 0 pays the torch._dynamo import and is left out.
                      A median of 36 cycles per repetition: a noisy machine moves it by milliseconds.
    fixed cost      = (wall - train) - trials x per extra trial, the mean over the 10- and 30-trial runs
    wall / train at 30 trials
and, as a cross-check, the slope ((wall30 - train30) - (wall10 - train10)) / 20, which is what
"per extra trial" means but carries the whole runs' noise (seconds, over 20 trials).
Targets: per extra trial < 30 ms and below the anchor's; fixed < 2.5 s and below the anchor's;
wall / train <= 1.25x at 30 trials.

    .venv/bin/python bench/sweeper_vs_optuna_plugin.py             # 2 repetitions of 10 and 30 trials x 20 epochs
    .venv/bin/python bench/sweeper_vs_optuna_plugin.py --quick     # smoke check: 1 rep of 3 and 5 trials x 2 epochs
    .venv/bin/python bench/sweeper_vs_optuna_plugin.py --threads 1 # both programs on one torch thread (a busy machine)
    .venv/bin/python bench/sweeper_vs_optuna_plugin.py --profile   # where lr-sweep's time goes (cProfile + counters)
    .venv/bin/python bench/sweeper_vs_optuna_plugin.py --repo DIR  # another lr-sweep tree (e.g. an exported commit)
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as c

BENCH = Path(__file__).resolve().parent
ANCHOR_APP = BENCH / "anchor_app" / "train_anchor.py"
ANCHOR_VENV = BENCH / ".venv-anchor"
ANCHOR_PY = ANCHOR_VENV / "bin" / "python"
# What the anchor's users install; pip's resolver may not move torch or hydra-core (pinned below).
ANCHOR_REQUIREMENTS = ["hydra-optuna-sweeper==1.3.0", "optuna==2.10.1", "SQLAlchemy<2", "alembic<1.14", "numpy"]
EPOCH_MS = re.compile(r"\((\d+(?:\.\d+)?) ms\)")
TARGETS = {"per_trial_ms": 30.0, "fixed_s": 2.5, "wall_over_train": 1.25}


# -- the anchor's environment ------------------------------------------------------------------------
def local_torch_wheel(version: str) -> str | None:
    """A torch wheel of `version` in pip's find-links folders (this machine keeps its CPU wheel there)."""
    dirs = os.environ.get("PIP_FIND_LINKS", "").split() + ["/opt/wheels"]
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for d in dirs:
        d = d.removeprefix("file://")
        if os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                if name.startswith(f"torch-{version}-") and tag in name and name.endswith(".whl"):
                    return os.path.join(d, name)
    return None


def ensure_anchor_env(venv: Path = ANCHOR_VENV) -> Path:
    """Build the anchor's venv once (python3 -m venv + pip); a marker file records what it holds."""
    torch_v, hydra_v = md.version("torch"), md.version("hydra-core")
    spec = {"torch": torch_v, "hydra-core": hydra_v, "requirements": ANCHOR_REQUIREMENTS}
    marker = venv / "lr-sweep-anchor.json"
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return venv / "bin" / "python"
    print(f"building the anchor's environment in {venv} (once) ...", flush=True)
    subprocess.run(["python3", "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    constraints = venv / "constraints.txt"  # the same torch and hydra-core as .venv: only the sweeper differs
    constraints.write_text(f"torch=={torch_v}\nhydra-core=={hydra_v}\n")
    wheel = local_torch_wheel(torch_v)
    subprocess.run(pip + ["-c", str(constraints), wheel or f"torch=={torch_v}"], check=True)
    subprocess.run(pip + ["-c", str(constraints), f"hydra-core=={hydra_v}", *ANCHOR_REQUIREMENTS], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "check"], check=True)
    marker.write_text(json.dumps(spec))
    return venv / "bin" / "python"


def digits_csv() -> str:
    """scikit-learn's digits CSV in .venv; the anchor reads the same file (its venv has no scikit-learn)."""
    spec = importlib.util.find_spec("sklearn")
    assert spec is not None and spec.submodule_search_locations, "scikit-learn is a dependency of lr-sweep"
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "digits.csv.gz")


# -- one sweep -----------------------------------------------------------------------------------------
def command(arm: str, n: int, epochs: int, out: str, repo: Path) -> list[str]:
    if arm == "anchor":
        return [
            str(ANCHOR_PY),
            str(ANCHOR_APP),
            "-m",
            f"hydra.sweeper.n_trials={n}",
            f"hydra.sweep.dir={out}",
            f"trainer.epochs={epochs}",
            f"data.csv={digits_csv()}",
            "hydra.sweeper.sampler.seed=0",
        ]
    return [
        c.PY,
        str(repo / "train.py"),
        "-m",
        "search=lr",
        "hydra.sweeper.pruner=none",
        "hydra.sweeper.sampler=tpe",
        "hydra.sweeper.seed=0",
        f"trainer.epochs={epochs}",
        f"hydra.sweeper.n_trials={n}",
        f"hydra.sweep.dir={out}",
    ]


def job_dirs(out: str) -> list[Path]:
    return sorted((p for p in Path(out).iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def train_seconds(arm: str, job: Path) -> float:
    """Summed epoch time of one trial, from the record its job left."""
    if arm == "anchor":
        return json.loads((job / "epochs.json").read_text())["train_s"]
    log = job / "train.log"
    return sum(float(x) for x in EPOCH_MS.findall(log.read_text())) / 1000 if log.is_file() else 0.0


def cycles(jobs: list[Path], trains: list[float]) -> list[float]:
    """Each trial's cost beyond its training (`trains`), trials 1 .. n-2: from its start (its
    .hydra/config.yaml written) to the next trial's start, less its summed epochs."""
    starts = [(j / ".hydra" / "config.yaml").stat().st_mtime for j in jobs]
    return [starts[k + 1] - starts[k] - trains[k] for k in range(1, len(jobs) - 1)]


FLOOR = "import torch; torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)"


def run_floor(env: dict) -> float:
    """Wall time of the floor: a process that imports torch, builds one optimizer and exits."""
    started = time.perf_counter()
    subprocess.run([c.PY, "-c", FLOOR], env=env, check=True)
    return time.perf_counter() - started


def stragglers(out: str) -> list[int]:
    """Processes still running with the sweep dir on their command line (e.g. plots drawn in the background)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if out in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace") and int(pid) != os.getpid():
                pids.append(int(pid))
        except OSError:
            continue
    return pids


def run_sweep(arm: str, n: int, epochs: int, tmp: str, repo: Path, env: dict) -> dict:
    """One sweep in a fresh dir: wall time until the program exits (stdout to a file, so a background
    child that outlives it is not waited for), then a wait for such children, so they do not slow the
    next run; their time is reported apart ("after exit") and not counted in the wall time."""
    out = tempfile.mkdtemp(prefix=f"{arm}{n}-", dir=tmp)
    with open(out + ".log", "w") as log:
        started = time.perf_counter()
        proc = subprocess.run(
            command(arm, n, epochs, out, repo),
            cwd=repo if arm != "anchor" else c.REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"{arm} ({n} trials) failed:\n{Path(out + '.log').read_text()[-3000:]}")
    deadline = time.perf_counter() + 300
    while stragglers(out) and time.perf_counter() < deadline:
        time.sleep(0.1)
    after = time.perf_counter() - started - wall
    jobs = job_dirs(out)
    trains = [train_seconds(arm, j) for j in jobs]
    return {
        "wall": wall,
        "train": sum(trains),
        "trials": len(jobs),
        "dir": out,
        "after_exit": after,
        "cycles": cycles(jobs, trains),
    }


# -- the comparison ------------------------------------------------------------------------------------
def figures(lo: dict, hi: dict, floor: float) -> dict:
    """One program's figures from one repetition's two runs (`floor`: that repetition's floor)."""
    per_trial = statistics.median(lo["cycles"] + hi["cycles"])
    fixed = statistics.mean(r["wall"] - r["train"] - r["trials"] * per_trial for r in (lo, hi))
    slope = ((hi["wall"] - hi["train"]) - (lo["wall"] - lo["train"])) / max(hi["trials"] - lo["trials"], 1)
    return {
        "per_trial_ms": 1000 * per_trial,
        "slope_ms": 1000 * slope,
        "fixed_s": fixed,
        "beyond_floor_s": fixed - floor,
        "wall_over_train": hi["wall"] / hi["train"],
    }


def span(xs: list[float], fmt: str) -> str:
    lo, hi = min(xs), max(xs)
    sep = " to " if lo < 0 else "-"
    return fmt.format(lo) if f"{lo:.3g}" == f"{hi:.3g}" else f"{fmt.format(lo)}{sep}{fmt.format(hi)}"


def report(runs: dict, floors: list[list[float]], reps: int, n_lo: int, n_hi: int) -> None:
    arms = ("anchor", "lr-sweep")
    print(
        "\nraw runs (s): arm, trials asked, repetition: wall, train, trials run, wall - train, median cycle "
        "beyond training (ms), background work after exit (not in wall)"
    )
    for (arm, n), rs in sorted(runs.items()):
        for i, r in enumerate(rs):
            print(
                f"  {arm:8s} {n:3d}  rep {i}: wall {r['wall']:7.2f}  train {r['train']:7.2f}  trials {r['trials']:3d}"
                f"  wall-train {r['wall'] - r['train']:6.2f}  cycle {1000 * statistics.median(r['cycles']):5.0f}"
                f"  after exit {r['after_exit']:5.2f}"
            )
    print(
        "  floor (import torch + first optimizer, a whole process): "
        + ", ".join(f"rep {i}: " + " ".join(f"{x:.2f}" for x in f) for i, f in enumerate(floors))
    )
    floor = [statistics.median(f) for f in floors]
    fig = {a: [figures(runs[(a, n_lo)][i], runs[(a, n_hi)][i], floor[i]) for i in range(reps)] for a in arms}
    rows = []
    names = {
        "per_trial_ms": ("cost per extra trial, beyond training (ms)", "{:.0f}"),
        "slope_ms": (f"  cross-check: slope {n_lo} -> {n_hi} trials (ms)", "{:.0f}"),
        "fixed_s": ("fixed cost of a sweep (s)", "{:.2f}"),
        "beyond_floor_s": ("  fixed cost beyond the floor (s)", "{:.2f}"),
        "wall_over_train": (f"wall / summed training, {n_hi} trials", "{:.2f}x"),
    }
    for key, (label, fmt) in names.items():
        a, s = [f[key] for f in fig["anchor"]], [f[key] for f in fig["lr-sweep"]]
        ratios = [si / ai for si, ai in zip(s, a)] if all(ai > 0 for ai in a) else []
        if key == "wall_over_train":
            target = f"<= {TARGETS[key]:.2f}x"
            met = "yes" if all(x <= TARGETS[key] for x in s) else "no"
        elif key in TARGETS:
            target = f"< {fmt.format(TARGETS[key])} and < anchor"
            met = "yes" if all(x < TARGETS[key] for x in s) and all(si < ai for si, ai in zip(s, a)) else "no"
        else:
            target = met = ""
        rows.append([label, span(a, fmt), span(s, fmt), span(ratios, "{:.2f}") if ratios else "", target, met])
    print(
        f"\n{reps} interleaved repetition(s), {n_lo} and {n_hi} trials; ranges over repetitions "
        f"(a shared, noisy machine: other processes ran alongside); the floor: {span(floor, '{:.2f}')} s"
    )
    print(
        c.table(
            ["", "hydra-optuna-sweeper 1.3.0 + optuna 2.10.1", "lr-sweep", "lr-sweep / anchor", "target", "met"], rows
        )
    )


def thread_env(n: int) -> dict:
    """The environment of both programs: torch's default threads (0), or `n` intra-op threads through
    OMP_NUM_THREADS, which torch reads at start in both (on a small shared machine the default
    spin-waits against other processes: epochs of this MLP went from ~60 ms to seconds)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**env, "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)} if n else env


def bench(args: argparse.Namespace) -> None:
    ensure_anchor_env()
    repo = Path(args.repo).resolve()
    env = thread_env(args.threads)
    (n_lo, n_hi), epochs, reps = ((3, 5), 2, 1) if args.quick else ((10, 30), 20, 2)
    reps = args.reps or reps
    tmp = tempfile.mkdtemp(prefix="bench-vs-plugin-")
    jobs = [("anchor", n_lo), ("lr-sweep", n_lo), ("anchor", n_hi), ("lr-sweep", n_hi)]
    runs: dict = {j: [] for j in jobs}
    floors: list[list[float]] = []
    print(f"lr-sweep tree: {repo}; runs under {tmp}; torch threads: {args.threads or 'default'}", flush=True)
    for rep in range(reps):
        floors.append([])
        for k in range(len(jobs)):
            if k % 2 == 0:
                floors[-1].append(run_floor(env))
            arm, n = jobs[(rep + k) % len(jobs)]
            r = run_sweep(arm, n, epochs, tmp, repo, env)
            runs[(arm, n)].append(r)
            print(
                f"  rep {rep} {arm:8s} {n:3d} trials: wall {r['wall']:.1f} s, train {r['train']:.1f} s, "
                f"trials run {r['trials']}, background work after exit {r['after_exit']:.1f} s",
                flush=True,
            )
    report(runs, floors, reps, n_lo, n_hi)


# -- where lr-sweep's time goes ----------------------------------------------------------------------------
# (label, file path suffix, function name): library and Hydra steps looked up in the profile by name, so the
# list survives changes inside sweep/ (whose own functions are listed separately, whatever they are called).
PROFILED = [
    ("Hydra run_job (job dir, .hydra/, logging, the task)", "hydra/core/utils.py", "run_job"),
    ("Hydra _save_config (.hydra/*.yaml)", "hydra/core/utils.py", "_save_config"),
    ("Hydra configure_log", "hydra/core/utils.py", "configure_log"),
    ("logging.config.dictConfig", "logging/config.py", "dictConfig"),
    ("Hydra compose (load_sweep_config)", "hydra/_internal/config_loader_impl.py", "load_sweep_config"),
    ("copy.deepcopy (outermost calls)", "copy.py", "deepcopy"),
    ("OmegaConf.to_container", "omegaconf/omegaconf.py", "to_container"),
    ("OmegaConf.save", "omegaconf/omegaconf.py", "save"),
    ("OmegaConf.to_yaml", "omegaconf/omegaconf.py", "to_yaml"),
    ("optuna Study.ask", "optuna/study/study.py", "ask"),
    ("optuna Study.tell", "optuna/study/study.py", "tell"),
    ("optuna Study.get_trials", "optuna/study/study.py", "get_trials"),
    ("optuna Trial.set_user_attr", "optuna/trial/_trial.py", "set_user_attr"),
    ("optuna Trial.report", "optuna/trial/_trial.py", "report"),
    ("optuna TPE sample_relative", "optuna/samplers/_tpe/sampler.py", "sample_relative"),
    ("optuna TPE sample_independent", "optuna/samplers/_tpe/sampler.py", "sample_independent"),
    ("journal _sync_with_backend (reads)", "optuna/storages/journal/_storage.py", "_sync_with_backend"),
    ("journal append_logs (writes)", "optuna/storages/journal/_file.py", "append_logs"),
    ("journal read_logs", "optuna/storages/journal/_file.py", "read_logs"),
    ("os.fsync", "~", "<built-in method posix.fsync>"),
    ("TensorBoard SummaryWriter.__init__", "torch/utils/tensorboard/writer.py", "__init__"),
    ("TensorBoard SummaryWriter.close", "torch/utils/tensorboard/writer.py", "close"),
    ("TensorBoard add_scalar", "torch/utils/tensorboard/writer.py", "add_scalar"),
    ("torch.save (checkpoint)", "torch/serialization.py", "save"),
    ("torch Optimizer.__init__ (the first imports torch._dynamo)", "torch/optim/optimizer.py", "__init__"),
    ("numpy loadtxt (the digits CSV)", "numpy/lib/_npyio_impl.py", "loadtxt"),
    ("files opened (io.open)", "~", "<built-in method io.open>"),
    ("optuna create_study", "optuna/study/study.py", "create_study"),
    ("optuna load_study", "optuna/study/study.py", "load_study"),
    ("optuna get_param_importances", "optuna/importance/__init__.py", "get_param_importances"),
    ("matplotlib savefig", "matplotlib/figure.py", "savefig"),
]


def profile_child(repo: Path, argv: list[str], out: str) -> None:
    """Run train.py in this process under cProfile (the --profile-child subprocess)."""
    import cProfile
    import runpy

    os.chdir(repo)
    sys.path.insert(0, str(repo))
    sys.argv = [str(repo / "train.py"), *argv]
    prof = cProfile.Profile()
    started = time.perf_counter()
    prof.enable()
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as err:
        if err.code:
            raise
    finally:
        prof.disable()
        prof.dump_stats(out)
        Path(out + ".wall").write_text(str(time.perf_counter() - started))


def lr_sweep_args(n: int, epochs: int, out: str) -> list[str]:
    return command("lr-sweep", n, epochs, out, c.REPO)[2:]


def import_times(repo: Path, env: dict, tmp: str, top: int) -> list[tuple[str, float]]:
    """The costliest imports a 3-trial sweep runs from its own code (python -X importtime): the import
    statements not nested in another import, lazy ones inside functions included, cumulative ms."""
    out = tempfile.mkdtemp(prefix="importtime-", dir=tmp)
    proc = subprocess.run(
        [c.PY, "-X", "importtime", str(repo / "train.py"), *lr_sweep_args(3, 1, out)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    found = [
        (m.group(2), int(m.group(1)) / 1000)
        for m in re.finditer(r"^import time:\s+\d+ \|\s+(\d+) \| (\S+)$", proc.stderr, re.M)
    ]
    return sorted(found, key=lambda kv: -kv[1])[:top]


def profiled_sweep(repo: Path, n: int, epochs: int, env: dict, tmp: str) -> dict:
    """One sweep of `n` trials in a --profile-child subprocess: {(file, line, fn): (calls, cumulative s)}."""
    import pstats

    sweep_dir, prof = os.path.join(tmp, f"sweep{n}"), os.path.join(tmp, f"sweep{n}.prof")
    subprocess.run(
        [c.PY, __file__, "--profile-child", prof, "--repo", str(repo), "--", *lr_sweep_args(n, epochs, sweep_dir)],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
    )
    while stragglers(sweep_dir):  # background work (plots) would slow the next run
        time.sleep(0.1)
    stats = {k: (v[1], v[3]) for k, v in pstats.Stats(prof).stats.items()}
    jobs = job_dirs(sweep_dir)
    return {
        "stats": stats,
        "wall": float(Path(prof + ".wall").read_text()),
        "trials": len(jobs),
        "train": sum(train_seconds("lr-sweep", j) for j in jobs),
    }


def profile(args: argparse.Namespace) -> None:
    """Two lr-sweep sweeps (2 and N trials) under cProfile: each function's cost per extra trial is the
    difference over the extra trials (so trial 0's imports fall out) and its once-per-sweep cost what is
    left at 2 trials; counts of journal writes and fsyncs per trial; the costliest imports."""
    repo = Path(args.repo).resolve()
    env = thread_env(args.threads)
    tmp = tempfile.mkdtemp(prefix="profile-lr-sweep-")
    lo = profiled_sweep(repo, 2, args.profile_epochs, env, tmp)
    hi = profiled_sweep(repo, args.profile_trials, args.profile_epochs, env, tmp)
    extra = hi["trials"] - lo["trials"]
    over = [r["wall"] - r["train"] for r in (lo, hi)]
    per_trial = (over[1] - over[0]) / extra
    print(
        f"lr-sweep tree: {repo}; sweeps of {lo['trials']} and {hi['trials']} trials x {args.profile_epochs} "
        f"epoch(s) in-process under cProfile, which inflates Python-heavy code (read shares):\n"
        f"wall - epochs: {over[0]:.2f} s and {over[1]:.2f} s -> {1000 * per_trial:.0f} ms per extra trial, "
        f"{over[0] - lo['trials'] * per_trial:.2f} s once per sweep "
        "(work left to a background process, e.g. plots, is not included)"
    )

    def split(keys: list) -> tuple[float, float, float, float]:
        """(calls per extra trial, ms per extra trial, calls once, ms once) of the functions `keys`."""
        (c_lo, t_lo), (c_hi, t_hi) = [
            [sum(r["stats"].get(k, (0, 0.0))[i] for k in keys) for i in (0, 1)] for r in (lo, hi)
        ]
        m_calls, m_ms = (c_hi - c_lo) / extra, 1000 * (t_hi - t_lo) / extra
        return m_calls, m_ms, c_lo - lo["trials"] * m_calls, 1000 * t_lo - lo["trials"] * m_ms

    every = set(lo["stats"]) | set(hi["stats"])
    rows = []
    for label, suffix, name in PROFILED:
        keys = [k for k in every if k[2] == name and k[0].replace("\\", "/").endswith(suffix)]
        if keys:
            rows.append([label, *split(keys)])
    print("\nlibrary and Hydra steps, by name (cumulative: nested steps count in their parents)")
    print(c.table(["step", "calls / trial", "ms / trial", "calls once", "ms once"], rows))

    own = []
    for k in every:
        path = k[0].replace("\\", "/")
        if path.startswith(str(repo) + "/") and "/.venv/" not in path and not k[2].startswith("<"):
            own.append([f"{path[len(str(repo)) + 1 :]}:{k[1]} {k[2]}", *split([k])])
    print(f"\nlr-sweep's own functions, top {args.profile_top} by ms per extra trial (cumulative)")
    print(
        c.table(
            ["function", "calls / trial", "ms / trial", "calls once", "ms once"],
            sorted(own, key=lambda r: -r[2])[: args.profile_top],
        )
    )
    print(f"\nlr-sweep's own functions, top {args.profile_top} by ms once per sweep (cumulative)")
    print(
        c.table(
            ["function", "calls / trial", "ms / trial", "calls once", "ms once"],
            sorted(own, key=lambda r: -r[4])[: args.profile_top],
        )
    )

    print(
        "\nimports a 3-trial sweep runs from its own code, costliest first (python -X importtime, no profiler; "
        "not nested in another import; lazy imports inside functions included)"
    )
    print(c.table(["module", "cumulative ms"], [[k, v] for k, v in import_times(repo, env, tmp, 15)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, help="repetitions (default 2, --quick 1)")
    ap.add_argument("--quick", action="store_true", help="1 repetition of 3 and 5 trials x 2 epochs (a smoke check)")
    ap.add_argument(
        "--threads", type=int, default=0, help="torch threads in both programs (default 0: torch's default)"
    )
    ap.add_argument("--repo", default=str(c.REPO), help="the lr-sweep tree whose train.py runs (default: this one)")
    ap.add_argument("--build-only", action="store_true", help="build the anchor's venv and stop")
    ap.add_argument("--profile", action="store_true", help="profile one lr-sweep sweep instead of the comparison")
    ap.add_argument("--profile-trials", type=int, default=12)
    ap.add_argument("--profile-epochs", type=int, default=1)
    ap.add_argument("--profile-top", type=int, default=30)
    ap.add_argument("--profile-child", help=argparse.SUPPRESS)
    ap.add_argument("argv", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.profile_child:
        return profile_child(Path(args.repo).resolve(), args.argv, args.profile_child)
    if args.build_only:
        return print(ensure_anchor_env())
    if args.profile:
        return profile(args)
    bench(args)


if __name__ == "__main__":
    main()
