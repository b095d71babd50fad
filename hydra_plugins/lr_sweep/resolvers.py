"""Registers lr-sweep's OmegaConf resolvers (`${lr_sweep.direction:...}`) in every Hydra app:
Hydra imports each module under `hydra_plugins` before it composes and resolves a config."""

import sweep.resolvers  # noqa: F401
