"""``gradcheck selftest``: the command line of :mod:`gradcheck.lstm.selftest`."""

from __future__ import annotations

import argparse
import json
import math
import os

from ..errors import EXIT_FAIL, EXIT_OK, UsageError
from ..lstm import MIN_STEPS
from ..lstm.selftest import DEFAULT_METHOD, SelftestConfig, markdown, run_selftest, text
from ..options import METHODS
from ..output.files import write_all
from .argtypes import positive_int, seed_int

DESCRIPTION = """\
Check the checker. The reference LSTM must pass, and each catalogued bug of its backward pass (a mutant) must be
caught with the expected rows named: every row the bug changes fails (in float32, or with --lenient: at least
the rows it changes directly), every other row passes, and the first divergence in time is the one derived from
the equations. The problem: the reference LSTM with x_dim 3, hidden 4, T 5, the full loss, seed 0, nonzero
initial states. float64 uses central differences (like gradcheck run); float32 uses complex step (a float32
central difference cannot see a 0.1% error in one block). It also trains the write-up's demo with the famous
wrong "fix" (dropping dL(t+1)/ds(t)): its loss falls lower while the checker rejects its gradient."""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "selftest",
        help="check the checker: the reference passes, every catalogued BPTT bug is caught",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 reference passes and every mutant caught with the expected rows; 1 otherwise; "
        "2 usage error",
    )
    p.add_argument("--x-dim", type=positive_int, default=3, help="input size (default 3)")
    p.add_argument("--hidden", type=positive_int, default=4, help="memory cells (default 4)")
    p.add_argument("--steps", type=positive_int, default=5, help=f"time steps T >= {MIN_STEPS} (default 5)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the problem (default 0)")
    p.add_argument("--dtype", choices=list(DEFAULT_METHOD), default="float64", help="default float64")
    p.add_argument(
        "--method",
        choices=list(METHODS),
        help="default: central in float64 (like gradcheck run), complex in float32",
    )
    p.add_argument(
        "--mutant",
        action="append",
        metavar="NAME",
        help="run only this mutant (repeatable; default: the whole catalog; names: see the report)",
    )
    p.add_argument(
        "--lenient",
        action="store_true",
        help="require only the rows each bug writes directly, also in float64 (for configurations "
        "other than the default, e.g. hidden 1, where an error carried back in time can shrink "
        "below the float64 tolerance)",
    )
    p.add_argument("--no-demo", action="store_true", help="skip training the demo with the wrong 'fix'")
    p.add_argument(
        "--report-dir",
        default="reports",
        metavar="DIR",
        help="write selftest.json, selftest.md and selftest.html here (default reports/)",
    )
    p.add_argument("--no-reports", action="store_true", help="write no report files")


def cmd(args) -> int:
    from ..lstm.mutants import BY_NAME
    from ..output.selftest_html import selftest_page

    if args.steps < MIN_STEPS:
        raise UsageError(
            f"gradcheck selftest: --steps must be >= {MIN_STEPS} (the expected rows need two "
            f"steps behind each first divergence), got {args.steps}"
        )
    if not args.no_reports and (not args.report_dir or _is_file(args.report_dir)):
        raise UsageError(f"gradcheck selftest: --report-dir {args.report_dir!r} is not a directory path")
    unknown = [n for n in args.mutant or [] if n not in BY_NAME]
    if unknown:
        raise UsageError(
            f"gradcheck selftest: --mutant: unknown {', '.join(map(repr, unknown))}; the catalog has "
            f"{', '.join(BY_NAME)}"
        )
    config = SelftestConfig(
        args.x_dim, args.hidden, args.steps, args.seed, "full", args.dtype, args.method, args.lenient
    )
    result = run_selftest(config, names=args.mutant, demo=not args.no_demo)
    print(text(result))
    if not args.no_reports:
        data = json.dumps(result.to_dict(), indent=2, default=_json_default) + "\n"
        write_all(
            {
                os.path.join(args.report_dir, "selftest.json"): data,
                os.path.join(args.report_dir, "selftest.md"): markdown(result),
                os.path.join(args.report_dir, "selftest.html"): selftest_page(json.loads(data)),
            }
        )
    return EXIT_OK if result.passed else EXIT_FAIL


def _is_file(path: str) -> bool:
    return os.path.exists(path) and not os.path.isdir(path)


def _json_default(x):
    if hasattr(x, "item"):  # a numpy scalar
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    raise TypeError(f"not JSON serializable: {type(x).__name__}")
