"""GitHub Actions: the step summary and ``::error`` annotations.

- ``GITHUB_STEP_SUMMARY`` set: the Markdown report is appended to that file (tables longer than
  :data:`FOLD_ROWS` rows folded in ``<details>``).
- ``GITHUB_ACTIONS=true``: one ``::error`` workflow command per failing row, worst first, at most
  :data:`ANNOTATION_CAP`, then one ``::notice`` saying how many were omitted. Messages are escaped as the
  GitHub toolkit does (``%``, ``\\r``, ``\\n``; in properties also ``:`` and ``,``).
"""

from __future__ import annotations

from ..report import Report
from .markdown import markdown
from .text import diagnosis_text, failure_message

ANNOTATION_CAP = 10
FOLD_ROWS = 20  # step summary: tables longer than this are folded in <details>


def escape_data(s: str) -> str:
    """Escape a workflow command's message."""
    return str(s).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(s: str) -> str:
    """Escape a workflow command's property value (also ``:`` and ``,``, which delimit properties)."""
    return escape_data(s).replace(":", "%3A").replace(",", "%2C")


def annotations(report: Report, *, cap: int = ANNOTATION_CAP, report_hint: str | None = None) -> list[str]:
    """``::error`` lines for the worst failing rows (at most ``cap``), then a ``::notice`` with the count left out."""
    bad = [r for r in report.worst_first() if not r.passed]
    lines = []
    for r in bad[:cap]:
        msg = failure_message(r)
        if diagnosis_text(r, report.hints):
            msg += f"\nstep-size re-check: {diagnosis_text(r, report.hints)}"
        lines.append(f"::error title={escape_property('gradcheck: ' + r.label)}::{escape_data(msg)}")
    if len(bad) > cap:
        where = f" (see {report_hint})" if report_hint else ""
        lines.append(
            f"::notice title={escape_property('gradcheck')}::"
            f"{escape_data(f'{len(bad) - cap} more failing rows not annotated{where}')}"
        )
    return lines


def github(report: Report, *, environ, annotation_stream, warn, report_hint: str | None = None) -> None:
    """Append the summary and print the annotations, as the environment asks."""
    summary = environ.get("GITHUB_STEP_SUMMARY", "")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(markdown(report, fold_after=FOLD_ROWS) + "\n")
        except OSError as exc:
            warn(
                f"gradcheck: warning: cannot append to GITHUB_STEP_SUMMARY {summary!r}: {exc.strerror or exc}"
            )
    if environ.get("GITHUB_ACTIONS") == "true":
        for line in annotations(report, report_hint=report_hint):
            print(line, file=annotation_stream)
        annotation_stream.flush()
