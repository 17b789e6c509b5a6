"""Validators of command-line values (argparse ``type=`` functions): the option parsers of
:mod:`gradcheck.options`, with their message as argparse's one-line usage error."""

from __future__ import annotations

from ..options import argtype, count_text, number_text

positive_int = argtype(count_text)
seed_int = argtype(count_text, lowest=0)
positive_float = argtype(number_text)
nonneg_float = argtype(number_text, allow_zero=True)
