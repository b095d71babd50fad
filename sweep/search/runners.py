"""How the sweeper runs a trial's job and gets its outcome back: in its own process, or through any
Hydra launcher.

In-process (Hydra's basic launcher is configured): the job config depends only on the config-group
choices, so it is composed once per distinct set of choices; each trial gets a copy with its
values, its own job dir with the `.hydra/` records that rerun it (config.yaml, overrides.yaml; the
`hydra` node, the same for every trial, is written once as the sweep root's multirun.yaml), its
own log file, and its trial handles handed over directly (`sweep.trial`). This is Hydra's
`run_job` without what a sweep of many short trials pays for and does not need: two deep copies
of the whole config, a logging reconfiguration and three YAML files per trial
(`bench/sweeper_vs_optuna_plugin.py --profile` shows what a trial costs).

Through a launcher (joblib, submitit, ...): the trial's identity travels in the job's overrides
(`++trial.storage`, `++trial.study_name`, `++trial.number`: `++` adds the keys to an app whose
config has no `trial` node), and the outcome comes back as the trial's `outcome` user attribute.

`Launch` picks the way for each batch of jobs. Either way the result is one `Outcome` per trial: the
one the job reported, else one made from how the job ended (its return value, a `TrialPruned`, an
exception).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from sweep.search import keys
from sweep.search.handoff import StudyTrial
from sweep.search.progress import quiet_console
from sweep.search.results import format_override
from sweep.search.storage import open_storage
from sweep.trial import NoTrial, Outcome, Status, handed_over

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


def job_outcome(error: BaseException | None, value: Any, reported: Outcome | None) -> Outcome:
    """The outcome of a job: what it reported, else what its return value or error says."""
    if reported is not None:
        return reported
    if error is not None:
        if type(error).__name__ == "TrialPruned":  # optuna.TrialPruned, raised by a user's own loop
            return Outcome(Status.PRUNED, None, str(error) or "pruned")
        text = f"{type(error).__name__}: {error}".splitlines()[0]
        return Outcome(Status.FAILED, None, text)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return Outcome(Status.COMPLETE, float(value))
    if (
        isinstance(value, (list, tuple))
        and value
        and all(  # several objectives (direction: [..., ...])
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
        )
    ):
        return Outcome(Status.COMPLETE, [float(v) for v in value])  # type: ignore[arg-type]
    return Outcome(Status.FAILED, None, f"non-finite objective: {value!r}")


def override_dirname(lines: Sequence[str], cfg: DictConfig) -> str:
    """`hydra.job.override_dirname` as Hydra composes it: sorted `key=value`s, excluded keys dropped."""
    spec = cfg.hydra.job.config.override_dirname
    excluded = set(spec.exclude_keys)
    kept = [line for line in lines if line.split("=", 1)[0].lstrip("+~") not in excluded]
    return spec.item_sep.join(sorted(kept)).replace("=", spec.kv_sep)


@dataclass
class Prepared:
    """A trial's job, ready to run: its config (no `hydra` node), the whole config it was cut from
    (the `hydra` node's interpolations, `${paths.log_dir}`, `${task_name}`, resolve in it, as in
    Hydra's own jobs), and its job dir."""

    task_cfg: DictConfig
    hydra_cfg: DictConfig
    job_dir: str
    lines: list[str]


class InProcessJobs:
    """Runs trial jobs in the sweeper's process (see the module docstring).

    Per set of config-group choices, the composed config is split once into the job's part and the
    `hydra` node; a trial gets its own copy of the job's part (unpickled from bytes made once,
    where a deep copy of a DictConfig walks every node in Python) and runs under the shared `hydra`
    node, whose per-job fields (number, overrides, output dir) are set before each job.
    """

    def __init__(
        self,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
        fixed: Sequence[str],
        job_cfg: DictConfig,
    ) -> None:
        """`job_cfg`: the config composed from the `fixed` overrides alone (the sweeper has it)."""
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config
        self.fixed, self.group_keys = list(fixed), set(job_cfg.hydra.runtime.choices)
        self.sweep_dir = os.path.abspath(str(config.hydra.sweep.dir))  # resolved once (`${now:...}`)
        self._composed: dict[tuple, bytes] = {(): pickle.dumps(job_cfg)}
        self._file_log: list[tuple[str, logging.Formatter, int]] | None = None

    def _base(self, values: Mapping[str, Any]) -> bytes:
        """The whole config for these group choices, pickled."""
        choices = tuple(sorted((k, str(v)) for k, v in values.items() if k.lstrip("+") in self.group_keys))
        if choices not in self._composed:
            cfg = self.hydra_context.config_loader.load_sweep_config(
                self.config, self.fixed + [f"{k}={v}" for k, v in choices]
            )
            self._composed[choices] = pickle.dumps(cfg)
        return self._composed[choices]

    def prepare(self, number: int, values: Mapping[str, Any], lines: list[str]) -> Prepared:
        """Trial `number`'s config with its values, its job dir, and the `.hydra/` records that
        rerun it (config.yaml, overrides.yaml)."""
        whole = pickle.loads(self._base(values))
        with read_write(whole), open_dict(whole):
            for key, value in values.items():
                if key.lstrip("+") not in self.group_keys:
                    OmegaConf.update(whole, key.lstrip("+"), value, merge=False)
            hydra = whole.hydra
            out = os.path.join(self.sweep_dir, str(number))
            hydra.sweep.dir = self.sweep_dir
            hydra.overrides.task = list(lines)
            hydra.job.override_dirname = override_dirname(lines, whole)
            hydra.job.id = hydra.job.num = number
            hydra.runtime.output_dir = out
        task_cfg = task_config(whole)
        if hydra.output_subdir is not None:
            records = Path(out) / str(hydra.output_subdir)
            records.mkdir(parents=True, exist_ok=True)
            _write_yaml(records / "config.yaml", OmegaConf.to_container(task_cfg, resolve=False))
            _write_yaml(records / "overrides.yaml", list(lines))
        else:
            os.makedirs(out, exist_ok=True)
        return Prepared(task_cfg, whole, out, list(lines))

    @staticmethod
    def _enter(job: Prepared) -> None:
        """Make the job's whole config the current Hydra config (`${hydra:...}` resolves in it)."""
        HydraConfig.instance().set_config(job.hydra_cfg)

    def run(self, job: Prepared, number: int, handles: Sequence[NoTrial]) -> list[Outcome]:
        """Call the task on `job` with `handles` handed over; one outcome per handle."""
        label = ",".join(str(h.number) for h in handles)
        log.debug("\t#%s : %s", label, " ".join(filter_overrides(job.lines)))  # progress lines say the rest
        saved = HydraConfig.instance().cfg
        self._enter(job)
        handlers = self._log_to(job.hydra_cfg)
        callbacks = self.hydra_context.callbacks
        ret = JobReturn(overrides=job.lines, cfg=job.task_cfg, hydra_cfg=job.hydra_cfg, working_dir=os.getcwd())
        error: BaseException | None = None
        try:
            callbacks.on_job_start(config=job.hydra_cfg, task_function=self.task_function)
            with handed_over(handles), quiet_console():  # the job's lines: its train.log only
                ret.return_value = self.task_function(job.task_cfg)
            ret.status = JobStatus.COMPLETED
        except Exception as err:  # noqa: BLE001 - any job error fails its trials, not the sweep
            error, ret.return_value, ret.status = err, err, JobStatus.FAILED
            log.debug("job %s raised", label, exc_info=True)
        finally:
            for handler in handlers:
                logging.getLogger().removeHandler(handler)
                handler.close()
            HydraConfig.instance().cfg = saved
        callbacks.on_job_end(config=job.hydra_cfg, job_return=ret)
        value = None if error else ret.return_value
        return [job_outcome(error, value, h.outcome) for h in handles]

    def _log_to(self, cfg: DictConfig) -> list[logging.Handler]:
        """The job's log files, as its `hydra.job_logging` says (set up once with Hydra's own
        `configure_log`; then per job only the file handlers, at the paths the job's config names,
        e.g. `${hydra.runtime.output_dir}/${task_name}.log`)."""
        if self._file_log is None:
            configure_log(cfg.hydra.job_logging, cfg.hydra.verbose)
            root = logging.getLogger()
            files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
            for h in files:
                root.removeHandler(h)
                h.close()
            named = [
                name
                for name, spec in (cfg.hydra.job_logging or {}).get("handlers", {}).items()
                if spec is not None and "filename" in spec
            ]
            self._file_log = [(name, h.formatter or logging.Formatter(), h.level) for name, h in zip(named, files)]
        handlers: list[logging.Handler] = []
        for name, formatter, level in self._file_log:
            path = str(cfg.hydra.job_logging.handlers[name].filename)
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            handler = logging.FileHandler(path)
            handler.setFormatter(formatter)
            handler.setLevel(level)
            logging.getLogger().addHandler(handler)
            handlers.append(handler)
        return handlers


def task_config(cfg: DictConfig) -> DictConfig:
    """The job's view of a composed config: everything but the `hydra` node, in struct mode where
    the composed config is (as Hydra hands it to a job: a new key is an error, not a silent add)."""
    task = OmegaConf.masked_copy(cfg, [str(k) for k in cfg.keys() if k != "hydra"])
    OmegaConf.set_struct(task, OmegaConf.is_struct(cfg))
    return task


def _write_yaml(path: Path, data: Any) -> None:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml where installed: C, not Python
    path.write_text(yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True))


def trial_overrides(storage: str, study_name: str, number: int) -> list[str]:
    """The overrides that name a job's trial for a job in another process."""
    return [f"++trial.storage={storage}", f"++trial.study_name={study_name}", f"++trial.number={number}"]


def remote_outcomes(ret: JobReturn, trial_ids: Sequence[int], storage: Any) -> list[Outcome]:
    """The outcomes of a job another process ran: what the job stored, else how it ended."""
    error, value = None, None
    try:
        value = ret.return_value
    except Exception as err:  # noqa: BLE001 - JobReturn re-raises the job's error
        error = err
    out = []
    for trial_id in trial_ids:
        stored = storage.get_trial(trial_id).user_attrs.get(keys.OUTCOME)
        out.append(job_outcome(error, value, Outcome.from_dict(stored) if stored else None))
    return out


@dataclass
class Asked:
    """A trial asked of the study, with the overrides that configure its job."""

    trial: optuna.Trial
    trial_id: int
    overrides: dict[str, Any]


class Launch:
    """Runs asked trials' jobs, `trials_per_job` trials to a job: in this process where the jobs can
    run here (`in_process`; not for overrides that delete a key, `~key`), else through `launcher`."""

    def __init__(
        self,
        launcher: Launcher,
        in_process: InProcessJobs | None,
        fixed: Sequence[str],
        storage_spec: str,
        study_name: str,
    ) -> None:
        self.launcher, self.in_process, self.fixed = launcher, in_process, list(fixed)
        self.storage_spec, self.study_name = storage_spec, study_name

    def __call__(self, jobs: list[list[Asked]]) -> list[list[Outcome]]:
        """One outcome per trial."""
        lines = [[self.fixed + [format_override(k, v) for k, v in a.overrides.items()] for a in job] for job in jobs]
        if self.in_process is not None and not any(k.startswith("~") for job in jobs for a in job for k in a.overrides):
            return [self.run_in_process(self.in_process, job, job_lines) for job, job_lines in zip(jobs, lines)]
        return self.run_via_launcher(jobs, lines)

    @staticmethod
    def run_in_process(runner: InProcessJobs, job: list[Asked], lines: list[list[str]]) -> list[Outcome]:
        """One job in this process, its trials handed over directly."""
        try:
            prepared = [runner.prepare(a.trial.number, a.overrides, ln) for a, ln in zip(job, lines)]
        except Exception as err:  # noqa: BLE001 - its config does not resolve: the trials fail with the reason
            log.debug("job %d: config", job[0].trial.number, exc_info=True)
            reason = f"config: {type(err).__name__}: {err}".splitlines()[0]
            return [Outcome(Status.FAILED, None, reason) for _ in job]
        handles = [StudyTrial(a.trial, config=p.task_cfg, job_dir=p.job_dir) for a, p in zip(job, prepared)]
        return runner.run(prepared[0], job[0].trial.number, handles)

    def run_via_launcher(self, jobs: list[list[Asked]], lines: list[list[list[str]]]) -> list[list[Outcome]]:
        """Any Hydra launcher; runs of consecutive first-trial numbers, so job dirs are named by them."""
        job_lines = [
            trial_lines[0] + trial_overrides(self.storage_spec, self.study_name, job[0].trial.number)
            for job, trial_lines in zip(jobs, lines)
        ]  # one trial a job: trials_per_job is 1 here
        storage = open_storage(self.storage_spec)
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
