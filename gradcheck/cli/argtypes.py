"""Validators of command-line values (argparse ``type=`` functions): the option parsers of
:mod:`gradcheck.options`, with their message as argparse's one-line usage error."""

from __future__ import annotations

import argparse

from ..errors import ProtocolError
from ..options import count_text, number_text


def argtype(parse, **kw):
    """An argparse ``type=`` function from an option parser of :mod:`gradcheck.options`."""

    def convert(text: str):
        try:
            return parse(text, **kw)
        except ProtocolError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


positive_int = argtype(count_text)
seed_int = argtype(count_text, lowest=0)
positive_float = argtype(number_text)
nonneg_float = argtype(number_text, allow_zero=True)
