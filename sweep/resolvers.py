"""The OmegaConf resolvers lr-sweep's configs use, registered on import.

`${lr_sweep.direction:${objective.metric}}` (conf/train.yaml's `objective.direction`) is maximize
for accuracies (`*acc`) and minimize for losses and errors (`*loss`, `*rmse`), so the direction
follows the metric in single runs and in every `search=` config (`hydra.sweeper.direction:
${objective.direction}`) unless the user sets it. Hydra imports every module under
`hydra_plugins` at start-up, before it resolves anything; `hydra_plugins/lr_sweep/resolvers.py`
imports this module, so any Hydra app with lr-sweep installed has the resolver.
"""

from __future__ import annotations

from omegaconf import OmegaConf

DIRECTION = "lr_sweep.direction"


def direction_of(metric: object) -> str:
    """maximize for `*acc`; minimize for `*loss`, `*rmse` and anything else."""
    return "maximize" if str(metric).endswith("acc") else "minimize"


def register() -> None:
    if not OmegaConf.has_resolver(DIRECTION):
        OmegaConf.register_new_resolver(DIRECTION, direction_of)


register()
