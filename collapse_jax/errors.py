"""Errors the launcher turns into one clear line (no traceback from inside JAX)."""


class ConfigError(ValueError):
    """A config field is out of range or inconsistent; the message names the field."""


class DataError(ValueError):
    """A data file is missing or corrupt; the message names the file and what was expected."""


class CheckpointError(RuntimeError):
    """A workdir or checkpoint does not belong to this config."""


def require(ok: bool, field: str, expected: str, got=None) -> None:
    """Raise ``ConfigError("field: expected ..., got ...")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{field}: expected {expected}, got {got!r}")


def field(cfg, path: str):
    """The value of ``cfg.<path>`` for a dotted ``path`` such as ``"gaussian.std"``."""
    value = cfg
    for part in path.split("."):
        value = value[part]
    return value


def check(cfg, path: str, ok, expected: str):
    """Return ``cfg.<path>``; raise ``ConfigError("path: expected ..., got value")`` unless
    ``ok(value)``. The name in the message is the path read, so the two cannot drift apart."""
    value = field(cfg, path)
    require(bool(ok(value)), path, expected, value)
    return value
