"""The command line: ``gradcheck run | demo``. A thin argparse layer; ``main(argv) -> int``."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys

from . import fuzz, selftest
from .protocol import ModelError, ProtocolError

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_MODEL = 0, 1, 2, 3

EXIT_CODES = """exit codes:
  0  every row passes
  1  a row fails (or a value is NaN/inf)
  2  usage or configuration error (bad flag value, unimportable --model, not a model); nothing is written
  3  the model raised while being checked (its message is shown)"""


class UsageError(Exception):
    """A bad flag value or configuration: exit code 2, a one-line message, nothing written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit 2, no usage dump
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def seed_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


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


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    from .finite_diff import METHODS

    ref = p.add_argument_group("reference LSTM (ignored with --model)")
    ref.add_argument("--x-dim", type=positive_int, default=50, help="input size (default 50, the write-up's)")
    ref.add_argument("--hidden", type=positive_int, default=100, help="memory cells (default 100)")
    ref.add_argument("--steps", type=positive_int, default=4, help="time steps T (default 4)")
    ref.add_argument("--variant", choices=["simple", "tanh"], default="simple",
                     help="h = s*o (simple, the write-up's) or h = tanh(s)*o")
    ref.add_argument("--loss", choices=["seed", "full"], default="full",
                     help="full: sum_t ||h(t) - y(t)||^2 (default); seed: the write-up's (h(t)[0] - y(t))^2")
    ref.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="default float64")
    p.add_argument("--model", metavar="MODULE:FACTORY",
                   help="check FACTORY() from MODULE (the current directory is on the path) instead")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of every random draw (default 0)")
    chk = p.add_argument_group("check")
    chk.add_argument("--method", choices=list(METHODS), default="central",
                     help="central (default), richardson, complex (models declaring 'complex')")
    chk.add_argument("--eps", type=positive_float, help="base step (default: per method and dtype)")
    chk.add_argument("--rtol", type=positive_float, help="relative tolerance (default: per method and dtype)")
    chk.add_argument("--atol", type=nonneg_float, help="absolute tolerance floor (default 0)")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON to PATH")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradcheck", description="Gradient checking for hand-written BPTT.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser("run", help="check a model's gradients (default: the reference LSTM)",
                         description="Check every parameter entry and every dL(t)/dh(t), dL(t)/ds(t) "
                                     "against numerical derivatives.",
                         epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(run)
    demo = sub.add_parser("demo", help="train the reference on the write-up's example")
    demo.add_argument("--iterations", type=positive_int, default=100)
    demo.add_argument("--init", choices=["writeup", "independent", "rng"], default="writeup",
                      help="writeup: the original's re-seeded blocks (default); independent: one seed, blocks "
                           "drawn one after another; rng: lstm_ref.init_params")
    demo.add_argument("--variant", choices=["simple", "tanh"], default="simple")
    selftest.add_parser(sub)
    fuzz.add_parser(sub)
    return parser


def load_model(spec: str):
    """Import MODULE and call FACTORY from ``MODULE:FACTORY``. Usage errors raise UsageError."""
    module_name, sep, factory_name = spec.partition(":")
    if not sep or not module_name or not factory_name:
        raise UsageError(f"--model: expected MODULE:FACTORY, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(f"--model: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, factory_name, None)
    if factory is None:
        raise UsageError(f"--model: module {module_name!r} has no {factory_name!r}")
    if not callable(factory):
        raise UsageError(f"--model: {module_name}:{factory_name} is not callable")
    try:
        return factory()
    except Exception as exc:
        raise ModelError(f"{module_name}:{factory_name}()", exc) from exc


def make_model(args):
    if args.model:
        return load_model(args.model)
    from .reference import ReferenceLSTM

    return ReferenceLSTM(args.x_dim, args.hidden, args.steps, variant=args.variant, loss=args.loss,
                         seed=args.seed, dtype=args.dtype)


def write_atomic(path: str, data: str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never a truncated file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cmd_run(args) -> int:
    from .check import check
    from .render import text

    if args.json is not None and (not args.json or os.path.isdir(args.json)):
        raise UsageError(f"--json: {args.json!r} is not a file path")
    model = make_model(args)
    report = check(model, method=args.method, eps=args.eps, rtol=args.rtol, atol=args.atol, seed=args.seed)
    print(text(report))
    if args.json:
        write_atomic(args.json, json.dumps(report.to_dict(), indent=2) + "\n")
    return EXIT_OK if report.passed else EXIT_FAIL


def cmd_demo(args) -> int:
    from lstm_ref.demo import train

    for it in train(iterations=args.iterations, init=args.init, variant=args.variant):
        print(it.line())
    return EXIT_OK


COMMANDS = {"run": cmd_run, "demo": cmd_demo}
COMMANDS["selftest"] = selftest.cmd
COMMANDS["fuzz"] = fuzz.cmd


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return COMMANDS[args.command](args)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except ProtocolError as exc:
        print(f"gradcheck: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ModelError as exc:
        print(f"gradcheck: error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except ValueError as exc:  # e.g. a step below the dtype's resolution, a bad reference configuration
        print(f"gradcheck: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gradcheck: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
