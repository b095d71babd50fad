"""The user's own code named in a config (`model._target_`, `data._target_`, `task.loss._target_`):
import it by path and check the configured keywords against its signature, so a wrong path or a
wrong argument is a one-line ConfigError naming the key before anything runs."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from sweep.errors import ConfigError, check


def import_object(key: str, path: Any) -> Any:
    """The object an import path names (`pkg.module.name`, nested attributes allowed); a path that
    does not import is a ConfigError naming `key`. Errors raised inside the user's module go up."""
    check(
        isinstance(path, str) and bool(path) and path != "???" and "." in str(path),
        key,
        path,
        "an import path such as mypackage.module.name (installed, or on PYTHONPATH)",
    )
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and (module_name == err.name or module_name.startswith(err.name + ".")):
                continue  # this prefix is not a module; try a shorter one
            raise
        for i, attr in enumerate(parts[cut:]):
            if not hasattr(obj, attr):
                raise ConfigError(
                    key, path, f"an importable name; module {module_name} has no {'.'.join(parts[cut : cut + i + 1])}"
                ) from None
            obj = getattr(obj, attr)
        return obj
    raise ConfigError(key, path, f"an importable name; no module {parts[0]} is installed or on PYTHONPATH")


def check_arguments(key: str, target: object, fn: Any, kwargs: Mapping[str, Any]) -> None:
    """A ConfigError, before anything runs, when `fn` (imported from the configured `target`) does not
    accept the configured keywords."""
    import inspect

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        raise ConfigError(
            key, target, f"a callable that accepts the configured arguments {sorted(kwargs)}; {err}"
        ) from None
