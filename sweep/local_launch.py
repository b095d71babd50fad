"""Run trials in the sweeper's process without composing the config anew for every trial.

Hydra's basic launcher composes the whole config for each job (150-300 ms here, most of the
sweep machinery's time per trial). The composed config only depends on the config-group choices,
so this composes once per distinct set of choices, then for each trial deep-copies it, sets the
trial's values, and runs the job with Hydra's own `run_job` (job dir, .hydra/ records, logging),
filling in what composition would have (`hydra.overrides.task`, `hydra.job.override_dirname`,
`hydra.job.num`). Launchers other than the basic one (joblib, submitit, ...) are used as they are.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Mapping, Sequence

from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


class LocalTrialLauncher:
    def __init__(self, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig,
                 fixed: Sequence[str], group_keys: Sequence[str]) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config
        self.fixed, self.group_keys = list(fixed), set(group_keys)
        self.composed: dict[tuple, DictConfig] = {}
        self.parser = OverridesParser.create()

    def _base(self, values: Mapping[str, Any]) -> DictConfig:
        choices = tuple(sorted((k, str(v)) for k, v in values.items() if k in self.group_keys))
        if choices not in self.composed:
            self.composed[choices] = self.hydra_context.config_loader.load_sweep_config(
                self.config, self.fixed + [f"{k}={v}" for k, v in choices])
        return self.composed[choices]

    def launch(self, number: int, values: Mapping[str, Any], lines: list[str]) -> JobReturn:
        """Run trial `number` with config values `values`; `lines` are its overrides as text."""
        setup_globals()
        cfg = copy.deepcopy(self._base(values))
        dirname = cfg.hydra.job.config.override_dirname
        with open_dict(cfg):
            for key, value in values.items():
                if key not in self.group_keys:
                    OmegaConf.update(cfg, key.lstrip("+"), value, merge=False)
            cfg.hydra.overrides.task = lines
            cfg.hydra.job.override_dirname = get_overrides_dirname(
                self.parser.parse_overrides(lines), list(dirname.exclude_keys), dirname.item_sep, dirname.kv_sep)
            cfg.hydra.job.id = cfg.hydra.job.num = number
        log.info("\t#%d : %s", number, " ".join(filter_overrides(lines)))
        ret = run_job(hydra_context=self.hydra_context, task_function=self.task_function, config=cfg,
                      job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret
