"""Command-line checks that must run before Hydra composes anything.

Hydra reports an unknown config-group option (`schedule=foo`) as a multi-line composition error;
this turns it into the one-line error every other bad setting gets: key, value, what is allowed.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence


def group_options(conf_dir: str, group: str) -> list[str]:
    folder = os.path.join(conf_dir, group)
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml") and not f.startswith("_"))


def unknown_choice(argv: Sequence[str], conf_dir: str) -> str | None:
    """The error line for the first `group=option` whose option file does not exist, else None."""
    for arg in argv:
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


def check_choices(argv: Sequence[str], conf_dir: str) -> None:
    message = unknown_choice(argv, conf_dir)
    if message:
        print(message, file=sys.stderr)
        sys.exit(2)
