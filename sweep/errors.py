"""One error type for bad input, so every entry point can print it as one line, and the name of the
app that was run, so the line can say what to run (`python src/train.py --cfg job`)."""

import os
import sys


class ConfigError(ValueError):
    """A setting has a value that is not allowed: names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        super().__init__(f"{key}={value!r} is not allowed: {allowed}")
        self.key, self.value, self.allowed = key, value, allowed


def check(ok: bool, key: str, value: object, allowed: str) -> None:
    """Raise ConfigError unless `ok`."""
    if not ok:
        raise ConfigError(key, value, allowed)


def app_name() -> str:
    """The app that was run, as its user would type it from here (`src/train.py`): sys.argv[0]
    relative to the working directory; `train.py` when there is no script."""
    script = sys.argv[0] if sys.argv else ""
    return os.path.relpath(script) if script and os.path.isfile(script) else "train.py"
