"""A resume is honest: the study keeps the fixed settings it was created with, and a rerun with
other fixed settings stops before any trial, naming each key that differs with both values.

The fixed settings are the job config the sweep composes (the command line's fixed overrides, the
search preset's values and the app's defaults), searched keys left out, as `{key: value}` with
interpolations unresolved (`${...}` stays text, so run-time paths do not differ). They are kept in
the study's `settings` attribute when it is created. `hydra.sweeper.allow_changed_settings=true`
mixes the two on purpose: the change is appended to the study's `settings_changes` (from which
trial on, each key's old and new value; the report warns about it) and the new settings become the
study's. A new `hydra.sweeper.study_name` starts a study of its own. Each trial also keeps the fixed
overrides of the run that asked it (`fixed`), so its rerun command is its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from sweep.errors import ConfigError
from sweep.search import keys

log = logging.getLogger(__name__)

LEFT_OUT = ("hydra", "trial")  # the sweeper's own node, and the trial a job in another process reads


def _plain(value: Any) -> Any:
    """A JSON value as stored and read back (tuples become lists)."""
    return json.loads(json.dumps(value, default=str))


def fixed_settings(job_cfg: DictConfig, searched: Iterable[str]) -> dict[str, Any]:
    """`{key: value}` of every leaf of the job config, searched keys (and their subtrees) left out."""
    skip = [k.lstrip("+~") for k in searched]
    tree = OmegaConf.to_container(
        OmegaConf.masked_copy(job_cfg, [str(k) for k in job_cfg if k not in LEFT_OUT]), resolve=False
    )
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
            return
        key = prefix[:-1]
        if not any(key == s or key.startswith(s + ".") for s in skip):
            out[key] = node

    walk(tree, "")
    return _plain(out)


def differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, list[Any]]:
    """`{key: [value before, value now]}` for each key that differs (`<absent>` for a missing key)."""
    absent = "<absent>"
    return {
        k: [before.get(k, absent), now.get(k, absent)]
        for k in sorted(set(before) | set(now))
        if before.get(k, absent) != now.get(k, absent)
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def changed_line(study_name: str, changes: Mapping[str, list[Any]]) -> str:
    """What a rerun with other fixed settings is told (one line)."""
    each = ", ".join(f"{k}={_text(old)} (now {_text(new)})" for k, (old, new) in changes.items())
    return (
        f"the study '{study_name}' was run with other fixed settings: {each}; rerun with the study's, "
        f"add hydra.sweeper.allow_changed_settings=true to mix them on purpose, or start a new study "
        f"(hydra.sweeper.study_name=NAME)"
    )


def check_settings(study: optuna.Study, settings: Mapping[str, Any], allow_changes: bool) -> None:
    """Keep `settings` in a new study; in an existing one, stop on any difference unless
    `allow_changes` (then record the change). Raises a ConfigError naming every differing key."""
    stored = study.user_attrs.get(keys.SETTINGS)
    if stored is None:
        study.set_user_attr(keys.SETTINGS, dict(settings))
        return
    changes = differences(stored, settings)
    if not changes:
        return
    if not allow_changes:
        raise ConfigError("hydra.sweeper.allow_changed_settings", False, changed_line(study.study_name, changes))
    history = list(study.user_attrs.get(keys.SETTINGS_CHANGES) or [])
    history.append({"from_trial": len(study.get_trials(deepcopy=False)), "changes": changes})
    study.set_user_attr(keys.SETTINGS_CHANGES, history)
    study.set_user_attr(keys.SETTINGS, dict(settings))
    log.warning(
        "resuming with changed fixed settings (hydra.sweeper.allow_changed_settings=true): %s",
        ", ".join(f"{k}: {_text(old)} -> {_text(new)}" for k, (old, new) in changes.items()),
    )
