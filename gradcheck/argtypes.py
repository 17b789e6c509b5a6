"""Validators of command-line values (argparse ``type=`` functions): a bad value is a one-line usage error."""

from __future__ import annotations

import argparse
import math


def _int_at_least(text: str, lowest: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {lowest}, got {text!r}") from None
    if v < lowest:
        raise argparse.ArgumentTypeError(f"expected an integer >= {lowest}, got {text!r}")
    return v


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def seed_int(text: str) -> int:
    return _int_at_least(text, 0)


def _float(text: str, *, allow_zero: bool) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise argparse.ArgumentTypeError(
            f"expected a finite number {'>= 0' if allow_zero else '> 0'}, got {text!r}")
    return v


def positive_float(text: str) -> float:
    return _float(text, allow_zero=False)


def nonneg_float(text: str) -> float:
    return _float(text, allow_zero=True)
