"""`hydra.sweeper.workers=N` with Hydra's submitit launcher: the N workers are SLURM jobs.

Hydra's launchers run a sweep in batches and wait for a batch's slowest job; with pruning most of
the slots a sweep pays for sit idle (`bench/slurm_workers.py` measures it). Here the sweep command
submits N worker jobs as one submitit job array (`hydra.launcher.array_parallelism` of them at
once) and each worker pulls trials from the shared study until it holds `n_trials` finished trials:
no barrier, the budget exact (`sweep.search.workers`), TPE's constant liar sees running trials.

The launcher's own settings (`hydra.launcher.*` of hydra-submitit-launcher: partition, timeout_min,
gpus_per_node, cpus_per_task, mem_gb, nodes, tasks_per_node, signal_delay_s, max_num_timeout,
additional_parameters, setup, submitit_folder, ...) are read from the composed config and given
to submitit's executor through its public API, the way the launcher itself does;
`hydra/launcher=submitit_local` runs the same workers as local processes (no SLURM). Inside a job
a worker is the same sweep command on Hydra's basic launcher (`sweep.search.cluster_worker`).

The submitting command waits, one line per finished trial, then writes the results; with
`hydra.sweeper.wait=false` it returns once the jobs are queued and prints the status command (the
same command run again when the study is done writes the results without submitting anything).

The storage: a database URL (PostgreSQL) for workers on several hosts. A journal file is refused
for SLURM workers unless the partition has one node (asked of `sinfo`) or
`hydra.sweeper.journal_on_shared_fs=true` says its file system's locks work across hosts. The URL
reaches the workers through the environment (`LRSWEEP_STORAGE`), never their command line, logs or
job names.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
import time
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from sweep.errors import check
from sweep.search import keys, progress, slurm_jobs
from sweep.search.plan import Plan
from sweep.search.storage import is_url, masked
from sweep.search.study import open_study
from sweep.trial import Outcome, Status

log = logging.getLogger(__name__)

SUBMITIT = "hydra_plugins.hydra_submitit_launcher."
STORAGE_ENV = "LRSWEEP_STORAGE"
POLL_S = 0.5
DROPPED_ARGS = (
    "hydra.sweeper.workers=",
    "hydra.sweep.dir=",
    "hydra/launcher=",
    "hydra.launcher.",
    "hydra.sweeper.wait=",
    "hydra.sweeper.worker_index=",
    "hydra.sweeper.storage=",
)


def is_submitit(config: DictConfig) -> bool:
    return str(OmegaConf.select(config, "hydra.launcher._target_") or "").startswith(SUBMITIT)


def cluster_kind(config: DictConfig) -> str:
    """ "slurm" for submitit_slurm, "local" for submitit_local."""
    return "slurm" if str(OmegaConf.select(config, "hydra.launcher._target_")).endswith("SlurmLauncher") else "local"


def launcher_settings(config: DictConfig) -> dict[str, Any]:
    """`hydra.launcher.*`, resolved, without `_target_`."""
    settings = OmegaConf.to_container(config.hydra.launcher, resolve=True)
    assert isinstance(settings, dict)
    settings.pop("_target_", None)
    return {str(key): value for key, value in settings.items()}


def check_storage(c: Any, plan: Plan, kind: str, settings: dict[str, Any]) -> None:
    """A journal file only where every worker shares one host (see the module docstring)."""
    if is_url(plan.storage_spec) or kind != "slurm" or c.journal_on_shared_fs:
        return
    nodes = slurm_jobs.partition_nodes(settings.get("partition"))
    check(
        nodes == 1 and int(settings.get("nodes") or 1) == 1,
        "hydra.sweeper.storage",
        plan.storage_spec,
        "a PostgreSQL URL such as postgresql://user@dbhost/lrsweep for SLURM workers: they may run on "
        f"several hosts (partition {settings.get('partition') or '(default)'}: {nodes or 'unknown'} nodes), "
        "and journal file locks are not safe across machines (hydra.sweeper.journal_on_shared_fs=true "
        "if your file system's locks are)",
    )


def make_executor(settings: dict[str, Any], kind: str, n_workers: int) -> Any:
    """submitit's executor with the launcher's settings, as hydra-submitit-launcher maps them: the
    common ones as they are, the cluster's own with its prefix (`slurm_partition`, ...)."""
    import submitit

    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    settings = dict(settings)
    init = {"folder": settings.pop("submitit_folder")}
    if "max_num_timeout" in settings:
        init[f"{kind}_max_num_timeout"] = settings.pop("max_num_timeout")
    if kind == "slurm":
        settings["array_parallelism"] = int(settings.get("array_parallelism") or n_workers)
    settings["name"] = masked(str(settings.get("name") or "lr-sweep"))
    common = set(OmegaConf.structured(BaseQueueConf).keys())
    executor = submitit.AutoExecutor(cluster=kind, **init)
    executor.update_parameters(**{k if k in common else f"{kind}_{k}": v for k, v in settings.items()})
    return executor


def worker_command(sweep_dir: str) -> list[str]:
    """The sweep command as one worker in a job: Hydra's basic launcher, the storage from the env."""
    argv = [a for a in sys.argv[1:] if not a.lstrip("+~").startswith(DROPPED_ARGS)]
    return [
        sys.executable,
        os.path.abspath(sys.argv[0]),
        *argv,
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweeper.workers=1",
        "hydra/launcher=basic",
        f"hydra.sweeper.storage=${{oc.env:{STORAGE_ENV}}}",
    ]


def run_cluster_workers(sweeper: Any, plan: Plan) -> None:
    """Submit the workers, then wait for the study (or not: `hydra.sweeper.wait=false`)."""
    from sweep.search.cluster_worker import ClusterWorker

    c, kind = sweeper.conf, cluster_kind(sweeper.config)
    settings = launcher_settings(sweeper.config)
    check_storage(c, plan, kind, settings)
    study, _ = open_study(c, plan)
    if sum(keys.counts_as_finished(t) for t in study.get_trials(deepcopy=False)) >= c.n_trials:
        log.info("study '%s' already holds n_trials=%d finished trials: nothing to submit", plan.study_name, c.n_trials)
        return sweeper.finish(plan, study)
    os.makedirs(plan.sweep_dir, exist_ok=True)
    os.environ[STORAGE_ENV] = plan.storage_spec  # sbatch and the local executor pass the env on
    executor = make_executor(settings, kind, plan.n_workers)
    worker = ClusterWorker(worker_command(plan.sweep_dir), os.getcwd(), {})
    jobs = executor.map_array(worker, list(range(plan.n_workers)))
    ids = [str(j.job_id) for j in jobs]
    study.set_user_attr(keys.CLUSTER_JOBS, sorted(set(study.user_attrs.get(keys.CLUSTER_JOBS) or []) | set(ids)))
    target = plan.storage_spec if is_url(plan.storage_spec) else plan.sweep_dir
    log.info(
        "%d workers queued as %s jobs %s on study '%s' in %s",
        plan.n_workers,
        kind,
        " ".join(ids),
        plan.study_name,
        masked(plan.storage_spec),
    )
    if not c.wait:
        print(f"workers queued: {' '.join(ids)}\nfollow them with: python -m sweep status {masked(target)}")
        return None
    wait_for(study, jobs, kind, c.n_trials)
    return sweeper.finish(plan, study)


def trial_outcome(t: optuna.trial.FrozenTrial) -> Outcome:
    """How a finished trial ended, read back from the study."""
    stored = t.user_attrs.get(keys.OUTCOME)
    if isinstance(stored, dict):
        return Outcome.from_dict(stored)
    if t.state == TrialState.COMPLETE:  # a complete trial's outcome is its value; its epochs, what it reported
        return Outcome(Status.COMPLETE, t.value, "", len(t.intermediate_values))
    status = Status.PRUNED if t.state == TrialState.PRUNED else Status.FAILED
    return Outcome(status, None, keys.failure_reason(t.user_attrs))


def progress_line(t: optuna.trial.FrozenTrial, finished: int, n_trials: int) -> str:
    seconds = t.duration.total_seconds() if isinstance(t.duration, datetime.timedelta) else None
    line = progress.trial_line(t.number, t.params, trial_outcome(t), seconds)
    return f"{line}  [{t.user_attrs.get(keys.WORKER, '?')}] ({finished}/{n_trials} finished)"


def alive(jobs: list[Any], kind: str) -> bool:
    """Whether any worker job is queued or running."""
    if kind == "slurm":
        states = slurm_jobs.job_states([str(j.job_id) for j in jobs])
        if any(s != slurm_jobs.UNKNOWN for s in states.values()):
            return any(s in slurm_jobs.ACTIVE for s in states.values())
    return not all(j.done() for j in jobs)


def wait_for(study: optuna.Study, jobs: list[Any], kind: str, n_trials: int) -> None:
    """One line per trial as it finishes, until the study holds n_trials finished trials or no worker
    is left. Ctrl-C cancels the workers (their trials stay resumable: run the command again)."""
    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    seen = {t.number for t in study.get_trials(deepcopy=False, states=ended)}
    try:
        while True:
            trials = study.get_trials(deepcopy=False)
            finished = sum(keys.counts_as_finished(t) for t in trials)
            new = sorted(
                (t for t in trials if t.state in ended and t.number not in seen),
                key=lambda t: t.datetime_complete or datetime.datetime.min,
            )
            done = finished - sum(keys.counts_as_finished(t) for t in new)
            for t in new:
                seen.add(t.number)
                done += keys.counts_as_finished(t)
                log.info(progress_line(t, done, n_trials))
            if finished >= n_trials or not alive(jobs, kind):
                return
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        for j in jobs:
            j.cancel(check=False)
        log.warning("worker jobs cancelled; their running trials resume when the same command runs again")
        raise
