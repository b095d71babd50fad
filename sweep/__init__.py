"""lr-sweep: find the learning-rate setup of a PyTorch training run.

The library for a training loop of your own (configs are DictConfig nodes or plain dicts):

    groups = sweep.build_groups(model, cfg.groups)        # backbone/head or one group per depth
    optimizer = sweep.build_optimizer(cfg.optimizer, groups)
    scheduler = sweep.build_scheduler(optimizer, cfg.schedule, steps_per_epoch, epochs)
    trial = sweep.current_trial(cfg)                     # report(value, epoch), should_prune(), finish()

Names resolve on first use, so `import sweep` stays light (no torch until a builder is called).
Adapters for frameworks: `sweep.lightning` (a Lightning callback and `configure_optimizers`) and
`sweep.hf` (a transformers `TrainerCallback` and `optimizers=`), each imported on first use.

Layers, each a subpackage whose docstring says what it owns and what it may import (arrows point
down): `app` (the Hydra edge) -> `search` (the sweeper; no torch) -> `tools` (preview, range test)
-> `batched` -> `train` (the job) -> `lr` (schedules, groups, optimizer; no Hydra) -> `logs`
(TensorBoard); at the bottom `trial` (the seam), `errors`, `plain`, `resolvers`.
"""

from __future__ import annotations

import importlib
from typing import Any

from sweep import _moved

__version__ = "0.1.0"

_HOMES = {
    "build_groups": "sweep.lr.groups",
    "build_optimizer": "sweep.lr.optimizer",
    "build_scheduler": "sweep.lr.torch_scheduler",
    "current_trial": "sweep.search.handoff",
}
__all__ = list(_HOMES)

_moved.install()


_ADAPTERS = ("lightning", "hf")  # sweep.lightning, sweep.hf: imported on first use (they import their framework)


def __getattr__(name: str) -> Any:
    if name in _ADAPTERS:
        return importlib.import_module(f"sweep.{name}")
    if name not in _HOMES:
        raise AttributeError(f"module 'sweep' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
