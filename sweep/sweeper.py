"""The Hydra sweeper on Optuna: search space, pruning, storage, failures, resume, results.

Each trial is one Hydra job in `<sweep dir>/<trial number>`. The job gets its trial through the
config (`trial.storage`, `trial.study_name`, `trial.number`) and reports each epoch, so pruning
works in any launcher. Every outcome is recorded: COMPLETE, PRUNED, or FAIL with a reason in the
trial's `fail_reason` user attribute; the sweep goes on until the study holds `n_trials` finished
(COMPLETE or PRUNED) trials, or stops after `max_consecutive_failures` failures in a row.

Resume and going wide: the same command on the same storage continues the study. Several sweep
processes may share one storage; each asks for a trial when it is free. A trial whose worker died
(its process is gone, or its heartbeat is older than `stale_after_s`) is failed and its parameters
are enqueued once for a retry.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from typing import Any, Sequence

import optuna
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from sweep import results, search
from sweep.errors import check
from sweep.local_launch import LocalTrialLauncher
from sweep.search import SpaceHook, build_pruner
from sweep.storage import is_url, masked, open_storage
from sweep.sweeper_conf import SweeperConf
from sweep.trial import FAIL_ATTR, OPEN_STUDIES, PRUNED_ATTR

log = logging.getLogger(__name__)

WORKER_ATTR, HEARTBEAT_ATTR, RETRY_ATTR = "worker", "heartbeat", "retry_of"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Heartbeat:
    """Marks this worker's running trials alive every `interval` seconds, in a daemon thread."""

    def __init__(self, storage: optuna.storages.BaseStorage, interval: float) -> None:
        self.storage, self.interval = storage, interval
        self.trial_ids: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="lr-sweep-heartbeat").start()

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            with self.lock:
                ids = list(self.trial_ids)
            for tid in ids:
                try:
                    self.storage.set_trial_user_attr(tid, HEARTBEAT_ATTR, time.time())
                except Exception:  # the trial finished meanwhile; the next beat skips it
                    pass


class LRSweeper:
    """The sweeper; the Hydra plugin in hydra_plugins/lr_sweep is a thin shim over it."""

    def __init__(self, conf: SweeperConf) -> None:
        self.conf = conf
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    # -- set-up checks, before any trial --------------------------------------------------------
    def _validate(self, arguments: list[str]) -> tuple[dict, list[str], DictConfig]:
        c = self.conf
        check(isinstance(c.n_trials, int) and c.n_trials >= 1, "hydra.sweeper.n_trials", c.n_trials,
              "an integer >= 1")
        check(c.trials_per_job == 1, "hydra.sweeper.trials_per_job", c.trials_per_job,
              "1 (training several trials as one vectorised model is not implemented yet)")
        check(c.n_jobs >= 1, "hydra.sweeper.n_jobs", c.n_jobs, "an integer >= 1")
        check(c.direction in ("maximize", "minimize"), "hydra.sweeper.direction", c.direction,
              "maximize or minimize")
        check(c.max_consecutive_failures >= 1, "hydra.sweeper.max_consecutive_failures",
              c.max_consecutive_failures, "an integer >= 1")
        space, fixed = search.parse_space(dict(c.params or {}), arguments)
        check(bool(space) or bool(c.space_hook), "hydra.sweeper.params", dict(c.params or {}),
              "at least one searched key (or a space_hook)")
        job_cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(fixed))
        search.check_keys(space, job_cfg)
        if c.config_check:  # the job's own checks, so a bad fixed setting fails once, not per trial
            search.load_hook(c.config_check, "hydra.sweeper.config_check")(job_cfg)
        search.load_hook(c.space_hook)
        search.build_sampler(c.sampler, c.sampler_options, c.seed, space)
        search.pruner_spec(c.pruner, c.pruner_options, c.n_startup_trials, c.n_warmup_steps)
        return space, fixed, job_cfg

    # -- the sweep --------------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> None:
        assert self.config is not None and self.launcher is not None
        c = self.conf
        space, fixed, job_cfg = self._validate(list(arguments))
        hook = search.load_hook(c.space_hook)
        self.local = None
        if type(self.launcher).__name__ == "BasicLauncher":  # in-process: compose once, not per trial
            self.local = LocalTrialLauncher(self.hydra_context, self.task_function, self.config, fixed,
                                            list(job_cfg.hydra.runtime.choices))
        sweep_dir = os.path.abspath(self.config.hydra.sweep.dir)
        os.makedirs(sweep_dir, exist_ok=True)
        storage_spec = c.storage or os.path.join(sweep_dir, "study.journal")
        if not is_url(storage_spec):
            storage_spec = os.path.abspath(storage_spec)
        study_name = c.study_name or os.path.basename(sweep_dir.rstrip("/")) or "lr-sweep"
        storage = open_storage(storage_spec)
        pruner_spec = search.pruner_spec(c.pruner, c.pruner_options, c.n_startup_trials, c.n_warmup_steps)
        study = optuna.create_study(study_name=study_name, storage=storage, direction=c.direction,
                                    load_if_exists=True)
        check(study.direction.name.lower() == c.direction, "hydra.sweeper.direction", c.direction,
              f"the direction of the existing study '{study_name}' ({study.direction.name.lower()})")
        n_before = len(study.get_trials(deepcopy=False))
        seed = None if c.seed is None else c.seed + n_before  # a resumed seeded sampler must not replay
        study = optuna.load_study(study_name=study_name, storage=storage,
                                  sampler=search.build_sampler(c.sampler, c.sampler_options, seed, space),
                                  pruner=build_pruner(pruner_spec))
        study.set_user_attr("pruner", pruner_spec)
        OPEN_STUDIES[(storage_spec, study_name)] = (study, storage)
        if c.enqueue_current and n_before == 0:
            current = {k: OmegaConf.select(job_cfg, k) for k in space if OmegaConf.select(job_cfg, k) is not None}
            study.enqueue_trial(current, skip_if_exists=True)
        log.info("study '%s' in %s: %d trials so far, %d finished of %d", study_name, masked(storage_spec),
                 n_before, self._count(study, FINISHED), c.n_trials)
        self.heartbeat = Heartbeat(storage, c.heartbeat_s)
        try:
            self._run(study, storage, storage_spec, space, fixed, hook, job_cfg, sweep_dir)
        finally:
            self.heartbeat.stop.set()
            written = results.write_results(os.path.join(sweep_dir, "optimization_results.yaml"), study,
                                            storage_spec, fixed)
            results.write_csv(os.path.join(sweep_dir, "trials.csv"), study.get_trials(deepcopy=False))
            results.write_plots(sweep_dir, study)
            self._write_experiment(sweep_dir, study)
            log.info("%s\nresults in %s", results.summary_table(study), sweep_dir)
        if written["best"] is None:
            raise SystemExit(f"error: no trial completed in study '{study_name}'; see {sweep_dir}/trials.csv "
                             "for each trial's failure reason")
        log.info("best: #%d value %.4f; rerun: python train.py %s", written["best"]["number"],
                 written["best"]["value"], " ".join(written["best"]["overrides"]))

    @staticmethod
    def _count(study: optuna.Study, states: Sequence[TrialState]) -> int:
        return len(study.get_trials(deepcopy=False, states=tuple(states)))

    def _run(self, study: optuna.Study, storage: Any, storage_spec: str, space: dict, fixed: list[str],
             hook: SpaceHook | None, job_cfg: DictConfig, sweep_dir: str) -> None:
        c = self.conf
        study_id = storage.get_study_id_from_name(study.study_name)
        failures_in_a_row = 0
        while True:
            self._reclaim_dead(study, storage)
            finished = self._count(study, FINISHED)
            running = self._count(study, (TrialState.RUNNING,))
            if finished >= c.n_trials:
                return
            if failures_in_a_row >= c.max_consecutive_failures:
                log.error("stopping: %d trials failed in a row (hydra.sweeper.max_consecutive_failures=%d); "
                          "see trials.csv for the reasons", failures_in_a_row, c.max_consecutive_failures)
                return
            free = c.n_trials - finished - running
            if free <= 0:  # other workers hold the remaining budget: wait for them
                time.sleep(min(c.heartbeat_s, 2.0))
                continue
            batch = []
            for _ in range(min(c.n_jobs, free)):
                trial = study.ask()
                trial.set_user_attr(WORKER_ATTR, worker_id())
                trial.set_user_attr(HEARTBEAT_ATTR, time.time())
                trial.set_user_attr(results.JOB_DIR_ATTR, os.path.join(sweep_dir, str(trial.number)))
                if self._surplus(study, trial.number):
                    self._tell_fail(study, trial, "surplus: other workers reached n_trials first")
                    continue
                try:
                    overrides = search.suggest(trial, space)
                    if hook is not None:
                        overrides.update(hook(trial, job_cfg))
                except Exception as err:  # a broken hook fails this trial, not the sweep
                    self._tell_fail(study, trial, f"space hook: {type(err).__name__}: {err}")
                    failures_in_a_row += 1
                    continue
                batch.append((trial, overrides))
            ids = {t.number: storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
                   for t, _ in batch}
            with self.heartbeat.lock:
                self.heartbeat.trial_ids.update(ids.values())
            try:
                outcomes = self._launch(batch, fixed, storage_spec, study.study_name)
            except BaseException:
                for trial, _ in batch:
                    self._tell_fail(study, trial, "interrupted: the sweep process was stopped")
                raise
            for (trial, _), ret in zip(batch, outcomes):
                with self.heartbeat.lock:
                    self.heartbeat.trial_ids.discard(ids[trial.number])
                state = self._record(study, storage, ids[trial.number], trial, ret)
                failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0

    def _launch(self, batch: list, fixed: list[str], storage_spec: str, study_name: str) -> list[JobReturn]:
        """Launch runs of consecutive trial numbers, so each job dir is named by its trial number."""
        handles = [{"trial.storage": storage_spec, "trial.study_name": study_name, "trial.number": t.number}
                   for t, _ in batch]
        lines = [list(fixed) + [results.format_override(k, v) for k, v in {**ov, **h}.items()]
                 for (_, ov), h in zip(batch, handles)]
        if self.local is not None and not any(k.startswith("~") for _, ov in batch for k in ov):
            return [self.local.launch(t.number, {**ov, **h}, ln) for (t, ov), h, ln in zip(batch, handles, lines)]
        out: list[JobReturn] = []
        i = 0
        while i < len(batch):
            j = i + 1
            while j < len(batch) and batch[j][0].number == batch[j - 1][0].number + 1:
                j += 1
            out.extend(self.launcher.launch(lines[i:j], initial_job_idx=batch[i][0].number))
            i = j
        return out

    def _record(self, study: optuna.Study, storage: Any, trial_id: int, trial: optuna.Trial,
                ret: JobReturn) -> TrialState:
        """Classify a job's outcome and tell the study; one line per finished trial.

        The job records why it stopped (diverged, pruned) in the storage, from whichever process
        ran it, so the attributes are read back from the storage, not from this Trial's cache.
        """
        attrs = storage.get_trial(trial_id).user_attrs
        if attrs.get(PRUNED_ATTR):  # the job said so; its TrialPruned is not an error to report
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d %s", trial.number, attrs[PRUNED_ATTR])
            return TrialState.PRUNED
        try:
            value = ret.return_value
        except optuna.TrialPruned as err:
            trial.set_user_attr(PRUNED_ATTR, str(err) or "pruned")
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d pruned: %s", trial.number, str(err))
            return TrialState.PRUNED
        except Exception as err:  # noqa: BLE001 - any job error fails the trial, not the sweep
            text = f"{type(err).__name__}: {err}".splitlines()[0]
            return self._tell_fail(study, trial, text)
        if isinstance(value, (int, float)) and math.isfinite(value):
            study.tell(trial, float(value))
            log.info("trial %d complete: %.4f  %s", trial.number, value,
                     " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()))
            return TrialState.COMPLETE
        reason = attrs.get(FAIL_ATTR) or f"non-finite objective: {value!r}"
        return self._tell_fail(study, trial, reason)

    @staticmethod
    def _tell_fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> TrialState:
        trial.set_user_attr(FAIL_ATTR, reason)
        study.tell(trial, state=TrialState.FAIL)
        log.warning("trial %d failed: %s", trial.number, reason)
        return TrialState.FAIL

    def _surplus(self, study: optuna.Study, number: int) -> bool:
        """True when earlier-numbered trials already fill n_trials (a race between workers)."""
        ahead = [t for t in study.get_trials(deepcopy=False, states=FINISHED + (TrialState.RUNNING,))
                 if t.number < number]
        return len(ahead) >= self.conf.n_trials

    def _reclaim_dead(self, study: optuna.Study, storage: Any) -> None:
        """Fail trials left RUNNING by a dead worker and enqueue their parameters once for a retry."""
        host, now = socket.gethostname(), time.time()
        mine = self.heartbeat.trial_ids
        study_id = storage.get_study_id_from_name(study.study_name)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = str(t.user_attrs.get(WORKER_ATTR, ""))
            w_host, _, w_pid = worker.rpartition(":")
            beat = float(t.user_attrs.get(HEARTBEAT_ATTR, t.datetime_start.timestamp() if t.datetime_start else now))
            if w_host == host and w_pid.isdigit():
                dead = int(w_pid) != os.getpid() and not pid_alive(int(w_pid))
            else:
                dead = now - beat > self.conf.stale_after_s
            tid = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            if not dead or tid in mine:
                continue
            try:
                storage.set_trial_user_attr(tid, FAIL_ATTR, f"worker {worker or '?'} died while running it")
                storage.set_trial_state_values(tid, TrialState.FAIL)
            except Exception:  # another worker reclaimed it first
                continue
            log.warning("trial %d: its worker %s is gone; marked FAIL", t.number, worker or "?")
            if RETRY_ATTR not in t.user_attrs and t.params:
                study.enqueue_trial(dict(t.params), user_attrs={RETRY_ATTR: t.number})

    def _write_experiment(self, sweep_dir: str, study: optuna.Study) -> None:
        """One HPARAMS experiment config at the sweep root, with the union of the trials' keys."""
        from sweep.tensorboard import write_experiment

        hparams: dict[str, Any] = {}
        for t in study.get_trials(deepcopy=False):
            hparams.update(t.user_attrs.get("hparams", {}))
        if hparams:
            write_experiment(sweep_dir, hparams, ["val/acc", "val/loss", "best/val_acc"])
