"""The Hydra sweeper on Optuna: the ask/tell loop, from the set-up checks to the results.

The sweep asks Optuna for a trial, hands the job a handle to it (`sweep.trial`; how the job runs:
`sweep.search.runners`), gets back one `Outcome` and tells the study: COMPLETE, PRUNED, or FAIL with the
reason in the trial's `fail_reason` user attribute (every outcome is also kept whole in `outcome`;
the keys: `sweep.search.keys`). It goes on until the study holds `n_trials` finished (COMPLETE or
PRUNED) trials, stops after `max_consecutive_failures` failures in a row, or when the sampler has no
points left (a finished grid). Results are always written.

The pieces, each in its own module: the set-up checks and what they build (`plan`), opening the
study and the LR bounds (`study`), running jobs (`runners`), checkpoint retention (`checkpoints`),
worker bookkeeping (`workers`), starting worker processes (`processes`) and widening the base
LR's range when the best trial sits on its edge (`edges`).

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

from sweep.search import cluster, edges, interruptions, keys, pausing, processes, rerun, results, workers
from sweep.search import space as search
from sweep.search.checkpoints import keep_best_checkpoints
from sweep.search.optuna_forms import custom_overrides
from sweep.search.plan import Plan, make_plan
from sweep.search.pruning import FLOOR_KEY
from sweep.search.recording import record
from sweep.search.runners import Asked, InProcessJobs, Launch
from sweep.search.settings import SweeperConf
from sweep.search.storage import is_url, open_storage
from sweep.search.study import apply_lr_bounds, count, open_study
from sweep.train.resume import install_stop_signals, stop_requested
from sweep.trial import Outcome, Status

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the sweep process was stopped"


class TooManyFailures(Exception):
    """More than `hydra.sweeper.max_failure_rate` of a batch failed (the Optuna plugin's setting)."""


class LRSweeper:
    """The sweeper; the Hydra plugin in hydra_plugins/lr_sweep is a thin shim over it."""

    def __init__(self, conf: SweeperConf) -> None:
        self.conf = conf

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        plan = make_plan(self.conf, self.config, self.hydra_context, list(arguments))
        plan.rerun = self.rerun_lines(plan)
        if plan.n_workers > 1 and not processes.is_worker() and cluster.is_submitit(self.config):
            return cluster.run_cluster_workers(self, plan)  # the workers are SLURM (or submitit local) jobs
        if plan.n_workers > 1 and not processes.is_worker():
            codes = processes.run_workers(
                plan.n_workers,
                plan.sweep_dir,
                self.conf.workers == "auto",
                plan.study_name,
                plan.storage_spec,
                processes.job_devices(plan.job_cfg),
            )
            if codes and all(code == 2 for code in codes):  # bad input: each worker said why in one line
                raise SystemExit(2)
            if any(codes):
                log.warning("worker exit codes: %s", codes)
            study = optuna.load_study(study_name=plan.study_name, storage=open_storage(plan.storage_spec))
            return self.finish(plan, study)
        study, storage = open_study(self.conf, plan)
        apply_lr_bounds(self.conf.lr_bounds, plan, study)
        os.makedirs(plan.sweep_dir, exist_ok=True)
        OmegaConf.save(self.config, os.path.join(plan.sweep_dir, "multirun.yaml"))  # as Hydra's launchers do
        in_process = (
            InProcessJobs(self.hydra_context, self.task_function, self.config, plan.fixed, plan.job_cfg)
            if plan.in_process
            else None
        )
        self.launch = Launch(self.launcher, in_process, plan.fixed, plan.storage_spec, plan.study_name)
        self.heartbeat = workers.Heartbeat(storage, self.conf.heartbeat_s)
        if plan.in_process:  # SIGTERM/SIGUSR2 stop the running trial resumably (sweep.train.resume)
            install_stop_signals()
        try:
            self.run_trials(plan, study, storage)
        except TooManyFailures as err:
            self.heartbeat.stop()
            if not processes.is_worker():
                self.finish(plan, study, interrupted=True)
            raise SystemExit(f"error: stopping: {err}; see {plan.sweep_dir}/trials.csv for the reasons") from None
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
            self.resume_interrupted(plan, study, storage)
            workers.reclaim_dead(study, storage, c.stale_after_s, self.heartbeat.mine(), plan.sweep_dir)
            if self.done(study, failures_in_a_row):
                return
            free = c.n_trials - count(study, keys.FINISHED) - count(study, (TrialState.RUNNING,))
            if self.resume_paused(plan, study, storage, free):
                continue
            if free <= 0:  # other workers hold the remaining budget: wait for them
                time.sleep(min(c.heartbeat_s, 1.0))
                continue
            edges.follow(study, plan.space, plan.lr_key, c.widen_edges, plan.directions[0] == "maximize")
            jobs = self.ask(plan, study, storage, min(free, c.n_jobs * c.trials_per_job))
            if not jobs:
                failures_in_a_row += 1
                continue
            states = self.run_jobs(study, jobs)
            for state in states:
                failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0
            keep_best_checkpoints(study, plan.sweep_dir, c.keep_checkpoints)
            failed = sum(state == TrialState.FAIL for state in states)
            if c.max_failure_rate is not None and states and failed / len(states) > c.max_failure_rate:
                raise TooManyFailures(
                    f"{failed} of {len(states)} trials of a batch failed "
                    f"(hydra.sweeper.max_failure_rate={c.max_failure_rate})"
                )

    def done(self, study: optuna.Study, failures_in_a_row: int) -> bool:
        """Whether the sweep ends here: n_trials finished, a run of failures, or a finished grid."""
        c = self.conf
        finished = count(study, keys.FINISHED)
        if finished >= c.n_trials:
            return True
        if failures_in_a_row >= c.max_consecutive_failures:
            log.error(
                "stopping: %d trials failed in a row (hydra.sweeper.max_consecutive_failures=%d); "
                "see trials.csv for the reasons",
                failures_in_a_row,
                c.max_consecutive_failures,
            )
            return True
        if isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study):
            log.info(
                "the grid is done: all its points were tried (%d finished trials of n_trials=%d)", finished, c.n_trials
            )
            return True
        return False

    def run_jobs(self, study: optuna.Study, jobs: list[list[Asked]]) -> list[TrialState]:
        """Run the jobs with their trials' heartbeats on and record every trial (as interrupted when
        the sweep process is stopped); the states told, in order."""
        ids = [a.trial_id for job in jobs for a in job]
        self.heartbeat.add(ids)
        try:
            outcomes = self.launch(jobs)
        except BaseException as err:  # the sweep's own error (a job's fails only its trials): say which
            reason = INTERRUPTED if not isinstance(err, Exception) else f"{type(err).__name__}: {err}".splitlines()[0]
            status = Status.FAILED if isinstance(err, Exception) else Status.INTERRUPTED  # Ctrl-C: resumable
            for job in jobs:
                for a in job:
                    self.record(study, a, Outcome(status, None, reason))
            raise
        finally:
            self.heartbeat.discard(ids)
        states = [
            self.record(study, a, outcome)
            for job, job_outcomes in zip(jobs, outcomes)
            for a, outcome in zip(job, job_outcomes)
        ]
        stopped = any(Status(o.status) == Status.INTERRUPTED for job_outcomes in outcomes for o in job_outcomes)
        if stopped or stop_requested():  # a stop request: leave, resumable
            raise interruptions.Stopped()
        return states

    def resume_paused(self, plan: Plan, study: optuna.Study, storage: optuna.storages.BaseStorage, free: int) -> bool:
        """Run a paused trial on to its next rung when it ranks there, or (every trial started) to the
        end while the floor of complete trials is short; the rest pruned (`sweep.search.pausing`).
        Paused trials left by an earlier run of the study are finished so even with pausing off."""
        if not pausing.paused(trials := study.get_trials(deepcopy=False)):  # read once for the steps below
            return False
        spec, maximize = plan.pruner_spec, plan.directions[0] == "maximize"
        eta = pausing.reduction_factor(spec)
        trial_id = pausing.next_to_resume(study, storage, eta, maximize, trials)
        if trial_id is None and free <= 0:
            floor = int(spec.get(FLOOR_KEY) or 0)
            trial_id = pausing.finish_paused(study, storage, floor, eta, maximize, plan.sweep_dir, trials)
        if trial_id is None:
            return False
        trial = optuna.trial.Trial(study, trial_id)
        self.run_jobs(study, [[Asked(trial, trial_id, self.overrides_for(plan, trial))]])
        return True

    def resume_interrupted(self, plan: Plan, study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
        """Run the interrupted trials this worker may take (its own at once, others' once stale)
        as the same trials, in their own job dirs (`sweep.search.interruptions`)."""
        for trial_id in interruptions.take(
            study, storage, self.worker(plan), self.conf.stale_after_s, self.heartbeat.mine()
        ):
            trial = optuna.trial.Trial(study, trial_id)
            self.run_jobs(study, [[Asked(trial, trial_id, self.overrides_for(plan, trial))]])

    def worker(self, plan: Plan) -> str:
        """This process's worker identity (`sweep.search.workers.identity`)."""
        return workers.identity(plan.sweep_dir, self.conf.worker_index)

    def ask(self, plan: Plan, study: optuna.Study, storage: optuna.storages.BaseStorage, n: int) -> list[list[Asked]]:
        """Up to `n` new trials with their overrides, grouped `trials_per_job` to a job."""
        study_id = storage.get_study_id_from_name(study.study_name)
        asked: list[Asked] = []
        for _ in range(n):
            trial = study.ask()
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            workers.set_owner(storage, trial_id, self.worker(plan))
            trial.set_user_attr(keys.FIXED, results.rerun_overrides(plan.rerun))  # its own rerun command
            if is_url(plan.storage_spec):  # workers on other machines have other sweep dirs
                trial.set_user_attr(keys.JOB_DIR, os.path.join(plan.sweep_dir, str(trial.number)))
            a = Asked(trial, trial_id, {})
            if workers.is_surplus(study, trial.number, self.conf.n_trials):
                self.record(study, a, Outcome(Status.FAILED, None, "surplus: other workers reached n_trials first"))
                continue
            try:
                a.overrides = self.overrides_for(plan, trial)
            except Exception as err:  # noqa: BLE001 - a broken hook fails this trial, not the sweep
                self.record(study, a, Outcome(Status.FAILED, None, f"space hook: {type(err).__name__}: {err}"))
                continue
            asked.append(a)
        size = self.conf.trials_per_job
        return [asked[i : i + size] for i in range(0, len(asked), size)]

    def overrides_for(self, plan: Plan, trial: optuna.Trial) -> dict:
        """The trial's overrides: its sampled values (those it has already, for a resumed trial) and
        what the hooks add."""
        overrides = search.suggest(trial, plan.space)
        if plan.hook is not None:
            overrides.update(plan.hook(trial, plan.job_cfg))
        if plan.custom_space is not None:  # the Optuna plugin's custom_search_space(cfg, trial)
            plan.custom_space(self.config, trial)
            overrides.update(custom_overrides(trial, set(overrides), plan.job_cfg))
        return overrides

    def record(self, study: optuna.Study, asked: Asked, outcome: Outcome) -> TrialState:
        """Tell the study how a trial ended; one line per trial. An interrupted trial is not told:
        it stays RUNNING, marked resumable (`sweep.search.interruptions`)."""
        if Status(outcome.status) == Status.INTERRUPTED:
            interruptions.mark(asked.trial.storage, asked.trial_id, asked.trial.number, outcome)
            return TrialState.RUNNING
        if Status(outcome.status) == Status.PAUSED:  # waits at its rung (`sweep.search.pausing`)
            pausing.mark(asked.trial, outcome)
            return TrialState.RUNNING
        return record(study, asked.trial, outcome)

    def finish(self, plan: Plan, study: optuna.Study, interrupted: bool = False) -> None:
        """Results, CSV, HPARAMS experiment and summary; the plots in the background."""
        written = results.write_all(plan.sweep_dir, study, plan.storage_spec, plan.rerun, app_command())
        plots = self.conf.plots and len(study.directions) == 1  # the plots and report read one objective
        if plots:
            results.plots_in_background(plan.sweep_dir, plan.storage_spec, plan.study_name)
        log.info(
            "%s\nresults in %s\n%s%s",
            results.summary_table(study),
            plan.sweep_dir,
            results.plots_note(study, plan.sweep_dir, plots),
            results.tensorboard_note(plan.sweep_dir),
        )
        best = written["best"]
        if interrupted:
            return
        if len(study.directions) > 1:
            log.info(
                "Pareto front: %d trials (solutions in optimization_results.yaml)", len(written.get("solutions", []))
            )
            return
        if best is None:
            raise SystemExit(
                f"error: no trial completed in study '{plan.study_name}'; see "
                f"{plan.sweep_dir}/trials.csv for each trial's failure reason"
            )
        log.info("best: #%d value %.4f; rerun: %s", best["number"], best["value"], best["command"])

    def rerun_lines(self, plan: Plan) -> list[str]:
        """The sweep's fixed overrides as a single run needs them (`sweep.search.rerun`)."""
        from hydra.types import RunMode

        def compose(lines: list[str]) -> DictConfig:  # the task overrides alone, no hydra.* ones
            return self.hydra_context.config_loader.load_configuration(
                str(self.config.hydra.job.config_name), list(lines), RunMode.MULTIRUN
            )

        try:
            return rerun.rerun_overrides(plan.fixed, compose(plan.fixed), compose)
        except Exception as err:  # noqa: BLE001 - the results are written whatever this finds
            log.warning("the rerun line keeps the sweep's overrides as given: %s", err)
            return list(plan.fixed)


def app_command() -> str:
    """How this app was started, for the rerun line (`python sphere.py`, not always train.py)."""
    return f"python {sys.argv[0]}" if sys.argv and sys.argv[0] else "python train.py"
