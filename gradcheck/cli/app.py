"""The command line: ``gradcheck run | demo | selftest | fuzz | report``. A thin argparse layer; ``main(argv) -> int``."""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ModelError, ProtocolError, UsageError, exit_code
from . import fuzz, interrupts, report, run, selftest
from .argtypes import positive_int
from .loading import CONFIG_KEYS


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit 2, no usage dump
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradcheck", description="Gradient checking for hand-written BPTT.")
    parser.add_argument("--version", action="version", version=f"gradcheck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run.add_parser(sub)
    demo = sub.add_parser(
        "demo",
        help="train the reference on the write-up's example",
        description="Train the reference LSTM exactly as the write-up's demo does (100 cells, "
        "x_dim 50, 4 inputs, SGD with learning rate 0.1) and print its trace.",
    )
    demo.add_argument(
        "--iterations", type=positive_int, default=100, help="training iterations (default 100)"
    )
    demo.add_argument(
        "--init",
        choices=["writeup", "independent", "rng"],
        default="writeup",
        help="writeup: the original's re-seeded blocks (default); independent: one seed, blocks "
        "drawn one after another; rng: lstm_ref.init_params",
    )
    demo.add_argument(
        "--variant",
        choices=["simple", "tanh"],
        default="simple",
        help="h = s*o (simple, the write-up's, default) or h = tanh(s)*o",
    )
    selftest.add_parser(sub)
    fuzz.add_parser(sub)
    report.add_parser(sub)
    return parser


_UNSET = object()


def given_on_command_line(argv: list[str] | None, dests) -> set[str]:
    """Which of ``dests`` the ``run`` command line sets explicitly (abbreviations and ``--x=1`` included)."""
    parser = build_parser()
    run_parser = _subparser(parser, "run")
    run_parser.set_defaults(**{d: _UNSET for d in dests})
    ns = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return {d for d in dests if getattr(ns, d) is not _UNSET}


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]


def apply_config(parser: argparse.ArgumentParser, argv: list[str] | None):
    """Re-parse ``run`` with ``[tool.gradcheck]`` and ``GRADCHECK_*`` values as its defaults (CLI wins)."""
    from . import config

    run_parser = _subparser(parser, "run")
    try:
        cfg = config.load(run_parser, cwd=os.getcwd(), environ=os.environ)
    except UsageError as exc:
        raise UsageError(f"gradcheck run: {exc}") from None
    for warning in cfg.warnings:
        print(warning, file=sys.stderr)
    config.apply(run_parser, cfg)
    args = parser.parse_args(argv)
    args.config_sources = {dest: _source_words(src) for dest, src in cfg.sources.items()}
    return args


def _source_words(source: str) -> str:
    return f"environment {source}" if source.startswith("GRADCHECK_") else f"[tool.gradcheck] of {source}"


def cmd_demo(args) -> int:
    from lstm_ref.demo import train

    for it in train(iterations=args.iterations, init=args.init, variant=args.variant):
        print(it.line())
    return EXIT_OK


COMMANDS = {
    "run": run.cmd,
    "demo": cmd_demo,
    "selftest": selftest.cmd,
    "fuzz": fuzz.cmd,
    "report": report.cmd,
}


def main(argv: list[str] | None = None) -> int:
    """Run a command; the exit code. SIGINT and SIGTERM: :mod:`gradcheck.cli.interrupts` (exit 130; ``main()``
    without ``argv``, the program itself, ends the process at once when interrupted instead of returning)."""
    try:
        with interrupts.handled(program=argv is None) as signals:
            try:
                try:
                    return _command(argv)
                except BaseException as exc:
                    if isinstance(exc, KeyboardInterrupt) or signals.received:  # whatever broke on the way
                        return signals.interrupted()
                    return _failed(exc)
            except KeyboardInterrupt:  # arrived while an error was being reported
                return signals.interrupted()
    except KeyboardInterrupt:  # before the handlers were in place
        print(interrupts.MESSAGE, file=sys.stderr)
        return EXIT_INTERRUPTED


def _command(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "run":
        args = apply_config(parser, argv)
        typed = given_on_command_line(argv, CONFIG_KEYS) if args.model else set()
        configured = {k: v for k, v in args.config_sources.items() if k in CONFIG_KEYS}
        args.model_config_given = (
            {**configured, **{k: "the command line" for k in typed}} if args.model else {}
        )
    return COMMANDS[args.command](args)


def _failed(exc: BaseException) -> int:
    """The exit code of a command that raised, after a one-line message (anything unexpected propagates)."""
    if isinstance(exc, SystemExit):  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if isinstance(exc, UsageError):
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, ProtocolError | ModelError):
        print(f"gradcheck: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    raise exc
