"""``gradcheck run``'s speed flags: --mode, --directions, --sample, --batch, --serial, --workers, --scheduler.

``add_speed_arguments(parser)`` adds them; ``speed_options(args)`` turns the parsed flags into keyword
arguments of :func:`gradcheck.check` (validating combinations; bad values raise :class:`UsageError`, exit 2).
"""

from __future__ import annotations

import argparse

from ..errors import UsageError
from ..fast.executors import DASK_HINT, dask_available
from ..options import BUDGET, MODES
from .argtypes import positive_float, positive_int


def _address(text: str) -> str:
    if not text.strip() or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(
            f"expected a scheduler address such as tcp://host:8786, got {text!r}"
        )
    return text


def add_speed_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "speed (the numbers agree to rounding whatever these are; --mode screen and --sample check less)"
    )
    g.add_argument(
        "--mode",
        choices=list(MODES),
        default="auto",
        help="auto (default): full when its estimated cost fits --budget, else screen; full: every entry; "
        "screen: K random directions per block and per (state, t), failing or near-threshold rows "
        "localised or re-checked in full",
    )
    g.add_argument(
        "--budget",
        type=positive_float,
        metavar="SECONDS",
        default=BUDGET,
        help=f"the estimated full-check cost up to which --mode auto checks every entry (default {BUDGET:g})",
    )
    g.add_argument(
        "--directions",
        type=positive_int,
        default=16,
        metavar="K",
        help="directions per row when screening (default 16)",
    )
    g.add_argument(
        "--sample",
        type=positive_int,
        metavar="N",
        help="check only N random entries per row (the report states the coverage)",
    )
    g.add_argument(
        "--batch",
        type=positive_int,
        metavar="K",
        help="perturbations per batched call (default: automatic from the sizes)",
    )
    g.add_argument(
        "--serial",
        action="store_true",
        help="one loss call per perturbation even if the model declares 'batched' (the slow path)",
    )
    g.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="evaluate chunks in N worker processes (default: in this process)",
    )
    g.add_argument(
        "--scheduler",
        type=_address,
        metavar="ADDRESS",
        help=f"evaluate chunks on a dask.distributed cluster (tcp://host:8786; {DASK_HINT})",
    )


def speed_options(args) -> dict:
    """Keyword arguments of :func:`gradcheck.check` from the parsed flags."""
    if args.workers is not None and args.scheduler is not None:
        raise UsageError(
            "gradcheck run: --workers and --scheduler exclude each other (see gradcheck run --help)"
        )
    if args.scheduler is not None and not dask_available():
        raise UsageError(f"gradcheck run: --scheduler needs dask.distributed: {DASK_HINT}")
    if args.directions != 16 and args.mode == "full":
        raise UsageError("gradcheck run: --directions only applies when screening (--mode screen or auto)")
    return {
        "mode": args.mode,
        "budget": args.budget,
        "directions": args.directions,
        "sample": args.sample,
        "batch": args.batch,
        "batched": False if args.serial else None,
        "workers": args.workers,
        "scheduler": args.scheduler,
    }
