"""Configs as plain, resolved dicts: the library takes a DictConfig node or a dict alike.

A node of a composed Hydra config (`cfg.groups`) resolves its interpolations against the whole
config, so it is converted here once, at the library's edge, and everything inside reads dicts.
The predicates below say what a value from the command line is, for the checks: `true` is not a
number, and a ListConfig is a list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard


def plain(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """A resolved copy of `cfg` as dicts and lists (an empty dict for None)."""
    if cfg is None:
        return {}
    if type(cfg).__module__.startswith("omegaconf"):  # no omegaconf import for plain-dict callers
        from omegaconf import OmegaConf

        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def is_number(v: Any) -> TypeGuard[float]:  # an int or a float
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def is_list(v: Any) -> TypeGuard[Sequence[Any]]:
    return isinstance(v, Sequence) and not isinstance(v, (str, bytes))
