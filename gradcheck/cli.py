"""The command line: ``gradcheck run | demo``. A thin argparse layer; ``main(argv) -> int``."""

from __future__ import annotations

import argparse
import os
import sys

from . import fuzz, selftest
from .argtypes import nonneg_float, positive_float, positive_int, seed_int
from .protocol import ModelError, ProtocolError
from .speed import add_speed_arguments, speed_options

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_MODEL = 0, 1, 2, 3

EXIT_CODES = """exit codes:
  0  every row passes
  1  a row fails (or a value is NaN/inf)
  2  usage or configuration error (bad flag value, unimportable --model, not a model, bad [tool.gradcheck]
     key or GRADCHECK_* value, unwritable report path); nothing is written
  3  the model raised while being checked (its message is shown); nothing is written

reports: reports/gradcheck.json, .xml (JUnit) and .md by default (--report-dir, --no-reports, --json/--junit/
--markdown PATH). configuration: [tool.gradcheck] in the nearest pyproject.toml (keys = long option names) and
GRADCHECK_<OPTION> environment variables; precedence: command line > environment > pyproject.toml > defaults."""


class UsageError(Exception):
    """A bad flag value or configuration: exit code 2, a one-line message, nothing written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit 2, no usage dump
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    from .finite_diff import METHODS

    ref = p.add_argument_group("reference LSTM (with --model: passed to the factory when given)")
    ref.add_argument("--x-dim", type=positive_int, default=50, help="input size (default 50, the write-up's)")
    ref.add_argument("--hidden", type=positive_int, default=100, help="memory cells (default 100)")
    ref.add_argument("--steps", type=positive_int, default=4, help="time steps T (default 4)")
    ref.add_argument("--variant", choices=["simple", "tanh"], default="simple",
                     help="h = s*o (simple, the write-up's) or h = tanh(s)*o")
    ref.add_argument("--loss", choices=["seed", "full"], default="full",
                     help="full: sum_t ||h(t) - y(t)||^2 (default); seed: the write-up's (h(t)[0] - y(t))^2")
    ref.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="default float64")
    p.add_argument("--model", metavar="MODULE:FACTORY",
                   help="check FACTORY() from MODULE (the current directory is on the path) instead; size flags "
                        "given with it (--x-dim --hidden --steps --variant --loss, and --seed if accepted) are "
                        "passed to FACTORY as keyword arguments")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of every random draw (default 0)")
    chk = p.add_argument_group("check")
    chk.add_argument("--method", choices=["auto", *METHODS], default="auto",
                     help="auto (default: central; complex step for models declaring 'complex' that are float32 "
                          "or screened with --mode screen), central, richardson, complex")
    chk.add_argument("--eps", type=positive_float, help="base step (default: per method and dtype)")
    chk.add_argument("--rtol", type=positive_float, help="relative tolerance (default: per method and dtype)")
    chk.add_argument("--atol", type=nonneg_float, help="absolute tolerance floor (default 0)")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON to PATH")


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    """The output, report-file and CI flags of ``run`` (``--json PATH`` is in :func:`add_run_arguments`)."""
    out = p.add_argument_group("output and reports")
    out.add_argument("--format", choices=["table", "markdown", "json"], default="table",
                     help="what goes to stdout (default table); with json, the human text goes to stderr")
    out.add_argument("--report-dir", metavar="DIR", default="reports",
                     help="directory of gradcheck.json, gradcheck.xml, gradcheck.md (default: reports)")
    out.add_argument("--no-reports", action="store_true",
                     help="do not write the report files of --report-dir (explicit --json/--junit/--markdown "
                          "paths are still written)")
    out.add_argument("--junit", metavar="PATH", help="write the JUnit XML report to PATH")
    out.add_argument("--markdown", metavar="PATH", help="write the Markdown report to PATH")
    out.add_argument("-q", "--quiet", action="store_true",
                     help="no progress line and no notes on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradcheck", description="Gradient checking for hand-written BPTT.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser("run", help="check a model's gradients (default: the reference LSTM)",
                         description="Check every parameter entry and every dL(t)/dh(t), dL(t)/ds(t) "
                                     "against numerical derivatives.",
                         epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(run)
    add_report_arguments(run)
    add_speed_arguments(run)
    demo = sub.add_parser("demo", help="train the reference on the write-up's example")
    demo.add_argument("--iterations", type=positive_int, default=100)
    demo.add_argument("--init", choices=["writeup", "independent", "rng"], default="writeup",
                      help="writeup: the original's re-seeded blocks (default); independent: one seed, blocks "
                           "drawn one after another; rng: lstm_ref.init_params")
    demo.add_argument("--variant", choices=["simple", "tanh"], default="simple")
    selftest.add_parser(sub)
    fuzz.add_parser(sub)
    return parser


MODEL_CONFIG = {"x_dim": "--x-dim", "hidden": "--hidden", "steps": "--steps", "variant": "--variant",
                "loss": "--loss", "seed": "--seed"}
_UNSET = object()


def given_on_command_line(argv: list[str] | None, dests) -> set[str]:
    """Which of ``dests`` the ``run`` command line sets explicitly (abbreviations and ``--x=1`` included)."""
    parser = build_parser()
    run = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    run.set_defaults(**{d: _UNSET for d in dests})
    ns = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return {d for d in dests if getattr(ns, d) is not _UNSET}


def load_model(spec: str, config: dict | None = None):
    """``MODULE:FACTORY`` -> ``FACTORY(**config)`` (no arguments without config). Usage errors: UsageError."""
    from .loading import ConfigError, accepted_keys, build_model, load_factory

    try:
        factory = load_factory(spec)
        config = dict(config or {})
        if "seed" in config and "seed" not in accepted_keys(factory):
            del config["seed"]              # --seed is also the report's seed: forwarded only when accepted
        return build_model(factory, config, name=spec)
    except ConfigError as exc:
        raise UsageError(f"gradcheck run: {exc}") from None


def make_model(args):
    """The model to check: ``--model`` (with the size flags given on the command line) or the reference."""
    if args.model:
        given = getattr(args, "model_config_given", set())
        return load_model(args.model, {k: getattr(args, k) for k in MODEL_CONFIG if k in given})
    from .reference import ReferenceLSTM

    return ReferenceLSTM(args.x_dim, args.hidden, args.steps, variant=args.variant, loss=args.loss,
                         seed=args.seed, dtype=args.dtype)


def cmd_run(args) -> int:
    """Check, then write the report files (all or none), print the chosen format, feed CI; exit 0/1."""
    from . import ci, render, reports
    from .checker import check

    try:
        paths = reports.report_paths(report_dir=args.report_dir, no_reports=args.no_reports, json=args.json,
                                     junit=args.junit, markdown=args.markdown)
    except reports.ReportPathError as exc:
        raise UsageError(f"gradcheck run: {exc}") from None
    model = make_model(args)
    progress = ci.Progress(sys.stderr) if ci.progress_enabled(sys.stderr, quiet=args.quiet) else None
    try:
        report = check(model, method=args.method, eps=args.eps, rtol=args.rtol, atol=args.atol, seed=args.seed,
                       progress=progress, **speed_options(args))
    finally:
        if progress is not None:
            progress.close()
    code = EXIT_OK if report.passed else EXIT_FAIL
    rendered = {"json": render.json_text, "junit": render.junit, "markdown": render.markdown}
    texts = {kind: rendered[kind](report) for kind in {*paths, args.format} & rendered.keys()}
    try:
        reports.write_all({path: texts[kind] for kind, path in paths.items()})
    except OSError as exc:
        raise UsageError(f"gradcheck run: cannot write the reports: {exc}") from None
    if args.format == "json":
        _emit(texts["json"].rstrip("\n"), sys.stdout)
        _emit(render.text(report, color=render.color_enabled(sys.stderr, os.environ)), sys.stderr)
    elif args.format == "markdown":
        _emit(texts["markdown"].rstrip("\n"), sys.stdout)
    else:
        _emit(render.text(report, color=render.color_enabled(sys.stdout, os.environ)), sys.stdout)
    # Workflow commands go to stdout beside the table; stdout that carries a report (json, markdown) stays clean.
    ci.github(report, environ=os.environ, annotation_stream=sys.stdout if args.format == "table" else sys.stderr,
              warn=lambda m: print(m, file=sys.stderr), report_hint=paths.get("markdown") or paths.get("json"))
    if paths and not args.quiet:
        print(f"gradcheck: reports written: {', '.join(paths.values())}", file=sys.stderr)
    return code


def _emit(text: str, stream) -> None:
    """Print, tolerating a closed pipe (``gradcheck run | head``): the reports are already written."""
    try:
        print(text, file=stream)
        stream.flush()
    except BrokenPipeError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError):
            pass


def apply_config(parser: argparse.ArgumentParser, argv: list[str] | None):
    """Re-parse ``run`` with ``[tool.gradcheck]`` and ``GRADCHECK_*`` values as its defaults (CLI wins)."""
    from . import config

    run = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    try:
        cfg = config.load(run, cwd=os.getcwd(), environ=os.environ)
    except config.ConfigError as exc:
        raise UsageError(f"gradcheck run: {exc}") from None
    for warning in cfg.warnings:
        print(warning, file=sys.stderr)
    config.apply(run, cfg)
    return parser.parse_args(argv)


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
        if args.command == "run":
            args = apply_config(parser, argv)
            args.model_config_given = given_on_command_line(argv, MODEL_CONFIG) if args.model else set()
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
