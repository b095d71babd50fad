"""Where an app keeps what lr-sweep's presets search and set: its `lr_sweep:` node.

The presets (`search=lr|lr_schedule|finetune`) name train.py's keys (`optimizer.lr`,
`groups.head_lr_mult`, `trainer.epochs`, `schedule.*`). Another app declares once where those sit
in its own config, and the sweeper maps the presets' `params`, `fixed`, `enqueue` and its hooks'
overrides onto them; the presets read `metric` and `direction` by interpolation. E.g. an app
shaped like the lightning-hydra-template:

    lr_sweep:
      lr: model.optimizer.lr         # the base LR
      head_lr_mult: null             # null: this app has none, the presets leave it out
      epochs: trainer.max_epochs     # the presets' trainer.epochs (a shorter run per trial)
      groups: null                   # lr-sweep's groups/schedule/optimizer nodes, where the app
      schedule: null                 #   composes them (model.groups ...); config_check checks them there
      optimizer: null
      metric: val/acc                # what the app returns (its optimized_metric)
      direction: maximize

A role left out keeps train.py's key; an app with no `lr_sweep` node keeps them all, and a key
its config lacks is one line naming the role to declare. conf/train.yaml declares its own keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

from sweep.errors import check

NODE = "lr_sweep"
KEYS = {
    "optimizer.lr": "lr",
    "groups.head_lr_mult": "head_lr_mult",
    "groups.decay": "decay",
    "trainer.epochs": "epochs",
}  # train.py's key -> the role naming the app's key
PREFIXES = ("groups", "schedule", "optimizer")  # lr-sweep's config groups, wherever the app composes them
MISSING = object()


def declared(job_cfg: Any) -> dict[str, Any]:
    """The app's `lr_sweep` node as plain data ({} when it has none)."""
    node = OmegaConf.select(job_cfg, NODE, default=None)
    if node is None or not OmegaConf.is_dict(node):
        return {}
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def app_key(key: str, declaration: Mapping[str, Any]) -> str | None:
    """train.py's `key` as this app names it (None: the app has none, so it is left out); `+`/`~`
    prefixes kept."""
    bare = key.lstrip("+~")
    sign = key[: len(key) - len(bare)]
    role = KEYS.get(bare)
    if role is not None and role in declaration:
        return None if declaration[role] is None else sign + str(declaration[role])
    head, _, rest = bare.partition(".")
    if head in PREFIXES and head in declaration:
        where = declaration[head]
        if where is None:
            return None
        return sign + (f"{where}.{rest}" if rest else str(where).replace(".", "/"))
    return key


def flat(values: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """`{optimizer: {lr: x}}` as `{optimizer.lr: x}`, later entries winning: so a command line's
    `+hydra.sweeper.params.groups.head_lr_mult=null` replaces the preset's `groups.head_lr_mult`."""
    out: dict[str, Any] = {}
    for key, value in (values or {}).items():
        if isinstance(value, Mapping) and value and "_target_" not in value:
            for inner, leaf in flat(value, f"{prefix}{key}.").items():
                out.pop(inner, None)
                out[inner] = leaf
        else:
            out.pop(f"{prefix}{key}", None)
            out[f"{prefix}{key}"] = value
    return out


def mapped(values: Mapping[str, Any] | None, declaration: Mapping[str, Any]) -> dict[str, Any]:
    """A `key -> value` mapping with its keys as the app names them (keys the app lacks dropped)."""
    out = {}
    for key, value in flat(values).items():
        target = app_key(str(key), declaration)
        if target is not None:
            out[target] = value
    return out


def lr_key(declaration: Mapping[str, Any]) -> str:
    """The key that is the base LR (plots and results read it)."""
    return str(declaration.get("lr") or "optimizer.lr")


def check_fixed(fixed: Mapping[str, Any], job_cfg: Any, app: str) -> None:
    """Every value a preset sets must be a key of the app's config: else one line naming the role."""
    for key in fixed:
        bare = key.lstrip("+~")
        if key.startswith("+") or OmegaConf.select(job_cfg, bare, default=MISSING) is not MISSING:
            continue
        role = KEYS.get(bare) or bare.partition(".")[0]
        check(
            False,
            "hydra.sweeper.fixed",
            f"{bare}={fixed[key]}",
            f"a key of {app}'s config: declare where it sits with `{NODE}.{role}: <key>` in its config "
            f"(null leaves it out), or drop it with ~hydra.sweeper.fixed.{bare}",
        )


def check_view(job_cfg: Any, declaration: Mapping[str, Any]) -> Any:
    """The parts of the app's config that are lr-sweep's, as train.py names them (what a
    `config_check` such as sweep.train.checks.validate reads), wherever the app keeps them."""
    view: dict[str, Any] = {}
    for part in PREFIXES:
        where = declaration.get(part, part if not declaration else None)
        node = OmegaConf.select(job_cfg, str(where), default=None) if where else None
        if node is not None:
            view[part] = node
    epochs = run_epochs(job_cfg, declaration)
    if epochs is not None:
        view["trainer"] = {"epochs": epochs}
    return OmegaConf.create(view)


def run_epochs(job_cfg: Any, declaration: Mapping[str, Any]) -> Any:
    """A trial's epochs where the app keeps them (`lr_sweep.epochs`, else `trainer.epochs`); None if absent."""
    return OmegaConf.select(job_cfg, str(declaration.get("epochs") or "trainer.epochs"), default=None)
