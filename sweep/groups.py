"""Parameters -> named layer groups, by fnmatch rules over `named_parameters()` (first match wins).

A group has a multiplier (its LR is `optimizer.lr * mult`), may be frozen for good, or may start
training at `start_epoch` (gradual unfreezing). Frozen groups exist in the optimizer from the start
with LR 0, so no param group is ever added mid-run.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from torch import nn

from sweep.errors import ConfigError, check

log = logging.getLogger(__name__)


@dataclass
class Group:
    name: str
    mult: float
    start_epoch: int = 0
    frozen: bool = False
    params: list[tuple[str, nn.Parameter]] = field(default_factory=list)

    @property
    def numel(self) -> int:
        return sum(p.numel() for _, p in self.params)


def layer_decay_rules(model: nn.Module, cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One rule per backbone child that holds parameters, then the head; layer i from the head
    gets `decay ** i` (BEiT/MAE/ELECTRA fine-tuning), the head `head_lr_mult`."""
    decay = cfg["decay"]
    check(isinstance(decay, (int, float)) and 0 < decay <= 1, "groups.decay", decay, "a number in (0, 1]")
    layers = list(cfg.get("layers") or [])
    if not layers:
        seen: list[str] = []
        for name, _ in model.named_parameters():
            parts = name.split(".")
            prefix = ".".join(parts[:2]) if parts[0] != "head" and len(parts) > 2 else parts[0]
            if prefix not in seen:
                seen.append(prefix)
        layers = [p for p in seen if p != "head"]
    depth = len(layers)
    rules = [
        {"name": layer, "pattern": f"{layer}.*", "mult": decay ** (depth - i),
         "start_epoch": cfg.get("freeze_epochs", 0)}
        for i, layer in enumerate(layers)
    ]
    return rules + [{"name": "head", "pattern": "head.*", "mult": cfg.get("head_lr_mult", 1.0)}]


def build_groups(model: nn.Module, cfg: Mapping[str, Any]) -> list[Group]:
    """Assign every parameter to exactly one group; errors name the unmatched parameter or rule."""
    mult = cfg.get("head_lr_mult", 1.0)
    check(isinstance(mult, (int, float)) and mult > 0, "groups.head_lr_mult", mult, "a number > 0")
    freeze = cfg.get("freeze_epochs", 0)
    check(isinstance(freeze, int) and freeze >= 0, "groups.freeze_epochs", freeze, "an integer >= 0")
    rules: Sequence[Mapping[str, Any]] = (
        layer_decay_rules(model, cfg) if cfg.get("name") == "layer_decay" else cfg["rules"]
    )
    groups = [
        Group(r["name"], float(r.get("mult", 1.0)), int(r.get("start_epoch", 0)), bool(r.get("frozen", False)))
        for r in rules
    ]
    for g in groups:
        check(g.mult > 0, f"groups.{g.name}.mult", g.mult, "a number > 0")
    names = [n for n, _ in model.named_parameters()]
    for name, param in model.named_parameters():
        for rule, group in zip(rules, groups):
            patterns = rule["pattern"] if isinstance(rule["pattern"], (list, tuple)) else [rule["pattern"]]
            if any(fnmatch.fnmatchcase(name, p) for p in patterns):
                group.params.append((name, param))
                break
        else:
            raise ConfigError("groups.rules", name, f"every parameter must match a rule; rules: "
                              f"{[r['pattern'] for r in rules]}")
    for rule, group in zip(rules, groups):
        if not group.params:
            raise ConfigError(f"groups rule '{group.name}'.pattern", rule["pattern"],
                              f"a pattern that matches at least one parameter, e.g. {names[:3]}")
    return groups


def group_table(groups: Sequence[Group], base_lr: float, weight_decay: float, decay_norm_bias: bool) -> str:
    """The table printed at start: name, parameters, peak LR, weight decay, when it trains."""
    rows = [("group", "params", "lr", "weight_decay", "trains")]
    for g in groups:
        wd = f"{weight_decay:g}" + ("" if decay_norm_bias else " (0 on norm/bias)")
        trains = "never (frozen)" if g.frozen else f"from epoch {g.start_epoch}"
        rows.append((g.name, f"{g.numel:,}", f"{base_lr * g.mult:.4g}", wd, trains))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
