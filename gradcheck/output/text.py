"""The terminal rendering of a Report: the settings line, the rows worst first, the failing rows' words, the
verdict; and the words about a row that every format shares.

Every function here only reads the Report (its rows, verdict, settings); nothing is recomputed. Numbers are
pre-formatted strings in scientific notation (:func:`sci`) and tabulate is told not to parse them
(``disable_numparse``), so an error of 1e-300 never shows as 0 and an index "(3)" never becomes -3.
"""

from __future__ import annotations

from tabulate import tabulate

from ..report import Report, Row, spell

HEADERS = [
    "status",
    "row",
    "max abs err",
    "max rel err",
    "err/tol",
    "worst index",
    "analytic",
    "numeric",
    "checked",
]
# The same columns, stating plainly which side is which (assertion messages, Markdown).
PLAIN_HEADERS = HEADERS[:6] + ["analytic (model's gradient)", "numerical (finite differences)", "checked"]
ALIGN = ["left", "left"] + ["right"] * 7


def sci(x) -> str:
    """Scientific notation, never rounded to zero; NaN and inf spelled out."""
    if x is None:
        return "-"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3e}"


def index_str(index: list[int]) -> str:
    return "(" + ", ".join(str(k) for k in index) + ")" if index else "-"


def row_cells(r: Row) -> list[str]:
    return [
        "ok" if r.passed else "FAIL",
        r.label,
        sci(r.max_abs_err),
        sci(r.max_rel_err),
        sci(r.ratio),
        index_str(r.worst_index),
        sci(r.analytic),
        sci(r.numeric),
        str(r.checked),
    ]


def rows_table(
    rows: list[Row], *, tablefmt: str = "simple", headers=HEADERS, escape=None, colalign=None
) -> str:
    """A tabulate table of ``rows`` in the given order (every cell a pre-formatted string: no number parsing).
    Right-aligned unless ``colalign`` says otherwise."""
    cells = [row_cells(r) for r in rows]
    if escape is not None:
        cells = [[escape(c) for c in row] for row in cells]
    align = {"colalign": colalign} if colalign is not None and cells else {"stralign": "right"}
    return tabulate(cells, headers=headers, tablefmt=tablefmt, disable_numparse=True, **align)


def table(report: Report, *, tablefmt: str = "simple") -> str:
    """The rows, worst first, as a tabulate table."""
    return rows_table(report.worst_first(), tablefmt=tablefmt)


def failing_table(report: Report) -> str:
    """The failing rows, worst first, with headers that say which side is analytic and which numerical."""
    return rows_table([r for r in report.worst_first() if not r.passed], headers=PLAIN_HEADERS)


def diagnosis_text(r: Row, hints: str = "python") -> str | None:
    """The step-size re-check of a failing row in words ("wrong gradient: ..."), with the options it suggests
    spelled for the interface (``hints``: "python" or "cli"), if there is one."""
    d = r.diagnosis
    if not d or "verdict" not in d:
        return None
    words = f"{d['verdict']}: {d.get('reason', '')}"
    suggest = d.get("suggest") or {}
    if suggest:
        words += "; try " + " or ".join(spell(k, v, hints) for k, v in suggest.items())
    return words


def details(report: Report) -> list[str]:
    """One line per failing row that needs words: a missing/misshapen gradient, or the step-size re-check."""
    lines = []
    for r in report.worst_first():
        if r.passed:
            continue
        if r.note:
            lines.append(f"{r.label}: {r.note}")
        elif diagnosis_text(r, report.hints):
            lines.append(f"{r.label}: {diagnosis_text(r, report.hints)}")
    return lines


def headline(report: Report) -> str:
    """The settings line: model, method, dtype, step, tolerances, and which side is which."""
    s = report.settings
    return (
        f"gradcheck: {report.model}; method {report.method}, {s.get('dtype', '?')}, eps {sci(s.get('eps'))}, "
        f"rtol {sci(s.get('rtol'))}, atol {sci(s.get('atol'))}; analytic = the model's gradient, "
        f"numeric = finite differences"
    )


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an open terminal (False for files, pipes, closed or fake streams)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):
        return False


def color_enabled(stream, environ) -> bool:
    """Colour only on a terminal, never when NO_COLOR is set (https://no-color.org) or TERM is dumb."""
    if environ.get("NO_COLOR", "") != "" or environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def text(report: Report, *, color: bool = False) -> str:
    """What ``gradcheck run`` prints: the settings, the table, the failing rows' diagnoses and the verdict."""
    parts = [headline(report), table(report)]
    det = details(report)
    if det:
        parts.append("\n".join(det))
    verdict = report.verdict()
    if color:
        verdict = ("\033[32m" if report.passed else "\033[1;31m") + verdict + "\033[0m"
    parts.append(verdict if report.rerun is None else f"{verdict}\nreproduce: {report.rerun}")
    return "\n\n".join(parts)


def failure_message(r: Row) -> str:
    """One line: the worst entry, analytic and numeric values, the error and the tolerance."""
    if r.note:
        return r.note
    return (
        f"{r.label}: worst entry {index_str(r.worst_index)}: analytic {sci(r.analytic)} vs numeric "
        f"{sci(r.numeric)}, |analytic - numeric| = {sci(r.max_abs_err)} > tolerance {sci(r.tolerance)} "
        f"(max rel err {sci(r.max_rel_err)}, err/tol {sci(r.ratio)})"
    )
