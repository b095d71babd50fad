"""The OmegaConf resolvers lr-sweep's configs use, registered on import.

`${lr_sweep.direction:${objective.metric}}` (conf/train.yaml's `objective.direction`) is maximize
for accuracies (`*acc`) and minimize for losses and errors (`*loss`, `*rmse`), so the direction
follows the metric in single runs and in every `search=` config (`hydra.sweeper.direction:
${objective.direction}`) unless the user sets it. Hydra imports every module under
`hydra_plugins` at start-up, before it resolves anything; `hydra_plugins/lr_sweep/resolvers.py`
imports this module, so any Hydra app with lr-sweep installed has the resolver.

`${lr_sweep.lr_range:}` (the presets' range of `optimizer.lr`) is the log-scale interval that fits
the run's optimizer: Adam-family optimizers train best one to two decades below SGD with momentum
(bench/search_efficiency.py's grids: SGD with momentum's best base LRs 0.03-0.3 on digits; Adam's
1e-4-3e-4 on scikit-learn's diabetes and 0.01-0.03 for the digits CNN), so each family gets its own
interval, and `hydra.sweeper.widen_edges` moves an edge that turns out too tight.
It reads the optimizer's `name` (lr-sweep's optimizer configs) or `_target_` (`torch.optim.AdamW`,
a lightning-hydra-template `_partial_`) at the app's declared optimizer node (`lr_sweep.optimizer`),
else at `optimizer`, else at `model.optimizer`; `${lr_sweep.lr_range:adam}` names the family.
An optimizer it does not know gets the union of both ranges.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

DIRECTION = "lr_sweep.direction"
LR_RANGE = "lr_sweep.lr_range"
ADAM_FAMILY = ("adam", "adamw", "nadam", "radam", "adamax", "lamb", "lion")
LR_RANGES = {"sgd": (1e-3, 0.5), "adam": (5e-5, 3e-2)}  # low, high of optimizer.lr, searched on a log scale
UNKNOWN_RANGE = (5e-5, 0.5)


def direction_of(metric: object) -> str:
    """maximize for `*acc`; minimize for `*loss`, `*rmse` and anything else."""
    return "maximize" if str(metric).endswith("acc") else "minimize"


def optimizer_family(name: object) -> str | None:
    """sgd, adam (the Adam family) or None, from an optimizer's name or import path."""
    last = str(name or "").rsplit(".", 1)[-1].lower()
    if last in ("sgd",):
        return "sgd"
    return "adam" if last in ADAM_FAMILY else None


def optimizer_name(root: Any) -> object:
    """The run's optimizer `name` or `_target_`, read where the app keeps its optimizer node."""
    where = OmegaConf.select(root, "lr_sweep.optimizer", default=None) if root is not None else None
    for path in ([str(where)] if where else []) + ["optimizer", "model.optimizer"]:
        node = OmegaConf.select(root, path, default=None)
        if node is not None and OmegaConf.is_dict(node):
            return node.get("name") or node.get("_target_")
    return None


def lr_range(family: object = None, *, _root_: Any = None) -> str:
    """The search grammar's log interval for the base LR that fits the optimizer (see the module docstring)."""
    low, high = LR_RANGES.get(optimizer_family(family or optimizer_name(_root_)) or "", UNKNOWN_RANGE)
    return f"tag(log, interval({low:g}, {high:g}))"


def register() -> None:
    if not OmegaConf.has_resolver(DIRECTION):
        OmegaConf.register_new_resolver(DIRECTION, direction_of)
    if not OmegaConf.has_resolver(LR_RANGE):
        OmegaConf.register_new_resolver(LR_RANGE, lr_range)


register()
