"""``gradcheck run``: check a model (the reference LSTM, or ``--model MODULE:FACTORY``), write the report files,
print the chosen format, feed CI, and exit 0 (every row passes) or 1 (a row fails)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys

from ..errors import EXIT_FAIL, EXIT_OK, UsageError
from ..options import AUTO, METHODS
from ..output import files
from .argtypes import nonneg_float, positive_float, positive_int, seed_int
from .loading import CONFIG_KEYS, accepted_keys, build_model, flag, load_factory
from .speed import add_speed_arguments, speed_options

EXIT_CODES = """exit codes:
  0  every row passes
  1  a row fails (or a value is NaN/inf)
  2  usage or configuration error (bad flag value, unimportable --model, not a model, bad [tool.gradcheck]
     key or GRADCHECK_* value, unwritable report path); nothing is written
  3  the model raised while being checked (its message is shown); nothing is written
130  interrupted (SIGINT/SIGTERM; a second one ends it at once); nothing is written

reports: reports/gradcheck.json, .xml (JUnit), .md and .html by default (--report-dir, --no-reports,
--json/--junit/--markdown/--html PATH); gradcheck report REPORT.json renders a saved report again.
configuration: [tool.gradcheck] in the nearest pyproject.toml (keys = long option names) and GRADCHECK_<OPTION>
environment variables; precedence: command line > environment > pyproject.toml > defaults."""


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    ref = p.add_argument_group("reference LSTM (with --model: passed to the factory when given)")
    ref.add_argument("--x-dim", type=positive_int, default=50, help="input size (default 50, the write-up's)")
    ref.add_argument("--hidden", type=positive_int, default=100, help="memory cells (default 100)")
    ref.add_argument("--steps", type=positive_int, default=4, help="time steps T (default 4)")
    ref.add_argument(
        "--variant",
        choices=["simple", "tanh"],
        default="simple",
        help="h = s*o (simple, the write-up's) or h = tanh(s)*o",
    )
    ref.add_argument(
        "--loss",
        choices=["seed", "full"],
        default="full",
        help="full: sum_t ||h(t) - y(t)||^2 (default); seed: the write-up's (h(t)[0] - y(t))^2",
    )
    ref.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="default float64")
    p.add_argument(
        "--model",
        metavar="MODULE:FACTORY",
        help="check FACTORY() from MODULE (the current directory is on the path) instead; size flags "
        "given with it (--x-dim --hidden --steps --variant --loss, and --seed if accepted) are "
        "passed to FACTORY as keyword arguments",
    )
    p.add_argument("--seed", type=seed_int, default=0, help="seed of every random draw (default 0)")
    chk = p.add_argument_group("check")
    chk.add_argument(
        "--method",
        choices=[AUTO, *METHODS],
        default=AUTO,
        help="auto (default: central; complex step for models declaring 'complex' that are float32 "
        "or screened with --mode screen), central, richardson, complex",
    )
    chk.add_argument("--eps", type=positive_float, help="base step (default: per method and dtype)")
    chk.add_argument("--rtol", type=positive_float, help="relative tolerance (default: per method and dtype)")
    chk.add_argument("--atol", type=nonneg_float, help="absolute tolerance floor (default 0)")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON to PATH")


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    """The output, report-file and CI flags of ``run`` (``--json PATH`` is in :func:`add_run_arguments`)."""
    out = p.add_argument_group("output and reports")
    out.add_argument(
        "--format",
        choices=["table", "markdown", "json"],
        default="table",
        help="what goes to stdout (default table); with json, the human text goes to stderr",
    )
    out.add_argument(
        "--report-dir",
        metavar="DIR",
        default="reports",
        help="directory of gradcheck.json, gradcheck.xml, gradcheck.md, gradcheck.html (default: reports)",
    )
    out.add_argument(
        "--no-reports",
        action="store_true",
        help="do not write the report files of --report-dir (explicit --json/--junit/--markdown/--html "
        "paths are still written)",
    )
    out.add_argument("--junit", metavar="PATH", help="write the JUnit XML report to PATH")
    out.add_argument("--markdown", metavar="PATH", help="write the Markdown report to PATH")
    out.add_argument("--html", metavar="PATH", help="write the HTML report (one self-contained page) to PATH")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress line and no notes on stderr")


def add_parser(subparsers) -> None:
    run = subparsers.add_parser(
        "run",
        help="check a model's gradients (default: the reference LSTM)",
        description="Check every parameter entry and every dL(t)/dh(t), dL(t)/ds(t) against numerical "
        "derivatives.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(run)
    add_report_arguments(run)
    add_speed_arguments(run)


def load_model(spec: str, config: dict | None = None, sources: dict | None = None):
    """``MODULE:FACTORY`` -> ``(FACTORY(**config), config passed)`` (no arguments without config).

    ``seed`` is passed only when the factory takes it (it is also the checker's seed). ``sources``: where each
    setting came from, named in the usage error when the factory does not take one.
    """
    try:
        factory = load_factory(spec)
        config = dict(config or {})
        if "seed" in config and "seed" not in accepted_keys(factory):
            del config["seed"]
        return build_model(factory, config, name=spec, sources=sources), config
    except UsageError as exc:
        raise UsageError(f"gradcheck run: {exc}") from None


def make_model(args):
    """The model to check: ``--model`` (with the size settings given on the command line, in the environment
    or in pyproject.toml, as the factory's keyword arguments; ``args.model_config`` records what was passed)
    or the reference."""
    if args.model:
        given = getattr(args, "model_config_given", {})
        model, args.model_config = load_model(
            args.model, {k: getattr(args, k) for k in CONFIG_KEYS if k in given}, given
        )
        return model
    from ..lstm.reference import ReferenceLSTM

    return ReferenceLSTM(
        args.x_dim,
        args.hidden,
        args.steps,
        variant=args.variant,
        loss=args.loss,
        seed=args.seed,
        dtype=args.dtype,
    )


def cmd(args) -> int:
    """Check, then write the report files (all or none), print the chosen format, feed CI; exit 0/1."""
    from ..checker import check  # numpy and the formats are imported when a check runs, not for --help
    from ..output import github
    from ..output.html import html_text
    from ..output.json_report import json_text
    from ..output.junit import junit
    from ..output.markdown import markdown
    from .progress import Progress, progress_enabled

    paths = files.report_paths(
        report_dir=args.report_dir,
        no_reports=args.no_reports,
        json=args.json,
        junit=args.junit,
        markdown=args.markdown,
        html=args.html,
    )
    model = make_model(args)
    progress = Progress(sys.stderr) if progress_enabled(sys.stderr, quiet=args.quiet) else None
    try:
        report = check(
            model,
            method=args.method,
            eps=args.eps,
            rtol=args.rtol,
            atol=args.atol,
            seed=args.seed,
            progress=progress,
            **speed_options(args),
        )
    finally:
        if progress is not None:
            progress.close()
    report = dataclasses.replace(
        report, hints="cli", model_spec=args.model, rerun=rerun_command(args, report.settings["mode"])
    )
    rendered = {"json": json_text, "junit": junit, "markdown": markdown, "html": html_text}
    texts = {kind: rendered[kind](report) for kind in {*paths, args.format} & rendered.keys()}
    try:
        files.write_all({path: texts[kind] for kind, path in paths.items()})
    except OSError as exc:
        raise UsageError(f"gradcheck run: cannot write the reports: {exc}") from None
    _print(args, report, texts)
    github.github(
        report,
        environ=os.environ,
        annotation_stream=sys.stdout if args.format == "table" else sys.stderr,
        warn=lambda m: print(m, file=sys.stderr),
        report_hint=paths.get("markdown") or paths.get("json"),
    )
    if paths and not args.quiet:
        print(f"gradcheck: reports written: {', '.join(paths.values())}", file=sys.stderr)
    return EXIT_OK if report.passed else EXIT_FAIL


RERUN_KEYS = (
    "x_dim",
    "hidden",
    "steps",
    "variant",
    "loss",
    "dtype",
    "method",
    "eps",
    "rtol",
    "atol",
    "directions",
    "sample",
)  # the settings that change the numbers (not the output, not the speed)


def rerun_command(args, mode: str) -> str:
    """A ``gradcheck run`` command line that reproduces this check: the model and the settings passed to its
    factory, every other setting that differs from the built-in default (wherever it came from: command line,
    environment, pyproject.toml), and the seed where it matters (the reference's problem, a factory that takes
    it, the screen's directions, sampled entries); never a seed the factory does not take when nothing else
    draws. ``mode``: the mode the check ran in (auto's choice depends on timing, so it is pinned)."""
    defaults = _defaults()
    parts = ["gradcheck", "run"]
    passed = getattr(args, "model_config", {}) if args.model else {}
    if args.model:
        parts += ["--model", args.model]
        parts += [
            arg for k in CONFIG_KEYS if k in passed and k != "seed" for arg in (flag(k), str(passed[k]))
        ]
    for key in RERUN_KEYS:
        if args.model and key in CONFIG_KEYS:
            continue
        value = getattr(args, key, None)
        if value is not None and value != defaults.get(key):
            parts += [flag(key), str(value)]
    parts += ["--mode", mode]
    if not args.model or "seed" in passed or mode != "full" or args.sample is not None:
        parts += ["--seed", str(args.seed)]
    return shlex.join(parts)


def _defaults() -> dict:
    """The built-in defaults of ``run``'s options (before any configuration)."""
    p = argparse.ArgumentParser(add_help=False)
    add_run_arguments(p)
    add_speed_arguments(p)
    return vars(p.parse_args([]))


def _print(args, report, texts: dict) -> None:
    """The chosen format on stdout; with json, the human text on stderr (unless --quiet)."""
    from ..output.text import color_enabled, text

    if args.format == "json":
        emit(texts["json"].rstrip("\n"), sys.stdout)
        if not args.quiet:
            emit(text(report, color=color_enabled(sys.stderr, os.environ)), sys.stderr)
    elif args.format == "markdown":
        emit(texts["markdown"].rstrip("\n"), sys.stdout)
    else:
        emit(text(report, color=color_enabled(sys.stdout, os.environ)), sys.stdout)


def emit(text_: str, stream) -> None:
    """Print, tolerating a closed pipe (``gradcheck run | head``): the reports are already written."""
    try:
        print(text_, file=stream)
        stream.flush()
    except BrokenPipeError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError):
            pass
