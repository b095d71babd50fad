"""Sweep workers as SLURM jobs (and as submitit local jobs): the budget, requeue and resume, a
cancelled worker, the storage rule, status. The SLURM tests run against the single-node cluster
`.ci/slurm.sh` starts (partition `debug`); without `sinfo` they skip, except in CI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import REPO
from optuna.trial import TrialState

from sweep.errors import ConfigError
from sweep.search import cluster, interruptions, keys, slurm_jobs
from sweep.search.settings import SweeperConf
from sweep.search.storage import open_storage
from sweep.train.resume import RESUME_FILE

APPS = REPO / "tests" / "apps"
PG_URL = os.environ.get("LRSWEEP_TEST_POSTGRES_URL")
PARTITION = os.environ.get("LRSWEEP_TEST_SLURM_PARTITION", "debug")
SLURM = ["hydra/launcher=submitit_slurm", f"hydra.launcher.partition={PARTITION}", "hydra.launcher.timeout_min=10"]
TINY = ["search=lr", "data=synthetic", "trainer.threads=1", "hydra.sweeper.plots=false"]


def needs(what: str, present: bool) -> None:
    if not present:
        if os.environ.get("CI"):
            raise AssertionError(f"{what} is missing in CI")
        pytest.skip(f"needs {what}")


def needs_slurm() -> None:
    needs("a SLURM cluster (sinfo; .ci/slurm.sh starts one)", shutil.which("sinfo") is not None)


def train(*args: str, cwd: Path, env: dict | None = None, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def journal_study(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=sweep_dir.name, storage=open_storage(str(sweep_dir / "study.journal")))


def trials_so_far(sweep_dir: Path) -> list:
    """The study's trials; none while its journal file exists but the study is not created yet."""
    if not (sweep_dir / "study.journal").exists():
        return []
    try:
        return journal_study(sweep_dir).trials
    except KeyError:
        return []


def wait_until(condition, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline or (proc is not None and proc.poll() is not None):
            raise AssertionError("timed out" if time.time() > deadline else f"exited {proc.returncode}")
        time.sleep(0.3)


def cancel(job_ids: list[str]) -> None:
    subprocess.run(["scancel", *job_ids], capture_output=True, timeout=30)


def release(job: str) -> None:
    """SLURM holds a requeued job back for a while (reason BeginTime); this test's cluster lets it
    start now, once it is pending again."""

    def running() -> bool:
        state = slurm_jobs.job_states([job])[job]
        if state == "PENDING":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True, timeout=30)
        return state == "RUNNING"

    wait_until(running, 90)


def queued_jobs(text: str) -> list[str]:
    match = re.search(r"workers queued as slurm jobs ([\d_ ]+) on study", text)
    assert match, text[-2000:]
    return match.group(1).split()


# ------------------------------------------------------------------------------------------- fast


def test_squeue_lines_name_each_array_task_and_workers_their_jobs():
    assert slurm_jobs.job_of("slurm:12_3") == "12_3" and slurm_jobs.job_of("vm:0:abc") is None
    text = "12_[2-3,5%2] PENDING\n12_0 RUNNING\n12_1 COMPLETED\n99 RUNNING\n"
    assert slurm_jobs._parse(text, ["12_0", "12_1", "12_3", "12_5"]) == {
        "12_0": "RUNNING",
        "12_1": "COMPLETED",
        "12_2": "PENDING",
        "12_3": "PENDING",
        "12_5": "PENDING",
    }


def plan_with(storage: str, tmp_path: Path):
    from omegaconf import OmegaConf

    from sweep.search.plan import Plan

    return Plan(
        space={},
        fixed=[],
        job_cfg=OmegaConf.create({}),
        hook=None,
        lr_bounds=None,
        pruner_spec={"name": "none"},
        pruner=optuna.pruners.NopPruner(),
        sweep_dir=str(tmp_path),
        storage_spec=storage,
        study_name="s",
        in_process=True,
        n_workers=2,
    )


def test_the_storage_rule_for_slurm_workers(monkeypatch, tmp_path):
    journal = str(tmp_path / "study.journal")
    monkeypatch.setattr(slurm_jobs, "partition_nodes", lambda partition: 4)
    with pytest.raises(ConfigError) as refused:
        cluster.check_storage(SweeperConf(), plan_with(journal, tmp_path), "slurm", {"partition": "gpu"})
    line = str(refused.value)
    assert "\n" not in line and "hydra.sweeper.storage" in line and "PostgreSQL" in line and "4 nodes" in line
    cluster.check_storage(SweeperConf(journal_on_shared_fs=True), plan_with(journal, tmp_path), "slurm", {})
    cluster.check_storage(SweeperConf(), plan_with("postgresql://u:secret@db/x", tmp_path), "slurm", {})
    cluster.check_storage(SweeperConf(), plan_with(journal, tmp_path), "local", {})  # one host
    monkeypatch.setattr(slurm_jobs, "partition_nodes", lambda partition: 1)
    cluster.check_storage(SweeperConf(), plan_with(journal, tmp_path), "slurm", {"nodes": 1})
    with pytest.raises(ConfigError):
        cluster.check_storage(SweeperConf(), plan_with(journal, tmp_path), "slurm", {"nodes": 2})
    monkeypatch.setattr(slurm_jobs, "partition_nodes", lambda partition: None)  # sinfo cannot say: refused
    with pytest.raises(ConfigError):
        cluster.check_storage(SweeperConf(), plan_with(journal, tmp_path), "slurm", {})


def test_a_worker_runs_the_sweep_command_on_the_basic_launcher_with_the_storage_from_the_env(monkeypatch):
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "train.py",
            "search=lr",
            "hydra/launcher=submitit_slurm",
            "hydra.launcher.partition=gpu",
            "hydra.sweeper.workers=8",
            "hydra.sweeper.storage=postgresql://u:secret@db/x",
            "hydra.sweeper.wait=false",
        ],
    )
    command = cluster.worker_command("/runs/s")
    assert command[2:] == [
        "search=lr",
        "hydra.sweep.dir=/runs/s",
        "hydra.sweeper.workers=1",
        "hydra/launcher=basic",
        "hydra.sweeper.storage=${oc.env:LRSWEEP_STORAGE}",
    ]
    assert not any("secret" in part for part in command)


# ---------------------------------------------------------------------------------- against SLURM


@pytest.mark.slow
def test_slurm_workers_on_postgresql_reach_n_trials_exactly(tmp_path):
    needs_slurm()
    needs("a PostgreSQL server (LRSWEEP_TEST_POSTGRES_URL; .ci/run starts one)", bool(PG_URL))
    from pg_util import fresh_database

    d = tmp_path / "pg"
    with fresh_database(PG_URL) as url:
        password = re.search(r"://[^:/@]+:([^@]+)@", url)
        proc = train(
            *TINY,
            "trainer.epochs=2",
            "hydra.sweeper.n_trials=6",
            "hydra.sweeper.workers=2",
            *SLURM,
            "hydra.sweeper.storage=${oc.env:LRSWEEP_STORAGE}",
            f"hydra.sweep.dir={d}",
            cwd=tmp_path,
            env={"LRSWEEP_STORAGE": url},
        )
        jobs = queued_jobs(proc.stdout + proc.stderr)
        try:
            assert proc.returncode == 0, proc.stderr[-3000:]
            study = optuna.load_study(study_name="pg", storage=open_storage(url))
            trials = study.get_trials(deepcopy=False)
            complete = [t for t in trials if t.state == TrialState.COMPLETE]
            assert len(complete) == 6 and len({t.number for t in trials}) == len(trials)
            # anything else was never trained: a worker that lost the race for the last trials
            # records a surplus failure, and a probe the search enqueued may wait for a next run
            others = [t for t in trials if t.state != TrialState.COMPLETE]
            assert all(
                t.state == TrialState.WAITING or "surplus" in keys.failure_reason(t.user_attrs) for t in others
            ), [(t.number, t.state, t.user_attrs) for t in others]
            assert not any((d / str(t.number) / "status.yaml").exists() for t in others)
            assert {t.user_attrs[keys.WORKER] for t in complete} <= {f"slurm:{j}" for j in jobs}
            assert len(re.findall(r"\(\d/6 finished\)", proc.stdout + proc.stderr)) == len(trials)  # one per trial
            status = subprocess.run(
                [sys.executable, "-m", "sweep", "status", url, "--study", "pg"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout
            assert all(f"slurm:{j}  SLURM job {j} " in status for j in jobs), status
            names = subprocess.run(
                ["squeue", "-h", "-t", "all", "-j", ",".join(jobs), "-o", "%j"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
            leaked = [
                str(p)
                for p in d.rglob("*")
                if p.is_file() and password and f":{password.group(1)}@".encode() in p.read_bytes()
            ]
            assert not leaked and ":" + (password.group(1) if password else "\0") + "@" not in names + proc.stdout
        finally:
            cancel(jobs)


@pytest.mark.slow
def test_a_requeued_worker_resumes_its_trial_from_the_saved_epoch(tmp_path):
    needs_slurm()
    from conftest import lr_steps

    d = tmp_path / "requeue"
    command = [
        sys.executable,
        str(REPO / "train.py"),
        *TINY,
        "trainer.epochs=250",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.workers=2",
        "hydra.sweeper.stale_after_s=600",
        *SLURM,
        f"hydra.sweep.dir={d}",
    ]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    jobs: list[str] = []
    try:
        wait_until(lambda: (d / "0" / RESUME_FILE).exists(), 180, proc)
        owner = journal_study(d).trials[0].user_attrs[keys.WORKER]
        job = slurm_jobs.job_of(owner)
        jobs.append(job)
        subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
        wait_until(lambda: isinstance(journal_study(d).trials[0].user_attrs.get(keys.INTERRUPTED), dict), 60)
        stopped_at = journal_study(d).trials[0].user_attrs[keys.INTERRUPTED]["epoch"]
        release(job)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        cancel(jobs)
    first = journal_study(d).trials[0]
    assert first.number == 0 and first.state == TrialState.COMPLETE and first.user_attrs[keys.WORKER] == owner
    assert 0 < stopped_at < 250
    assert sorted(first.intermediate_values) == list(range(1, 251))
    assert f"resuming trial 0 after epoch {stopped_at}" in (d / "0" / "train.log").read_text()
    steps = lr_steps(d / "0" / "tensorboard")
    stride = steps[1] - steps[0]
    assert steps == sorted(set(steps)) and all(b - a == stride for a, b in zip(steps[:-2], steps[1:-1]))


@pytest.mark.slow
def test_a_cancelled_worker_has_its_trial_failed_and_retried(tmp_path):
    needs_slurm()
    d = tmp_path / "cancel"
    command = [
        sys.executable,
        str(APPS / "quadratic.py"),
        "-m",
        f"hydra.sweep.dir={d}",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.workers=2",
        "hydra.sweeper.heartbeat_s=1",
        "hydra.sweeper.stale_after_s=5",
        "steps=3",
        "sleep_s=4",
        *SLURM,
    ]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    jobs: list[str] = []
    try:
        wait_until(
            lambda: any(keys.WORKER in t.user_attrs for t in trials_so_far(d)),
            180,
            proc,
        )
        victim = journal_study(d).trials[0]
        jobs.append(slurm_jobs.job_of(victim.user_attrs[keys.WORKER]))
        subprocess.run(["scancel", jobs[0]], check=True, timeout=30)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        cancel(jobs)
    trials = journal_study(d).trials
    failed = trials[victim.number]
    assert failed.state == TrialState.FAIL
    assert keys.failure_reason(failed.user_attrs) == f"worker {victim.user_attrs[keys.WORKER]} died while running it"
    retry = [t for t in trials if t.user_attrs.get(keys.RETRY_OF) == victim.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == failed.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4


@pytest.mark.slow
def test_the_same_workers_run_as_submitit_local_jobs_without_slurm(tmp_path):
    d = tmp_path / "local"
    proc = subprocess.run(
        [
            sys.executable,
            str(APPS / "quadratic.py"),
            "-m",
            f"hydra.sweep.dir={d}",
            "hydra.sweeper.n_trials=6",
            "hydra.sweeper.workers=2",
            "hydra.sweeper.plots=false",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=5",
            "sleep_s=0.1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "workers queued as local jobs" in proc.stdout + proc.stderr
    trials = journal_study(d).trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 6 and len(trials) == 6
    assert len({t.user_attrs[keys.WORKER] for t in trials}) == 2
    assert (d / "trials.csv").exists()


def test_interrupted_exit_code_is_what_the_cluster_worker_requeues_on():
    from sweep.search.cluster_worker import ClusterWorker

    worker = ClusterWorker([sys.executable, "-c", f"import sys; sys.exit({interruptions.EXIT_INTERRUPTED})"], ".", {})
    assert worker(0) == interruptions.EXIT_INTERRUPTED
    delayed = worker.checkpoint(0)
    assert delayed.function is worker and delayed.args == (0,)
    with pytest.raises(RuntimeError, match="exited with code 3"):
        ClusterWorker([sys.executable, "-c", "import sys; sys.exit(3)"], ".", {})(1)
