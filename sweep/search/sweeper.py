"""The Hydra sweeper on Optuna: the ask/tell loop, from the set-up checks to the results.

The sweep asks Optuna for a trial, hands the job a handle to it (`sweep.trial`; how the job runs:
`sweep.search.runners`), gets back one `Outcome` and tells the study: COMPLETE, PRUNED, or FAIL with the
reason in the trial's `fail_reason` user attribute (every outcome is also kept whole in `outcome`;
the keys: `sweep.search.keys`). It goes on until the study holds `n_trials` finished (COMPLETE or
PRUNED) trials, stops after `max_consecutive_failures` failures in a row, or when the sampler has no
points left (a finished grid). Results are always written.

The pieces, each in its own module: the set-up checks and what they build (`plan`), opening the
study and the LR bounds (`study`), running jobs (`runners`), checkpoint retention (`checkpoints`),
worker bookkeeping (`workers`) and starting worker processes (`processes`).

Resume and going wide: the same command on the same storage continues the study; several sweep
processes may share one storage, each asking for a trial when it is free (`sweep.search.workers` keeps
their books: heartbeats, dead workers, surplus trials). `hydra.sweeper.workers=N` starts N such
processes from one command.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import optuna
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from sweep.search import keys, processes, results, workers
from sweep.search import space as search
from sweep.search.checkpoints import keep_best_checkpoints
from sweep.search.plan import Plan, make_plan
from sweep.search.runners import Asked, InProcessJobs, Launch
from sweep.search.settings import SweeperConf
from sweep.search.storage import is_url, open_storage
from sweep.search.study import apply_lr_bounds, count, open_study
from sweep.trial import Outcome, Status

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the sweep process was stopped"


class LRSweeper:
    """The sweeper; the Hydra plugin in hydra_plugins/lr_sweep is a thin shim over it."""

    def __init__(self, conf: SweeperConf) -> None:
        self.conf = conf

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        plan = make_plan(self.conf, self.config, self.hydra_context, list(arguments))
        if plan.n_workers > 1 and not processes.is_worker():
            codes = processes.run_workers(plan.n_workers, plan.sweep_dir, self.conf.workers == "auto",
                                          plan.study_name, plan.storage_spec)
            if any(codes):
                log.warning("worker exit codes: %s", codes)
            study = optuna.load_study(study_name=plan.study_name, storage=open_storage(plan.storage_spec))
            return self.finish(plan, study)
        study, storage = open_study(self.conf, plan)
        apply_lr_bounds(self.conf.lr_bounds, plan, study)
        os.makedirs(plan.sweep_dir, exist_ok=True)
        OmegaConf.save(self.config, os.path.join(plan.sweep_dir, "multirun.yaml"))  # as Hydra's launchers do
        in_process = InProcessJobs(self.hydra_context, self.task_function, self.config, plan.fixed,
                                   plan.job_cfg) if plan.in_process else None
        self.launch = Launch(self.launcher, in_process, plan.fixed, plan.storage_spec, plan.study_name)
        self.heartbeat = workers.Heartbeat(storage, self.conf.heartbeat_s)
        try:
            self.run_trials(plan, study, storage)
        except BaseException:
            if not processes.is_worker():  # write what there is, then let the error through
                self.finish(plan, study, interrupted=True)
            raise
        finally:
            self.heartbeat.stop()
        if not processes.is_worker():
            self.finish(plan, study)

    def run_trials(self, plan: Plan, study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
        """Ask, run, record, until `stop` says the sweep is done; other workers' dead trials reclaimed."""
        c = self.conf
        failures_in_a_row = 0
        while True:
            workers.reclaim_dead(study, storage, c.stale_after_s, self.heartbeat.mine())
            if self.done(study, failures_in_a_row):
                return
            free = c.n_trials - count(study, keys.FINISHED) - count(study, (TrialState.RUNNING,))
            if free <= 0:  # other workers hold the remaining budget: wait for them
                time.sleep(min(c.heartbeat_s, 1.0))
                continue
            jobs = self.ask(plan, study, storage, min(free, c.n_jobs * c.trials_per_job))
            if not jobs:
                failures_in_a_row += 1
                continue
            for state in self.run_jobs(study, jobs):
                failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0
            keep_best_checkpoints(study, plan.sweep_dir, c.keep_checkpoints)

    def done(self, study: optuna.Study, failures_in_a_row: int) -> bool:
        """Whether the sweep ends here: n_trials finished, a run of failures, or a finished grid."""
        c = self.conf
        finished = count(study, keys.FINISHED)
        if finished >= c.n_trials:
            return True
        if failures_in_a_row >= c.max_consecutive_failures:
            log.error("stopping: %d trials failed in a row (hydra.sweeper.max_consecutive_failures=%d); "
                      "see trials.csv for the reasons", failures_in_a_row, c.max_consecutive_failures)
            return True
        if isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study):
            log.info("the grid is done: all its points were tried (%d finished trials of n_trials=%d)",
                     finished, c.n_trials)
            return True
        return False

    def run_jobs(self, study: optuna.Study, jobs: list[list[Asked]]) -> list[TrialState]:
        """Run the jobs with their trials' heartbeats on and record every trial (as interrupted when
        the sweep process is stopped); the states told, in order."""
        ids = [a.trial_id for job in jobs for a in job]
        self.heartbeat.add(ids)
        try:
            outcomes = self.launch(jobs)
        except BaseException:
            for job in jobs:
                for a in job:
                    self.record(study, a, Outcome(Status.FAILED, None, INTERRUPTED))
            raise
        finally:
            self.heartbeat.discard(ids)
        return [self.record(study, a, outcome)
                for job, job_outcomes in zip(jobs, outcomes) for a, outcome in zip(job, job_outcomes)]

    def ask(self, plan: Plan, study: optuna.Study, storage: optuna.storages.BaseStorage, n: int) -> list[list[Asked]]:
        """Up to `n` new trials with their overrides, grouped `trials_per_job` to a job."""
        study_id = storage.get_study_id_from_name(study.study_name)
        asked: list[Asked] = []
        for _ in range(n):
            trial = study.ask()
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            trial.set_user_attr(keys.WORKER, workers.worker_id())
            if is_url(plan.storage_spec):  # workers on other machines have other sweep dirs
                trial.set_user_attr(keys.JOB_DIR, os.path.join(plan.sweep_dir, str(trial.number)))
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

    def record(self, study: optuna.Study, asked: Asked, outcome: Outcome) -> TrialState:
        """Tell the study how a trial ended; one line per trial."""
        return record(study, asked.trial, outcome)

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


STATES = {Status.COMPLETE: TrialState.COMPLETE, Status.PRUNED: TrialState.PRUNED, Status.FAILED: TrialState.FAIL}


def record(study: optuna.Study, trial: optuna.Trial, outcome: Outcome) -> TrialState:
    """Tell the study how `trial` ended, with the outcome (and a failure's reason) in its user
    attributes; one log line per trial."""
    state = STATES[Status(outcome.status)]
    if state == TrialState.COMPLETE:  # a complete trial's value and params say it all
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        log.info("trial %d complete: %.4f  %s", trial.number, outcome.value, params)
    else:
        trial.set_user_attr(keys.OUTCOME, outcome.to_dict())
    if state == TrialState.PRUNED:
        log.info("trial %d %s", trial.number, outcome.reason)
    elif state == TrialState.FAIL:
        trial.set_user_attr(keys.FAIL_REASON, outcome.reason)
        log.warning("trial %d failed: %s", trial.number, outcome.reason)
    try:
        study.tell(trial, outcome.value if state == TrialState.COMPLETE else None, state=state)
    except RuntimeError as err:  # a GridSampler whose grid is done calls study.stop() outside optimize()
        if "Study.stop" not in str(err):
            raise
    return state


def app_command() -> str:
    """How this app was started, for the rerun line (`python sphere.py`, not always train.py)."""
    return f"python {sys.argv[0]}" if sys.argv and sys.argv[0] else "python train.py"
