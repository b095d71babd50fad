"""One error type for bad input, so every entry point can print it as one line."""


class ConfigError(ValueError):
    """A setting has a value that is not allowed: names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        super().__init__(f"{key}={value!r} is not allowed: {allowed}")
        self.key, self.value, self.allowed = key, value, allowed


def check(ok: bool, key: str, value: object, allowed: str) -> None:
    """Raise ConfigError unless `ok`."""
    if not ok:
        raise ConfigError(key, value, allowed)
