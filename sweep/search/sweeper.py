"""The Hydra sweeper on Optuna: search space, pruning, storage, failures, resume, results.

The sweep asks Optuna for a trial, hands the job a handle to it (`sweep.trial`; how the job runs:
`sweep.search.runners`), gets back one `Outcome` and tells the study: COMPLETE, PRUNED, or FAIL with the
reason in the trial's `fail_reason` user attribute (every outcome is also kept whole in `outcome`).
It goes on until the study holds `n_trials` finished (COMPLETE or PRUNED) trials, stops after
`max_consecutive_failures` failures in a row, or when the sampler has no points left (a finished
grid). Results are always written.

Resume and going wide: the same command on the same storage continues the study; several sweep
processes may share one storage, each asking for a trial when it is free (`sweep.search.workers` keeps
their books: heartbeats, dead workers, surplus trials). `hydra.sweeper.workers=N` starts N such
processes from one command.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

import optuna
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import TrialState

from sweep.search import results

from sweep.search import space as search

from sweep.search import workers
from sweep.errors import check
from sweep.search.runners import InProcessJobs, remote_outcomes, task_config, trial_overrides
from sweep.search.space import SpaceHook
from sweep.search.storage import create_or_load_study, is_url, masked, open_storage
from sweep.search.settings import SweeperConf
from sweep.search.handoff import StudyTrial
from sweep.trial import OUTCOME_ATTR, Outcome, Status

log = logging.getLogger(__name__)

BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
WORKER_ENV = "LRSWEEP_WORKER_INDEX"
LR_BOUNDS_ATTR = "lr_bounds"


@dataclass
class Plan:
    """Everything the set-up checks build, used as built by the sweep."""

    space: dict[str, BaseDistribution]
    fixed: list[str]
    job_cfg: DictConfig
    hook: SpaceHook | None
    pruner_spec: dict[str, Any]
    sweep_dir: str
    storage_spec: str
    study_name: str


@dataclass
class Asked:
    """A trial asked of the study, with the overrides that configure its job."""

    trial: optuna.Trial
    trial_id: int
    overrides: dict[str, Any]


def resolve_workers(value: Any) -> int:
    """`workers=auto`: one per visible CUDA device, 1 without one."""
    if value == "auto":
        try:
            import torch

            return max(1, torch.cuda.device_count())
        except ImportError:
            return 1
    check(isinstance(value, int) and value >= 1, "hydra.sweeper.workers", value, "an integer >= 1 or auto")
    return int(value)


class LRSweeper:
    """The sweeper; the Hydra plugin in hydra_plugins/lr_sweep is a thin shim over it."""

    def __init__(self, conf: SweeperConf) -> None:
        self.conf = conf

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        self.launcher: Launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    # -- set-up: every check before the first trial --------------------------------------------
    def plan(self, arguments: list[str]) -> Plan:
        c = self.conf
        check(isinstance(c.n_trials, int) and c.n_trials >= 1, "hydra.sweeper.n_trials", c.n_trials,
              "an integer >= 1")
        check(isinstance(c.trials_per_job, int) and c.trials_per_job >= 1, "hydra.sweeper.trials_per_job",
              c.trials_per_job, "an integer >= 1")
        check(isinstance(c.n_jobs, int) and c.n_jobs >= 1, "hydra.sweeper.n_jobs", c.n_jobs, "an integer >= 1")
        check(c.direction in ("maximize", "minimize"), "hydra.sweeper.direction", c.direction,
              "maximize or minimize")
        check(c.max_consecutive_failures >= 1, "hydra.sweeper.max_consecutive_failures",
              c.max_consecutive_failures, "an integer >= 1")
        check(c.keep_checkpoints is None or (isinstance(c.keep_checkpoints, int) and c.keep_checkpoints >= 0),
              "hydra.sweeper.keep_checkpoints", c.keep_checkpoints, "null (keep all) or an integer >= 0")
        check(c.lr_bounds in (None, "lr_find"), "hydra.sweeper.lr_bounds", c.lr_bounds, "null or lr_find")
        check(c.trials_per_job == 1 or self.in_process(), "hydra.sweeper.trials_per_job", c.trials_per_job,
              "1 with a Hydra launcher other than the basic one (trials trained together run in the sweep's process)")
        resolve_workers(c.workers)
        space, fixed = search.parse_space(dict(c.params or {}), arguments)
        check(bool(space) or bool(c.space_hook) or c.lr_bounds is not None, "hydra.sweeper.params",
              dict(c.params or {}), "at least one searched key (or a space_hook)")
        job_cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(fixed))
        search.check_keys(space, job_cfg)
        if c.config_check:  # the job's own checks, so a bad fixed setting fails once, not per trial
            check_config = search.load_hook(c.config_check, "hydra.sweeper.config_check")
            check_config(task_config(job_cfg))
        pruner_spec = search.pruner_spec(c.pruner, c.pruner_options, c.n_startup_trials, c.n_warmup_steps)
        search.build_pruner(pruner_spec)
        sweep_dir = os.path.abspath(str(self.config.hydra.sweep.dir))
        storage_spec = c.storage or os.path.join(sweep_dir, "study.journal")
        if not is_url(storage_spec):
            storage_spec = os.path.abspath(storage_spec)
        study_name = c.study_name or os.path.basename(sweep_dir.rstrip("/")) or "lr-sweep"
        return Plan(space, list(fixed), job_cfg, search.load_hook(c.space_hook), pruner_spec, sweep_dir,
                    storage_spec, study_name)

    def in_process(self) -> bool:
        """Jobs run in this process (Hydra's basic launcher), with their trials handed over directly."""
        return OmegaConf.select(self.config, "hydra.launcher._target_") == BASIC_LAUNCHER

    def open_study(self, plan: Plan) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
        """Create or load the study, with a sampler that does not replay a resumed study's trials."""
        c = self.conf
        storage = open_storage(plan.storage_spec)
        try:
            n_before = len(optuna.load_study(study_name=plan.study_name, storage=storage).get_trials(deepcopy=False))
        except KeyError:
            n_before = 0
        seed = None if c.seed is None else c.seed + n_before + 7919 * c.worker_index
        sampler = search.build_sampler(c.sampler, c.sampler_options, seed, plan.space)
        study = create_or_load_study(storage, plan.study_name, c.direction, sampler,
                                     search.build_pruner(plan.pruner_spec))
        check(study.direction.name.lower() == c.direction, "hydra.sweeper.direction", c.direction,
              f"the direction of the existing study '{plan.study_name}' ({study.direction.name.lower()})")
        if study.user_attrs.get("pruner") != plan.pruner_spec:
            study.set_user_attr("pruner", plan.pruner_spec)  # jobs in other processes rebuild it from here
        if c.enqueue_current and n_before == 0:
            current = {k: OmegaConf.select(plan.job_cfg, k) for k in plan.space}
            study.enqueue_trial({k: v for k, v in current.items() if v is not None}, skip_if_exists=True)
        log.info("study '%s' in %s: %d trials so far, %d finished of %d", plan.study_name,
                 masked(plan.storage_spec), n_before, count(study, workers.FINISHED), c.n_trials)
        return study, storage

    def lr_bounds(self, plan: Plan, study: optuna.Study) -> None:
        """`lr_bounds=lr_find`: search optimizer.lr in the range test's interval, measured once per
        study (kept in the study, so a resumed or second worker uses the same bounds)."""
        if self.conf.lr_bounds != "lr_find":
            return
        bounds = study.user_attrs.get(LR_BOUNDS_ATTR)
        if bounds is None:
            from sweep.tools.range_test import find

            found = find(task_config(plan.job_cfg), plan.sweep_dir)
            study.set_user_attr(LR_BOUNDS_ATTR, [float(found.interval[0]), float(found.interval[1])])
            bounds = study.user_attrs[LR_BOUNDS_ATTR]  # read back: a worker that wrote first wins for all
            log.info("lr_find: optimizer.lr searched in [%.3g, %.3g] (lr_find.* in %s)", *bounds, plan.sweep_dir)
        else:
            log.info("lr_find: the study's interval [%.3g, %.3g], measured before", *bounds)
        plan.space["optimizer.lr"] = FloatDistribution(float(bounds[0]), float(bounds[1]), log=True)

    # -- the sweep --------------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> None:
        c = self.conf
        plan = self.plan(list(arguments))
        n_workers = resolve_workers(c.workers)
        if n_workers > 1 and WORKER_ENV not in os.environ:
            return self.run_workers(plan, n_workers)
        self.sweep_dir = plan.sweep_dir
        study, storage = self.open_study(plan)
        self.lr_bounds(plan, study)
        os.makedirs(plan.sweep_dir, exist_ok=True)
        OmegaConf.save(self.config, os.path.join(plan.sweep_dir, "multirun.yaml"))  # as Hydra's launchers do
        self.heartbeat = workers.Heartbeat(storage, c.heartbeat_s)
        self.jobs = InProcessJobs(self.hydra_context, self.task_function, self.config, plan.fixed,
                                  plan.job_cfg) if self.in_process() else None
        try:
            self.run_trials(plan, study, storage)
        except BaseException:
            if WORKER_ENV not in os.environ:  # write what there is, then let the error through
                self.finish(plan, study, interrupted=True)
            raise
        finally:
            self.heartbeat.stop()
        if WORKER_ENV not in os.environ:
            self.finish(plan, study)

    def run_trials(self, plan: Plan, study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
        c = self.conf
        failures_in_a_row = 0
        while True:
            workers.reclaim_dead(study, storage, c.stale_after_s, self.heartbeat.mine())
            finished = count(study, workers.FINISHED)
            if finished >= c.n_trials:
                return
            if failures_in_a_row >= c.max_consecutive_failures:
                log.error("stopping: %d trials failed in a row (hydra.sweeper.max_consecutive_failures=%d); "
                          "see trials.csv for the reasons", failures_in_a_row, c.max_consecutive_failures)
                return
            if isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study):
                log.info("the grid is done: all its points were tried (%d finished trials of n_trials=%d)",
                         finished, c.n_trials)
                return
            free = c.n_trials - finished - count(study, (TrialState.RUNNING,))
            if free <= 0:  # other workers hold the remaining budget: wait for them
                time.sleep(min(c.heartbeat_s, 1.0))
                continue
            jobs = self.ask(plan, study, storage, min(free, c.n_jobs * c.trials_per_job))
            if not jobs:
                failures_in_a_row += 1
                continue
            ids = [a.trial_id for job in jobs for a in job]
            self.heartbeat.add(ids)
            try:
                outcomes = self.launch(plan, jobs)
            except BaseException:
                for job in jobs:
                    for a in job:
                        self.record(study, a, Outcome(Status.FAILED, None, "interrupted: the sweep process was stopped"))
                raise
            finally:
                self.heartbeat.discard(ids)
            for job, job_outcomes in zip(jobs, outcomes):
                for a, outcome in zip(job, job_outcomes):
                    state = self.record(study, a, outcome)
                    failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0
            self.prune_checkpoints(study)

    def ask(self, plan: Plan, study: optuna.Study, storage: Any, n: int) -> list[list[Asked]]:
        """Up to `n` new trials with their overrides, grouped `trials_per_job` to a job."""
        study_id = storage.get_study_id_from_name(study.study_name)
        asked: list[Asked] = []
        for _ in range(n):
            trial = study.ask()
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            trial.set_user_attr(workers.WORKER_ATTR, workers.worker_id())
            if is_url(plan.storage_spec):  # workers on other machines have other sweep dirs
                trial.set_user_attr(results.JOB_DIR_ATTR, os.path.join(plan.sweep_dir, str(trial.number)))
            a = Asked(trial, trial_id, {})
            if workers.is_surplus(study, trial.number, self.conf.n_trials):
                self.record(study, a, Outcome(Status.FAILED, None, "surplus: other workers reached n_trials first"))
                continue
            try:
                a.overrides = search.suggest(trial, plan.space)
                if plan.hook is not None:
                    a.overrides.update(plan.hook(trial, plan.job_cfg))
            except Exception as err:  # noqa: BLE001 - a broken hook fails this trial, not the sweep
                self.record(study, a, Outcome(Status.FAILED, None, f"space hook: {type(err).__name__}: {err}"))
                continue
            asked.append(a)
        size = self.conf.trials_per_job
        return [asked[i:i + size] for i in range(0, len(asked), size)]

    def launch(self, plan: Plan, jobs: list[list[Asked]]) -> list[list[Outcome]]:
        """Run each job; one outcome per trial."""
        lines = [[list(plan.fixed) + [results.format_override(k, v) for k, v in a.overrides.items()]
                  for a in job] for job in jobs]
        if self.jobs is not None and not any(k.startswith("~") for job in jobs for a in job for k in a.overrides):
            return [self.run_in_process(job, job_lines) for job, job_lines in zip(jobs, lines)]
        return self.run_via_launcher(plan, jobs, lines)

    def run_in_process(self, job: list[Asked], lines: list[list[str]]) -> list[Outcome]:
        prepared = [self.jobs.prepare(a.trial.number, a.overrides, ln) for a, ln in zip(job, lines)]
        handles = [StudyTrial(a.trial, config=p.task_cfg, job_dir=p.job_dir) for a, p in zip(job, prepared)]
        return self.jobs.run(prepared[0], job[0].trial.number, handles)

    def run_via_launcher(self, plan: Plan, jobs: list[list[Asked]], lines: list[list[list[str]]]) -> list[list[Outcome]]:
        """Any Hydra launcher; runs of consecutive first-trial numbers, so job dirs are named by them."""
        job_lines = [trial_lines[0] + trial_overrides(plan.storage_spec, plan.study_name, job[0].trial.number)
                     for job, trial_lines in zip(jobs, lines)]  # one trial a job: trials_per_job is 1 here
        storage = open_storage(plan.storage_spec)
        out: list[list[Outcome]] = []
        i = 0
        while i < len(jobs):
            j = i + 1
            while j < len(jobs) and jobs[j][0].trial.number == jobs[j - 1][0].trial.number + 1:
                j += 1
            returns = self.launcher.launch(job_lines[i:j], initial_job_idx=jobs[i][0].trial.number)
            for job, ret in zip(jobs[i:j], returns):
                out.append(remote_outcomes(ret, [a.trial_id for a in job], storage))
            i = j
        return out

    def record(self, study: optuna.Study, asked: Asked, outcome: Outcome) -> TrialState:
        """Tell the study how a trial ended; one line per trial."""
        trial = asked.trial
        if outcome.status != Status.COMPLETE:  # a complete trial's value and params say it all
            trial.set_user_attr(OUTCOME_ATTR, outcome.to_dict())
        if outcome.status == Status.COMPLETE:
            state, values = TrialState.COMPLETE, outcome.value
            params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
            log.info("trial %d complete: %.4f  %s", trial.number, outcome.value, params)
        elif outcome.status == Status.PRUNED:
            state, values = TrialState.PRUNED, None
            log.info("trial %d %s", trial.number, outcome.reason)
        else:
            state, values = TrialState.FAIL, None
            trial.set_user_attr(workers.FAIL_ATTR, outcome.reason)
            log.warning("trial %d failed: %s", trial.number, outcome.reason)
        try:
            study.tell(trial, values, state=state)
        except RuntimeError as err:  # a GridSampler whose grid is done calls study.stop() outside optimize()
            if "Study.stop" not in str(err):
                raise
        return state

    def prune_checkpoints(self, study: optuna.Study) -> None:
        """`keep_checkpoints=K`: only the best K complete trials keep checkpoint.pt (the best one's is
        never touched: losers' are removed only after the winners' were written)."""
        keep = self.conf.keep_checkpoints
        if keep is None:
            return
        for t in results.ranked(study)[keep:]:
            path = os.path.join(results.job_dir(t, self.sweep_dir), "checkpoint.pt")
            if os.path.isfile(path):
                os.remove(path)

    def finish(self, plan: Plan, study: optuna.Study, interrupted: bool = False) -> None:
        """Results, CSV, HPARAMS experiment and summary; the plots in the background."""
        written = results.write_all(plan.sweep_dir, study, plan.storage_spec, plan.fixed, app_command())
        if self.conf.plots:
            results.plots_in_background(plan.sweep_dir, plan.storage_spec, plan.study_name)
        log.info("%s\nresults in %s\n%s%s", results.summary_table(study), plan.sweep_dir,
                 results.plots_note(study, plan.sweep_dir, self.conf.plots), results.tensorboard_note(plan.sweep_dir))
        best = written["best"]
        if interrupted:
            return
        if best is None:
            raise SystemExit(f"error: no trial completed in study '{plan.study_name}'; see "
                             f"{plan.sweep_dir}/trials.csv for each trial's failure reason")
        log.info("best: #%d value %.4f; rerun: %s", best["number"], best["value"], best["command"])

    # -- several workers from one command --------------------------------------------------------
    def run_workers(self, plan: Plan, n: int) -> None:
        """Start `n` processes of this same sweep command on one study, each pinned to its own GPU
        where there are GPUs; wait for them; write the results. Ctrl-C stops them all and leaves the
        study resumable (each marks its running trial as interrupted)."""
        argv = [a for a in sys.argv[1:] if not a.startswith(("hydra.sweeper.workers=", "hydra.sweep.dir="))]
        n_gpus = resolve_workers("auto") if self.conf.workers == "auto" else 0
        threads = max(1, (os.cpu_count() or 1) // n)
        procs = []
        log.info("starting %d workers on study '%s' in %s", n, plan.study_name, masked(plan.storage_spec))
        for i in range(n):
            env = {**os.environ, WORKER_ENV: str(i)}
            if n_gpus:
                env["CUDA_VISIBLE_DEVICES"] = str(i)
            else:
                env.setdefault("OMP_NUM_THREADS", str(threads))
            cmd = [sys.executable, sys.argv[0], *argv, f"hydra.sweep.dir={plan.sweep_dir}",
                   "hydra.sweeper.workers=1", f"hydra.sweeper.worker_index={i}"]
            procs.append(subprocess.Popen(cmd, env=env))
        try:
            codes = [p.wait() for p in procs]
        except KeyboardInterrupt:
            for p in procs:
                p.send_signal(signal.SIGINT)
            for p in procs:
                p.wait()
            raise
        storage = open_storage(plan.storage_spec)
        study = optuna.load_study(study_name=plan.study_name, storage=storage)
        if any(codes):
            log.warning("worker exit codes: %s", codes)
        self.finish(plan, study)


def count(study: optuna.Study, states: Sequence[TrialState]) -> int:
    return len(study.get_trials(deepcopy=False, states=tuple(states)))


def app_command() -> str:
    """How this app was started, for the rerun line (`python sphere.py`, not always train.py)."""
    return f"python {sys.argv[0]}" if sys.argv and sys.argv[0] else "python train.py"

