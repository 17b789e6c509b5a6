"""``gradcheck report REPORT.json [--html OUT] [--markdown OUT] [--junit OUT]``: render a saved JSON report again,
without the model. What it writes is byte for byte what ``gradcheck run`` wrote from the same check (the formats
read only the report). A self-test JSON (``reports/selftest.json``) gives the self-test page with ``--html``.
With no output path it prints the report as ``gradcheck run`` does."""

from __future__ import annotations

import argparse
import json

from ..errors import EXIT_OK, UsageError

FORMATS = ("html", "markdown", "junit")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="render a saved JSON report again (HTML, Markdown, JUnit) without the model",
        description="Render a saved JSON report again, without the model: byte for byte what gradcheck run "
        "wrote from the same check (the formats read only the report). A self-test JSON (reports/selftest.json) "
        "gives the self-test page with --html. With no output path it prints the report as gradcheck run does.",
        epilog="exit codes: 0 written; 2 usage error (a missing or unreadable file, a JSON that is not a "
        "gradcheck report, a report written by a newer gradcheck, an unwritable path)",
    )
    p.add_argument("source", metavar="REPORT.json", help="a report written by gradcheck run (or selftest)")
    for kind in FORMATS:
        p.add_argument(f"--{kind}", metavar="OUT", help=f"write the {kind} rendering to OUT")


def cmd(args: argparse.Namespace) -> int:
    from ..output.files import check_path, write_all

    outputs = {kind: getattr(args, kind) for kind in FORMATS if getattr(args, kind)}
    for kind, path in outputs.items():
        check_path(path, f"--{kind}")
    data = _load(args.source)
    texts = (
        _selftest(data, outputs, args.source)
        if "cases" in data
        else _check_report(data, outputs, args.source)
    )
    if not outputs:
        print(texts["text"])
        return EXIT_OK
    try:
        write_all({path: texts[kind] for kind, path in outputs.items()})
    except OSError as exc:
        raise UsageError(f"gradcheck report: cannot write: {exc}") from None
    return EXIT_OK


def _load(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise UsageError(f"gradcheck report: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"gradcheck report: {path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"gradcheck report: {path}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"gradcheck report: {path}: not a gradcheck report (a JSON {type(data).__name__})")
    return data


def _check_report(data: dict, outputs: dict, source: str) -> dict:
    from ..output.html import html_page
    from ..output.junit import junit
    from ..output.markdown import markdown
    from ..output.text import text
    from ..report import report_from_dict

    try:
        report = report_from_dict(data)
        return {
            "html": html_page(data) if "html" in outputs else None,
            "markdown": markdown(report),
            "junit": junit(report),
            "text": text(report),
        }
    except ValueError as exc:  # report_from_dict's and the page's (ReportDataError) words name the field
        raise UsageError(f"gradcheck report: {source}: {exc}") from None


def _selftest(data: dict, outputs: dict, source: str) -> dict:
    from ..output.selftest_html import selftest_page

    unsupported = [k for k in outputs if k != "html"]
    if unsupported:
        raise UsageError(f"gradcheck report: {source} is a self-test report: only --html renders it")
    try:
        return {"html": selftest_page(data), "text": data.get("verdict", "")}
    except ValueError as exc:
        raise UsageError(f"gradcheck report: {source}: {exc}") from None
