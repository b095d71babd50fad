"""Command-line checks that run before Hydra composes anything.

Hydra reports an unknown config-group option (`schedule=foo`), an unknown key
(`optimizer.lrr=0.1`), a sweeper setting that does not exist or has the wrong type
(`hydra.sweeper.n_trial=2`, `hydra.sweeper.n_trials=abc`) and a sweep it cannot parse
(`interval(1e-3 0.5)`) as a multi-line error with exit 1; these checks turn each into the one-line
error every other bad setting gets (key, value, what is allowed; exit 2), naming the nearest valid
key or form. The sweeper's settings are its dataclass's fields (`sweep.search.settings`); the
grammar's errors are the sweeper's own (`sweep.search.space.parse_overrides`).

Cheap first, exact when it matters: the keys each override could mean are read from the YAML files
of the options the command line selects (a few small files, no composition). Only a key found in
none of them is checked against the config composed by Hydra's public compose API, which has the
last word, so a prediction that is wrong in a rare case (a user's own config group) costs time on
that path, never a false error.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from sweep.errors import app_name

SWEEP_VALUE = re.compile(r"^\s*(choice|range|interval|tag|glob|shuffle|sort|int|float|str|bool)\s*\(|,")
OPTION_WITH_VALUE = {
    "-cn",
    "-cp",
    "-cd",
    "--config-name",
    "--config-path",
    "--config-dir",
    "--experimental-rerun",
    "--info",
    "-i",
}


def group_options(conf_dir: str, group: str) -> list[str]:
    folder = os.path.join(conf_dir, group)
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml") and not f.startswith("_"))


def overrides_of(argv: Sequence[str]) -> list[str]:
    """The `key=value` overrides of a Hydra command line (flags and their values left out)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            skip = arg in OPTION_WITH_VALUE
            continue
        if "=" in arg:
            out.append(arg)
    return out


def unknown_choice(argv: Sequence[str], conf_dir: str) -> str | None:
    """The error line for the first `group=option` whose option file does not exist, else None."""
    for arg in overrides_of(argv):
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or "/" in key or "." in key or not os.path.isdir(os.path.join(conf_dir, key)):
            continue
        if value in ("null", "") or "(" in value or "," in value:  # sweeps are checked by the sweeper
            continue
        options = group_options(conf_dir, key)
        if value not in options:
            return f"error: {key}={value!r} is not allowed: one of {', '.join(options)}"
    return None


# ------------------------------------------------------------------------------------ unknown keys


def _load_yaml(path: str) -> tuple[dict[str, Any], bool]:
    """(the file's mapping, whether it is `# @package _global_`)."""
    import yaml

    with open(path) as f:
        text = f.read()
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    return (yaml.safe_load(text) or {}), any("@package _global_" in line for line in header)


def _flatten(node: Any, prefix: str, into: set[str]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "defaults":
                continue
            key = f"{prefix}{k}"
            into.add(key)
            _flatten(v, key + ".", into)


def _defaults(node: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(group, option) pairs of a defaults list; `override /group: x` and plain `group: x` alike."""
    out = []
    for entry in node.get("defaults") or []:
        if isinstance(entry, dict):
            for k, v in entry.items():
                out.append((str(k).replace("override ", "").strip().lstrip("/"), None if v is None else str(v)))
        elif isinstance(entry, str):
            out.append(("", entry))  # `_self_`, or a file of the same folder (`_base`)
    return out


def _file_keys(
    conf_dir: str, group: str, option: str, prefix: str, keys: set[str], selected: dict[str, str | None], seen: set[str]
) -> None:
    path = os.path.join(conf_dir, group, f"{option}.yaml")
    if path in seen or not os.path.isfile(path):
        return
    seen.add(path)
    node, is_global = _load_yaml(path)
    for sub_group, sub_option in _defaults(node):
        if sub_group == "" and sub_option not in (None, "_self_"):  # same-folder base file
            _file_keys(conf_dir, group, sub_option, prefix, keys, selected, seen)
        elif sub_group and is_global:  # an experiment/search file choosing other groups' options
            selected[sub_group] = sub_option
    _flatten(node, "" if is_global else prefix, keys)


def predicted_keys(overrides: Iterable[str], conf_dir: str, config_name: str = "train") -> set[str]:
    """The config keys the selected options define, read from their YAML files (no composition)."""
    root, _ = _load_yaml(os.path.join(conf_dir, f"{config_name}.yaml"))
    keys: set[str] = set()
    _flatten(root, "", keys)
    selected = {g: o for g, o in _defaults(root) if g}
    for arg in overrides:
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        if os.path.isdir(os.path.join(conf_dir, key)) and not SWEEP_VALUE.search(value):
            selected[key] = value
    seen: set[str] = set()
    for group in ("experiment", "search"):  # global recipes may change other groups' options
        if selected.get(group) not in (None, "null"):
            _file_keys(conf_dir, group, str(selected[group]), "", keys, selected, seen)
    for group, option in selected.items():
        if option not in (None, "null") and group not in ("experiment", "search"):
            keys.add(group)
            _file_keys(conf_dir, group, option, f"{group}.", keys, selected, seen)
    return keys


def _checked_keys(overrides: Iterable[str], conf_dir: str) -> list[tuple[str, str]]:
    """(key, value) of the plain `key.sub=value` overrides whose key must already exist."""
    out = []
    for arg in overrides:
        key, _, value = arg.partition("=")
        if key.startswith(("+", "~")) or "." not in key or "/" in key or key.startswith("hydra."):
            continue
        if os.path.isdir(os.path.join(conf_dir, key)):
            continue
        out.append((key, value))
    return out


def composed_keys(overrides: Sequence[str], conf_dir: str, config_name: str = "train") -> set[str]:
    """Every key of the job config Hydra composes from `overrides` (the slow, exact answer)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(version_base="1.3", config_dir=os.path.abspath(conf_dir), job_name="key_check"):
        cfg = compose(config_name, overrides=list(overrides))
    keys: set[str] = set()
    _flatten(OmegaConf.to_container(cfg, resolve=False), "", keys)
    return keys


def nearest(key: str, keys: Iterable[str]) -> str | None:
    import difflib

    leaves = sorted(keys)
    match = difflib.get_close_matches(key, leaves, n=1, cutoff=0.6)
    if not match:  # a typo in the parent (`optimzer.lr`): compare the last part within any parent
        tail = key.rsplit(".", 1)[-1]
        match = [
            k for k in difflib.get_close_matches(key, [k for k in leaves if k.endswith("." + tail)], n=1, cutoff=0.4)
        ]
    return match[0] if match else None


def unknown_key(argv: Sequence[str], conf_dir: str, config_name: str = "train") -> str | None:
    """The error line for the first override of a key the config does not have, else None."""
    overrides = overrides_of(argv)
    candidates = _checked_keys(overrides, conf_dir)
    if not candidates:
        return None
    predicted = predicted_keys(overrides, conf_dir, config_name)
    suspects = [(k, v) for k, v in candidates if k not in predicted]
    if not suspects:
        return None
    suspect_keys = {k for k, _ in suspects}
    kept = [
        o
        for o in overrides
        if o.partition("=")[0] not in suspect_keys
        and not o.startswith(("hydra.", "hydra/", "+hydra"))
        and not SWEEP_VALUE.search(o.partition("=")[2])
    ]
    try:
        keys = composed_keys(kept, conf_dir, config_name)
    except Exception:  # noqa: BLE001 - another override is bad too: let Hydra report it in full
        return None
    for key, value in suspects:
        if key in keys:
            continue
        near = nearest(key, keys)
        hint = f"did you mean {near}? " if near else ""
        return (
            f"error: {key}={value!r} is not allowed: a key of the config; {hint}"
            f"(`python {app_name()} --cfg job` lists them; +{key}=... adds a new key)"
        )
    return None


# ---------------------------------------------------------------- the sweeper's keys and grammar

SWEEP_CALL = re.compile(r"^\s*[A-Za-z_]\w*\s*\(")  # a value that is a grammar call: interval(...), ...


def _sweeper_selected(overrides: Sequence[str]) -> bool:
    """Whether the command line makes lr-sweep the sweeper (`search=...`, `hydra/sweeper=lr_sweep`)."""
    for arg in overrides:
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        if (key == "search" and value not in ("", "null")) or (key == "hydra/sweeper" and value == "lr_sweep"):
            return True
    return False


def _type_error(value: str, kind: Any) -> str | None:
    """What a `hydra.sweeper.*` value of type `kind` must be, when `value` is not one; else None."""
    import typing

    args = typing.get_args(kind)
    optional = type(None) in args
    if optional:
        kind = next((a for a in args if a is not type(None)), Any)
    if value in ("null", "None") or value.startswith("${") or SWEEP_CALL.match(value):
        return None if optional or kind is Any or value.startswith("${") else "a value, not null"
    checks = {
        int: (r"[+-]?\d+", "an integer"),
        float: (r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?inf|nan", "a number"),
        bool: (r"(?i)true|false", "true or false"),
    }
    if kind in checks and not re.fullmatch(checks[kind][0], value.strip()):
        return checks[kind][1] + (" or null" if optional else "")
    return None


def sweeper_error(argv: Sequence[str]) -> str | None:
    """The error line for the first `hydra.sweeper.*` override that names no setting or has a value
    of the wrong type, or an override whose sweep the grammar cannot parse; else None."""
    import dataclasses
    import difflib
    import typing

    overrides = overrides_of(argv)
    for arg in overrides:
        key, _, value = arg.partition("=")
        if SWEEP_CALL.match(value) and "/" not in key:  # the range grammar, owned by the sweeper's space module
            from sweep.errors import ConfigError
            from sweep.search.space import parse_overrides

            try:
                parse_overrides([arg.lstrip("+~")])
            except ConfigError as err:
                return f"error: {err}"
    if not _sweeper_selected(overrides):
        return None
    from sweep.search.settings import SweeperConf

    kinds = typing.get_type_hints(SweeperConf)
    names = [f.name for f in dataclasses.fields(SweeperConf) if not f.name.startswith("_")]
    for arg in overrides:
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        if not key.startswith("hydra.sweeper."):
            continue
        parts = key[len("hydra.sweeper.") :].split(".")
        if parts[0] not in names:
            near = difflib.get_close_matches(parts[0], names, n=1, cutoff=0.6)
            hint = f"did you mean hydra.sweeper.{near[0]}? " if near else ""
            return (
                f"error: {key}={value!r} is not allowed: a setting of the sweeper; {hint}(docs/sweeper.md lists them)"
            )
        wrong = _type_error(value, kinds[parts[0]]) if len(parts) == 1 else None
        if wrong:
            return f"error: {key}={value!r} is not allowed: {wrong}"
    return None


def check_command_line(argv: Sequence[str], conf_dir: str, config_name: str = "train") -> None:
    """Exit 2 with one line on stderr for an unknown group option or key, a `hydra.sweeper.*`
    setting that does not exist or has the wrong type, or a sweep the grammar cannot parse; return
    when all is well."""
    message = unknown_choice(argv, conf_dir) or sweeper_error(argv) or unknown_key(argv, conf_dir, config_name)
    if message:
        print(message, file=sys.stderr)
        sys.exit(2)
