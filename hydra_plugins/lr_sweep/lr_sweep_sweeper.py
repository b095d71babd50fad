"""Hydra plugin shim: registers `hydra/sweeper=lr_sweep`; the work is in sweep.search.sweeper.

Kept light: Hydra imports every hydra_plugins module at start-up, so Optuna is imported only when
a sweep actually runs.

A search config written for the Hydra Optuna plugin often keeps the plugin's own
`_target_: hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper` under
`hydra.sweeper`, which wins over `override /hydra/sweeper: lr_sweep`. Hydra finds a sweeper by the
class's module and name, so when that plugin is not installed this module registers lr-sweep's
sweeper under that name too (`OptunaSweeper` below): the config runs as it is. When the plugin is
installed its class keeps the name (two packages cannot own one module); delete the `_target_`
line then. An alias rather than rewriting the value while composing: Hydra has no public hook
between composing and instantiating the sweeper, and an alias changes nothing for anyone else.

The directory the command runs in is put on `sys.path` by the search-path plugin beside this one.
"""

import importlib.util
import sys
import types
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper

from sweep.search.settings import SweeperConf

OPTUNA_PLUGIN = "hydra_plugins.hydra_optuna_sweeper"


def plain(value: Any) -> Any:
    """A DictConfig/ListConfig value (`_recursive_` is off, so `_target_` dicts come as config) as
    plain data."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


class LRSweeper(Sweeper):
    def __init__(self, **conf: Any) -> None:
        from sweep.search.sweeper import LRSweeper as Impl

        fields = {k: plain(v) for k, v in conf.items() if not k.startswith("_")}
        self.impl = Impl(SweeperConf(**fields))

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        from sweep.errors import ConfigError

        try:
            return self.impl.sweep(arguments)
        except ConfigError as err:  # bad sweep settings: one line, exit 2, before any trial
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)


ConfigStore.instance().store(group="hydra/sweeper", name="lr_sweep", node=SweeperConf, provider="lr-sweep")

if importlib.util.find_spec(OPTUNA_PLUGIN) is None:

    class OptunaSweeper(LRSweeper):
        """lr-sweep's sweeper under the Hydra Optuna plugin's class name (see the module docstring)."""

    # Hydra locates a plugin's `_target_` by import too: the name resolves to this class, in
    # modules that exist only in this process's sys.modules (nothing is installed under that name).
    OptunaSweeper.__module__ = f"{OPTUNA_PLUGIN}.optuna_sweeper"
    for name in (OPTUNA_PLUGIN, f"{OPTUNA_PLUGIN}.optuna_sweeper"):
        sys.modules.setdefault(name, types.ModuleType(name, "lr-sweep's alias of the Hydra Optuna plugin's sweeper"))
    sys.modules[OPTUNA_PLUGIN].optuna_sweeper = sys.modules[f"{OPTUNA_PLUGIN}.optuna_sweeper"]  # type: ignore[attr-defined]
    sys.modules[f"{OPTUNA_PLUGIN}.optuna_sweeper"].OptunaSweeper = OptunaSweeper  # type: ignore[attr-defined]
