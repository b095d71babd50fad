"""lr-sweep: find the learning-rate setup of a PyTorch training run.

The library for a training loop of your own (configs are DictConfig nodes or plain dicts):

    groups = sweep.build_groups(model, cfg.groups)        # backbone/head or one group per depth
    optimizer = sweep.build_optimizer(cfg.optimizer, groups)
    scheduler = sweep.build_scheduler(optimizer, cfg.schedule, steps_per_epoch, epochs)
    trial = sweep.current_trial(cfg)                     # report(value, epoch), should_prune(), finish()

Names resolve on first use, so `import sweep` stays light (no torch until a builder is called).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_HOMES = {
    "build_groups": "sweep.groups",
    "build_optimizer": "sweep.optim",
    "build_scheduler": "sweep.scheduler",
    "current_trial": "sweep.trial",
}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'sweep' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
