"""Hydra plugin shim: registers `hydra/sweeper=lr_sweep`; the work is in sweep.search.sweeper.

Kept light: Hydra imports every hydra_plugins module at start-up, so Optuna is imported only when
a sweep actually runs.
"""

import sys
from typing import Any, List

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper

from sweep.search.settings import SweeperConf


class LRSweeper(Sweeper):
    def __init__(self, **conf: Any) -> None:
        from sweep.search.sweeper import LRSweeper as Impl

        self.impl = Impl(SweeperConf(**conf))

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        from sweep.errors import ConfigError

        try:
            return self.impl.sweep(arguments)
        except ConfigError as err:  # bad sweep settings: one line, exit 2, before any trial
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)


ConfigStore.instance().store(group="hydra/sweeper", name="lr_sweep", node=SweeperConf, provider="lr-sweep")
