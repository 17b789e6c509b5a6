"""Defaults for ``gradcheck run`` from ``[tool.gradcheck]`` in the nearest pyproject.toml and from the environment.

Precedence: command line > environment > pyproject.toml > built-in defaults.

- The keys are the ``run`` command's long options, with dashes or underscores (``x-dim`` or ``x_dim``,
  ``no-reports = true``); every option of the run parser is configurable, including ones added later, because
  the accepted keys and types are read from the parser itself. Relative paths (``PATH``/``DIR`` options) are
  taken relative to the pyproject.toml's directory.
- The environment variable of an option is ``GRADCHECK_`` + its dest in upper case (``GRADCHECK_SEED``,
  ``GRADCHECK_X_DIM``, ``GRADCHECK_NO_REPORTS=1``); values are read like command-line text, empty means unset.
- pyproject.toml is looked up from the current directory upwards; the first one found is used (with or without a
  ``[tool.gradcheck]`` table).
- An unknown key or a value of the wrong type is a :class:`~gradcheck.errors.UsageError` (exit code 2) that names the key and
  suggests the closest valid one.
"""

from __future__ import annotations

import argparse
import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

ENV_PREFIX = "GRADCHECK_"
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})
PATH_METAVARS = frozenset({"PATH", "DIR", "FILE"})


@dataclass
class Config:
    """What was found: ``values`` (dest -> typed value, env over pyproject), where each came from, warnings."""

    values: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    pyproject: Path | None = None
    warnings: list = field(default_factory=list)


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The configurable options of ``parser``: canonical key (long option without ``--``) -> action."""
    out = {}
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        longs = [s for s in action.option_strings if s.startswith("--")]
        if longs:
            out[longs[0][2:]] = action
    return out


def _norm(key: str) -> str:
    return key.replace("-", "_").lower()


def find_pyproject(start: str | os.PathLike) -> Path | None:
    """The nearest pyproject.toml in ``start`` or one of its parents."""
    here = Path(start).resolve()
    for d in (here, *here.parents):
        candidate = d / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load(parser: argparse.ArgumentParser, *, cwd: str | os.PathLike, environ) -> Config:
    """Read pyproject.toml (nearest to ``cwd``) and ``environ`` against ``parser``'s options."""
    opts = options(parser)
    by_norm = {}
    for key, action in opts.items():
        by_norm[_norm(key)] = (key, action)
        by_norm.setdefault(_norm(action.dest), (key, action))
    cfg = Config()
    path = find_pyproject(cwd)
    if path is not None:
        cfg.pyproject = path
        table = _tool_table(path)
        for raw_key, value in table.items():
            found = by_norm.get(_norm(raw_key))
            if found is None:
                raise UsageError(f"{path} [tool.gradcheck]: unknown key {raw_key!r}{_suggest(raw_key, opts)}")
            key, action = found
            where = f"{path} [tool.gradcheck] {raw_key}"
            v = _from_toml(action, value, where)
            if action.metavar in PATH_METAVARS and isinstance(v, str) and v and not os.path.isabs(v):
                v = os.path.join(path.parent, v)
            cfg.values[action.dest] = v
            cfg.sources[action.dest] = str(path)
    by_env = {ENV_PREFIX + a.dest.upper(): a for a in opts.values()}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        text = environ[name]
        action = by_env.get(name)
        if action is None:
            hint = difflib.get_close_matches(name, list(by_env), n=1)
            cfg.warnings.append(
                f"gradcheck: warning: ignoring {name} (not a run option"
                + (f"; did you mean {hint[0]}?)" if hint else ")")
            )
            continue
        if text == "":
            continue
        cfg.values[action.dest] = _from_text(action, text, f"environment {name}={text!r}")
        cfg.sources[action.dest] = name
    return cfg


def _tool_table(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    tool = data.get("tool", {})
    table = tool.get("gradcheck", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise UsageError(f"{path}: tool.gradcheck must be a table ([tool.gradcheck]), got {_tname(table)}")
    return table


def _suggest(key: str, opts: dict) -> str:
    valid = sorted(opts)
    hint = difflib.get_close_matches(key.replace("_", "-").lower(), valid, n=1, cutoff=0.5)
    if hint:
        return f" (did you mean {hint[0]!r}?)"
    return f" (valid keys: {', '.join(valid)})"


def _tname(v) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(v), type(v).__name__)


def kind(action: argparse.Action) -> str:
    """What TOML type an option takes: "flag" (bool), "int", "float" or "str" (choices are checked apart)."""
    if action.nargs == 0:
        return "flag"
    t = action.type
    if t is None or t is str:
        return "str"
    if t is int:
        return "int"
    if t is float:
        return "float"
    try:
        probe = t("1")
    except Exception:
        return "str"
    if isinstance(probe, bool):
        return "str"
    if isinstance(probe, int):
        return "int"
    if isinstance(probe, float):
        return "float"
    return "str"


def _convert(action: argparse.Action, text: str, where: str):
    try:
        v = action.type(text) if action.type is not None else text
    except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
        msg = str(exc) or f"invalid value {text!r}"
        raise UsageError(f"{where}: {msg}") from None
    if action.choices is not None and v not in action.choices:
        raise UsageError(f"{where}: expected one of {', '.join(map(str, action.choices))}, got {text!r}")
    return v


def _from_toml(action: argparse.Action, value, where: str):
    k = kind(action)
    if k == "flag":
        if not isinstance(value, bool):
            raise UsageError(f"{where}: expected true or false, got {value!r} ({_tname(value)})")
        return action.const if value else action.default
    if isinstance(action.nargs, int) or action.nargs in ("+", "*"):
        if not isinstance(value, list):
            raise UsageError(f"{where}: expected an array, got {value!r} ({_tname(value)})")
        return [_scalar(action, k, item, where) for item in value]
    return _scalar(action, k, value, where)


def _scalar(action, k: str, value, where: str):
    """One TOML value of the option's type (``type(...) is``: a TOML boolean is not a number)."""
    if k == "int" and type(value) is int:
        return _convert(action, str(value), where)
    if k == "float" and type(value) in (int, float):
        return _convert(action, repr(float(value)), where)
    if isinstance(value, str):
        return _convert(action, value, where) if k == "str" else _string_for_number(action, value, k, where)
    raise UsageError(f"{where}: expected {_expected(action, k)}, got {value!r} ({_tname(value)})")


def _string_for_number(action, value: str, k: str, where: str):
    """A string where a number is expected is a wrong type, unless the option also takes words (e.g. "auto")."""
    try:
        v = action.type(value)
    except Exception:
        v = None
    if v is not None and not isinstance(v, (int, float)):
        return _convert(action, value, where)
    raise UsageError(f"{where}: expected {_expected(action, k)}, got {value!r} ({_tname(value)})")


def _expected(action, k: str) -> str:
    if action.choices is not None:
        return "one of " + ", ".join(map(str, action.choices))
    return {"int": "an integer", "float": "a number", "str": "a string", "flag": "true or false"}[k]


def _from_text(action: argparse.Action, text: str, where: str):
    if kind(action) == "flag":
        low = text.strip().lower()
        if low in TRUE:
            return action.const
        if low in FALSE:
            return action.default
        raise UsageError(f"{where}: expected 1/0, true/false, yes/no or on/off")
    if isinstance(action.nargs, int) or action.nargs in ("+", "*"):
        return [_convert(action, part, where) for part in text.split()]
    return _convert(action, text, where)


def apply(parser: argparse.ArgumentParser, cfg: Config) -> None:
    """Make the configured values ``parser``'s defaults (so anything given on the command line still wins)."""
    if cfg.values:
        parser.set_defaults(**cfg.values)
