"""What every launcher shares: bad input (flags, config, data, checkpoints) is one ``error:`` line
on stderr and exit code 2, never a traceback."""

import json
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from absl import flags

from collapse_jax.errors import CheckpointError, ConfigError, DataError

# What a run can raise for its input (as opposed to a bug, which keeps its traceback).
INPUT_ERRORS = (ConfigError, DataError, CheckpointError, FloatingPointError)
# Where the output contract (config.json, metrics.jsonl, checkpoints/, figures/) is described.
CONTRACT = "docs/output-contract.md"


def fail(message: str) -> None:
    """Print ``error: message`` (one line) and exit with code 2."""
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    sys.exit(2)


def _flag_value(argv: list[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
        if a == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _unknown_field(argv: list[str], e: Exception) -> str | None:
    """``--config.a.b: no such field ...`` for ml_collections' KeyError/AttributeError, or None."""
    lines = [ln.strip().strip("'\"\\") for ln in str(e).replace("\\n", "\n").splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        return None
    key = lines[0].strip("'\"\\")
    hint = next((ln for ln in lines[1:] if ln.startswith("Did you mean")), "")
    override = next(
        (
            a.split("=", 1)[0]
            for a in argv
            if a.startswith("--config.") and a.split("=", 1)[0].split(".")[-1] == key
        ),
        None,
    )
    if override is None:
        return None
    hint = re.sub(r'^Did you mean "(.*)" instead of ".*"\?$', r"did you mean \1?", hint)
    return f"{override}: the config has no field {key!r}" + (f"; {hint}" if hint else "")


def _last_line(e: BaseException) -> str:
    """The informative line of a message that may embed a traceback (ml_collections does)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    if any(ln.startswith("Traceback") for ln in lines):
        return re.sub(r"^[\w.]*(Error|Exception): ", "", lines[-1])
    return " ".join(lines)


def _leaf_paths(node, prefix: str = "") -> list[str]:
    out = []
    for k, v in node.items():
        if hasattr(v, "items"):
            out += _leaf_paths(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out


def _config_field_hint(argv: list[str], config: str | None, message: str) -> str:
    """``; did you mean --config.FIELD=VALUE?`` for an unknown flag that names a config field."""
    m = re.search(r"Unknown command line flag '([\w.-]+)'", message)
    if not (m and config and "config" in flags.FLAGS):
        return ""
    name = m.group(1)
    try:
        cfg = flags.FLAGS["config"].parser.parse(config)  # the config flag's own loader
        paths = [p for p in _leaf_paths(cfg) if p == name or p.endswith("." + name)]
    except Exception:  # a hint only: the config's own error comes with the run
        return ""
    if not paths:
        return ""
    value = next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), None)
    hints = [f"--config.{p}" + (f"={value}" if value is not None else "") for p in paths]
    return f"; did you mean {' or '.join(hints)}?"


def parse_flags(argv: list[str]) -> list[str]:
    """``app.run``'s ``flags_parser``: absl's parsing, with every failure one ``error:`` line.

    Covers a missing config file, an unknown variant (the config's ``get_config`` raises), an
    unknown field (ml_collections' did-you-mean kept) and a value of the wrong type.
    """
    config = _flag_value(argv, "config")
    if config:
        path = config.split(":", 1)[0]
        if not os.path.isfile(path):
            fail(f"--config={config}: no such config file {path!r} (from {os.getcwd()})")
    try:
        rest = flags.FLAGS(argv)
        if "config" in flags.FLAGS:
            flags.FLAGS["config"].value  # noqa: B018 (a config that failed to load raises here)
    except flags.Error as e:
        where = f"--config={config}: " if config and "Traceback" in str(e) else ""
        hint = _config_field_hint(argv, config, str(e))
        line = _last_line(e)
        if hint:  # absl's own guess (another absl flag) is not what was meant
            line = re.sub(r"\. Did you mean: .*$", "", line)
        fail(where + line + hint)
    except (KeyError, AttributeError) as e:
        fail(_unknown_field(argv, e) or _last_line(e))
    except (ValueError, TypeError, OSError, ImportError) as e:
        fail(_last_line(e))
    return rest


def run_or_fail(fn: Callable, *args, prefix: str = "", **kwargs):
    """``fn(*args, **kwargs)``; an input error (``INPUT_ERRORS``) becomes one ``error:`` line."""
    try:
        return fn(*args, **kwargs)
    except INPUT_ERRORS as e:
        fail(prefix + str(e))


INTERRUPTED = 130  # the shell's exit code for a process ended by SIGINT (128 + 2)


def last_generation(workdir) -> int | None:
    """The last generation a (possibly interrupted) run recorded, or None before generation 0.

    ``metrics/progress.json`` commits the recorded generations; runs without it (older layouts)
    are read from their checkpoint steps."""
    workdir = Path(workdir)
    try:
        progress = json.loads((workdir / "metrics" / "progress.json").read_text())
        done = int(progress["per_seed"])
        return done - 1 if done > 0 else None
    except (OSError, ValueError, KeyError, TypeError):
        pass
    steps = [
        int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit() and p.is_dir()
    ]
    return max(steps) if steps else None


def exit_now(code: int) -> NoReturn:
    """``os._exit``: no interpreter shutdown (tests replace it to stay alive)."""
    os._exit(code)


def interrupted(workdir, where: str = "") -> NoReturn:
    """After Ctrl-C: one line saying how far the run got and how to go on; exit code 130.

    Exits at once (``os._exit``): a background save the interrupt abandoned (Orbax's threads)
    can keep the interpreter's shutdown waiting forever. What it had not committed is redone on
    resume; everything committed stays.
    """
    g = last_generation(workdir)
    done = f"after generation {g}" if g is not None else "before generation 0 was recorded"
    print(f"interrupted {where}{done}; rerun the same command to resume", file=sys.stderr)
    for handler in logging.getLogger().handlers:  # absl's handler among them
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    exit_now(INTERRUPTED)
