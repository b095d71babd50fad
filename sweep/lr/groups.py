"""Parameters -> named layer groups, for any model.

Three ways to split a model, by `groups.name` (or by `rules`, whatever the name):
- `backbone_head`: the head is found (`find_head`), the backbone is everything else.
- `layer_decay`: one group per depth (sweep/lr/depth.py), the head shallowest; layer i from the head
  gets `decay ** i`.
- `rules`: fnmatch patterns over `named_parameters()`, first match wins (`single` is one rule).

A group has a multiplier (its LR is `optimizer.lr * mult`), may be frozen for good, or may start
training at `start_epoch` (gradual unfreezing). Frozen groups exist in the optimizer from the start
with LR 0, so no param group is ever added mid-run.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sweep.errors import ConfigError, check
from sweep.lr.depth import Layer, backbone_layers, wrapped_in
from sweep.plain import is_int, is_list, is_number, plain

KINDS = ("single", "backbone_head", "layer_decay")
HEAD_NAME = "head"


@dataclass
class Group:
    name: str
    mult: float
    start_epoch: int = 0
    frozen: bool = False
    params: list[tuple[str, nn.Parameter]] = field(default_factory=list)
    decay_norm_bias: bool = False  # weight decay on its norm and bias parameters too
    note: str = ""  # how its parameters were chosen, shown under the group table

    @property
    def numel(self) -> int:
        return sum(p.numel() for _, p in self.params)


@dataclass(frozen=True)
class Head:
    """The module trained as the head, its path in the model and how it was found."""

    path: str
    module: nn.Module
    how: str


def validate(cfg: Mapping[str, Any], epochs: int | None = None) -> None:
    """Check a groups config (before any model is built); `epochs` bounds `freeze_epochs`."""
    cfg = plain(cfg)
    name, rules = cfg.get("name"), cfg.get("rules")
    mult = cfg.get("head_lr_mult", 1.0)
    check(is_number(mult) and mult > 0, "groups.head_lr_mult", mult, "a number > 0")
    if rules is not None:
        ok = (
            is_list(rules)
            and len(rules) > 0
            and all(
                isinstance(r, Mapping)
                and isinstance(r.get("name"), str)
                and (
                    isinstance(r.get("pattern"), str)
                    or (is_list(r.get("pattern")) and all(isinstance(p, str) for p in r["pattern"]))
                )
                for r in rules
            )
        )
        check(
            ok,
            "groups.rules",
            rules,
            "a non-empty list of {name, pattern (fnmatch pattern or list of them), mult, start_epoch, frozen}",
        )
        for r in rules:
            mult, start = r.get("mult", 1.0), r.get("start_epoch", 0)
            check(is_number(mult) and mult > 0, f"groups.rules[{r['name']}].mult", mult, "a number > 0")
            check(is_int(start) and start >= 0, f"groups.rules[{r['name']}].start_epoch", start, "an integer >= 0")
    else:
        check(name in KINDS, "groups", name, f"one of {', '.join(KINDS)}, or a config with rules")
    freeze = cfg.get("freeze_epochs", 0)
    upper = f" and < trainer.epochs ({epochs})" if epochs is not None else ""
    check(
        is_int(freeze) and freeze >= 0 and (epochs is None or freeze < epochs),
        "groups.freeze_epochs",
        freeze,
        f"an integer >= 0{upper}",
    )
    head = cfg.get("head")
    check(
        head is None or (isinstance(head, str) and head != ""),
        "groups.head",
        head,
        "null (found: a child called head, get_classifier(), else the last child with parameters) "
        "or a module path such as classifier or heads.head",
    )
    check(
        isinstance(cfg.get("decay_norm_bias", False), bool),
        "groups.decay_norm_bias",
        cfg.get("decay_norm_bias"),
        "true or false",
    )
    if name == "layer_decay" and rules is None:
        decay = cfg.get("decay")
        check(is_number(decay) and 0 < decay <= 1, "groups.decay", decay, "a number in (0, 1]")
        layers = cfg.get("layers")
        check(
            layers is None or (is_list(layers) and len(layers) > 0 and all(isinstance(x, str) for x in layers)),
            "groups.layers",
            layers,
            "null (found from the model) or a list of module paths from input to head",
        )


# --------------------------------------------------------------------------- the head


def _holds_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _path_of(model: nn.Module, module: nn.Module) -> str | None:
    return next((path for path, m in model.named_modules() if m is module), None)


def find_head(model: nn.Module, path: str | None = None) -> Head:
    """The head: `path` if given, else a child called `head`, else what `get_classifier()` returns
    (timm's protocol), else the last child module that holds parameters (`fc`, `classifier`,
    `heads` in torchvision). A model wrapped in one container (`self.model = nn.Sequential(...)`,
    a LightningModule's `self.net`) is searched inside it: the search descends while one child
    holds every parameter."""
    if path is not None:
        _, root = wrapped_in(model)
        child_names = [n for n, m in root.named_children() if _holds_parameters(m)]
        prefix = _path_of(model, root) or ""
        example = (
            ", ".join(f"{prefix}.{n}" if prefix else n for n in child_names[-3:])
            or "none: the model has no child with parameters"
        )
        try:
            chosen: nn.Module | None = model.get_submodule(path)
        except AttributeError:
            chosen = None
        if chosen is None or chosen is model or not _holds_parameters(chosen):
            raise ConfigError(
                "groups.head",
                path,
                f"the path of a module with parameters in the model (its children with parameters: {example})",
            )
        return Head(path, chosen, "groups.head")
    prefix, module = "", model
    while True:
        children = [(n, m) for n, m in module.named_children() if _holds_parameters(m)]
        inside = f" of {prefix}" if prefix else ""
        head = dict(children).get(HEAD_NAME)
        if head is not None:
            return Head(_join(prefix, HEAD_NAME), head, f"the child called head{inside}")
        get_classifier = getattr(module, "get_classifier", None)
        if callable(get_classifier):
            found_module = get_classifier()
            found = (
                _path_of(model, found_module)
                if isinstance(found_module, nn.Module) and _holds_parameters(found_module)
                else None
            )
            if found:
                return Head(found, found_module, f"get_classifier(){inside}")
        wraps = len(children) == 1 and next(module.parameters(recurse=False), None) is None
        if not wraps:
            break
        prefix, module = _join(prefix, children[0][0]), children[0][1]
    check(
        len(children) > 0,
        "groups.head",
        None,
        "a model with a child module that holds parameters, or groups.head=<module path>",
    )
    name, found_module = children[-1]
    return Head(_join(prefix, name), found_module, f"last child with parameters{inside}")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


# --------------------------------------------------------------------------- building


def _rule_groups(model: nn.Module, rules: Sequence[Mapping[str, Any]], decay_norm_bias: bool) -> list[Group]:
    """First matching rule wins; an unmatched parameter or a rule that matches nothing is an error."""
    groups = [
        Group(
            r["name"],
            float(r.get("mult", 1.0)),
            int(r.get("start_epoch", 0)),
            bool(r.get("frozen", False)),
            decay_norm_bias=decay_norm_bias,
        )
        for r in rules
    ]
    patterns = [[r["pattern"]] if isinstance(r["pattern"], str) else list(r["pattern"]) for r in rules]
    names = [n for n, _ in model.named_parameters()]
    for name, param in model.named_parameters():
        index = next((i for i, pats in enumerate(patterns) if any(fnmatch.fnmatchcase(name, p) for p in pats)), None)
        if index is None:
            raise ConfigError(
                "groups.rules", name, f"every parameter must match a rule; rules: {[r['pattern'] for r in rules]}"
            )
        groups[index].params.append((name, param))
    for rule, group in zip(rules, groups):
        if not group.params:
            raise ConfigError(
                f"groups rule '{group.name}'.pattern",
                rule["pattern"],
                f"a pattern that matches at least one parameter, e.g. {names[:3]}",
            )
    return groups


def _split_head(model: nn.Module, cfg: Mapping[str, Any]) -> tuple[Head, list, list]:
    """The head, its (name, parameter) pairs and the backbone's, in `named_parameters()` order."""
    head = find_head(model, cfg.get("head"))
    in_head = {id(p) for p in head.module.parameters()}
    named = list(model.named_parameters())
    head_params = [(n, p) for n, p in named if id(p) in in_head]
    backbone = [(n, p) for n, p in named if id(p) not in in_head]
    check(
        len(backbone) > 0,
        "groups.head",
        head.path,
        "a module that leaves the rest of the model as the backbone; it holds every parameter",
    )
    return head, head_params, backbone


def _head_group(head: Head, head_params: list, cfg: Mapping[str, Any], decay_norm_bias: bool) -> Group:
    """The head's group: `head_lr_mult` times the base LR, from the first epoch."""
    return Group(
        HEAD_NAME,
        float(cfg.get("head_lr_mult", 1.0)),
        params=head_params,
        decay_norm_bias=decay_norm_bias,
        note=f"{head.path} ({head.how})",
    )


def _backbone_head(model: nn.Module, cfg: Mapping[str, Any], decay_norm_bias: bool) -> list[Group]:
    head, head_params, backbone = _split_head(model, cfg)
    return [
        Group("backbone", 1.0, int(cfg.get("freeze_epochs", 0)), params=backbone, decay_norm_bias=decay_norm_bias),
        _head_group(head, head_params, cfg, decay_norm_bias),
    ]


def _unique_names(layers: Sequence[Layer]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for layer in layers:
        name = layer.name if layer.name != HEAD_NAME else f"{HEAD_NAME}_"
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def _layer_decay(model: nn.Module, cfg: Mapping[str, Any], decay_norm_bias: bool) -> list[Group]:
    """Backbone layer i (of L, from the input) gets `decay ** (L - i)`; the head `head_lr_mult`."""
    head, head_params, backbone = _split_head(model, cfg)
    layers, how = backbone_layers(model, backbone, cfg.get("layers"), head.path)
    decay, start = float(cfg["decay"]), int(cfg.get("freeze_epochs", 0))
    groups = [
        Group(name, decay ** (len(layers) - i), start, params=layer.params, decay_norm_bias=decay_norm_bias)
        for i, (name, layer) in enumerate(zip(_unique_names(layers), layers))
    ]
    groups[0].note = f"deepest of {len(layers)} layers; depth from {how}"
    groups.append(_head_group(head, head_params, cfg, decay_norm_bias))
    return groups


def build_groups(model: nn.Module, cfg: Mapping[str, Any]) -> list[Group]:
    """Assign every parameter of `model` to exactly one group, as the groups config says.

    `cfg` is a groups config (conf/groups/*.yaml, a DictConfig node or a plain dict). Errors are
    ConfigErrors that name the unmatched parameter, rule or head path.
    """
    cfg = plain(cfg)
    validate(cfg)
    decay_norm_bias = bool(cfg.get("decay_norm_bias", False))
    if cfg.get("rules") is not None:
        return _rule_groups(model, cfg["rules"], decay_norm_bias)
    if cfg.get("name") == "single":
        return [Group("all", 1.0, params=list(model.named_parameters()), decay_norm_bias=decay_norm_bias)]
    if cfg.get("name") == "layer_decay":
        return _layer_decay(model, cfg, decay_norm_bias)
    return _backbone_head(model, cfg, decay_norm_bias)


def group_table(
    groups: Sequence[Group], base_lr: float, weight_decay: float, decay_norm_bias: bool | None = None
) -> str:
    """The table printed at start (name, parameters, peak LR, weight decay, when it trains), then a
    line per group that says how its parameters were chosen (`head: classifier (get_classifier())`)."""
    rows = [("group", "params", "lr", "weight_decay", "trains")]
    for g in groups:
        decays_all = g.decay_norm_bias if decay_norm_bias is None else decay_norm_bias
        wd = f"{weight_decay:g}" + ("" if decays_all else " (0 on norm/bias)")
        trains = "never (frozen)" if g.frozen else f"from epoch {g.start_epoch + 1}"  # as the loop counts
        rows.append((g.name, f"{g.numel:,}", f"{base_lr * g.mult:.4g}", wd, trains))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines + [f"{g.name}: {g.note}" for g in groups if g.note])
