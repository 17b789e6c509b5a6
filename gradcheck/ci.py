"""CI integration: the GitHub step summary, ``::error`` annotations, and the terminal progress line.

- ``GITHUB_STEP_SUMMARY`` set: the Markdown report is appended to that file (tables longer than
  :data:`gradcheck.render.FOLD_ROWS` rows folded in ``<details>``).
- ``GITHUB_ACTIONS=true``: one ``::error`` workflow command per failing row, worst first, at most
  :data:`ANNOTATION_CAP`, then one ``::notice`` saying how many were omitted. Messages are escaped as the
  GitHub toolkit does (``%``, ``\\r``, ``\\n``; in properties also ``:`` and ``,``).
- Progress: a single line rewritten with ``\\r`` on stderr, only when stderr is a terminal and ``--quiet`` is
  not given; it is erased before anything else is printed, so nothing of it reaches files or pipes.
"""

from __future__ import annotations

import time

from .render import FOLD_ROWS, diagnosis_text, failure_message, is_terminal, markdown
from .report import Report

ANNOTATION_CAP = 10


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
        if diagnosis_text(r):
            msg += f"\nstep-size re-check: {diagnosis_text(r)}"
        lines.append(f"::error title={escape_property('gradcheck: ' + r.label)}::{escape_data(msg)}")
    if len(bad) > cap:
        where = f" (see {report_hint})" if report_hint else ""
        lines.append(f"::notice title={escape_property('gradcheck')}::"
                     f"{escape_data(f'{len(bad) - cap} more failing rows not annotated{where}')}")
    return lines


def github(report: Report, *, environ, annotation_stream, warn, report_hint: str | None = None) -> None:
    """Append the summary and print the annotations, as the environment asks."""
    summary = environ.get("GITHUB_STEP_SUMMARY", "")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(markdown(report, fold_after=FOLD_ROWS) + "\n")
        except OSError as exc:
            warn(f"gradcheck: warning: cannot append to GITHUB_STEP_SUMMARY {summary!r}: {exc.strerror or exc}")
    if environ.get("GITHUB_ACTIONS") == "true":
        for line in annotations(report, report_hint=report_hint):
            print(line, file=annotation_stream)
        annotation_stream.flush()


def progress_enabled(stream, *, quiet: bool) -> bool:
    """Progress only on a terminal (never into a file or a pipe) and not with ``--quiet``."""
    return not quiet and is_terminal(stream)


class Progress:
    """``progress(n)`` callback for :func:`gradcheck.check`: counts loss evaluations, redraws at most 5x/s."""

    def __init__(self, stream, *, interval: float = 0.2, clock=time.monotonic):
        self.stream, self.interval, self.clock = stream, interval, clock
        self.count, self.start, self.last, self.shown = 0, clock(), clock(), False

    def __call__(self, n: int = 1) -> None:
        self.count += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            elapsed = now - self.start
            rate = self.count / elapsed if elapsed > 0 else 0.0
            self.stream.write(f"\r\033[Kgradcheck: {self.count:,} loss evaluations, {elapsed:.1f} s "
                              f"({rate:,.0f}/s)")
            self.stream.flush()
            self.shown = True

    def close(self) -> None:
        """Erase the line (so the table that follows starts clean)."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False
