"""The check's options: their vocabulary and their validators, shared by ``check()``, the command line and the
pytest plugin (plain Python: importing it costs nothing).

Every validator takes the option's name and value and returns the value in its canonical type, or raises
:class:`~gradcheck.errors.ProtocolError` with a message naming the option, what was expected and what came.
"""

from __future__ import annotations

import argparse
import math
import numbers

from .errors import ProtocolError

METHODS = ("central", "richardson", "complex")
AUTO = "auto"  # central, except complex step for models that declare "complex" when float32 or screening
MODES = ("auto", "full", "screen")  # auto: full when its estimated cost fits the budget, else screen
BUDGET = 10.0  # seconds: the full check's estimated cost up to which mode "auto" checks every entry


def choice(name: str, value, allowed) -> str:
    if value not in allowed:
        raise ProtocolError(f"{name}: expected one of {list(allowed)}, got {value!r}")
    return value


def count(name: str, value, *, lowest: int = 1) -> int:
    """An integer >= ``lowest`` (a bool is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lowest:
        raise ProtocolError(f"{name}: expected an integer >= {lowest}, got {value!r}")
    return int(value)


def number(name: str, value, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (``>= 0`` with ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ProtocolError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ProtocolError(
            f"{name}: expected a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}"
        )
    return v


def optional(validate, name: str, value, **kw):
    """``validate(name, value)``, or None when ``value`` is None."""
    return None if value is None else validate(name, value, **kw)


def count_text(text: str, *, lowest: int = 1) -> int:
    """An option given as text (command line, ini file, environment): an integer >= ``lowest``. The message
    names no option (the caller's parser adds it)."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < lowest:
        raise ProtocolError(f"expected an integer >= {lowest}, got {text!r}")
    return value


def number_text(text: str, *, allow_zero: bool = False) -> float:
    """An option given as text: a finite number > 0 (``>= 0`` with ``allow_zero``)."""
    try:
        value = float(text)
    except ValueError:
        raise ProtocolError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ProtocolError(f"expected a finite number {'>= 0' if allow_zero else '> 0'}, got {text!r}")
    return value


def argtype(parse, **kw):
    """An argparse ``type=`` function from an option parser of this module (``count_text``, ``number_text``):
    its message becomes argparse's one-line usage error (the command line's and pytest's option parsing)."""

    def convert(text: str):
        try:
            return parse(text, **kw)
        except ProtocolError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert
