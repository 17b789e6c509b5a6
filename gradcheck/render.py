"""Human-readable renderings of a Report (they only read it; nothing is recomputed here)."""

from __future__ import annotations

from tabulate import tabulate

from .report import Report, Row

HEADERS = ["status", "row", "max abs err", "max rel err", "err/tol", "worst index", "analytic", "numeric",
           "checked"]


def sci(x) -> str:
    """Scientific notation, never rounded to zero; NaN and inf spelled out."""
    if x is None:
        return "-"
    x = float(x)
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3e}"


def index_str(index: list[int]) -> str:
    return "(" + ", ".join(str(k) for k in index) + ")" if index else "-"


def row_cells(r: Row) -> list[str]:
    return ["ok" if r.passed else "FAIL", r.label, sci(r.max_abs_err), sci(r.max_rel_err), sci(r.ratio),
            index_str(r.worst_index), sci(r.analytic), sci(r.numeric), str(r.checked)]


def table(report: Report, *, tablefmt: str = "simple") -> str:
    """The rows, worst first, as a tabulate table (every cell a pre-formatted string: no number parsing)."""
    cells = [row_cells(r) for r in report.worst_first()]
    return tabulate(cells, headers=HEADERS, tablefmt=tablefmt, disable_numparse=True, stralign="right")


def details(report: Report) -> list[str]:
    """One line per failing row that needs words: a missing/misshapen gradient, or the step-size re-check."""
    lines = []
    for r in report.worst_first():
        if r.passed:
            continue
        if r.note:
            lines.append(f"{r.label}: {r.note}")
        elif r.diagnosis:
            d = r.diagnosis
            lines.append(f"{r.label}: {d['verdict']}: {d['reason']}")
    return lines


def text(report: Report) -> str:
    """What ``gradcheck run`` prints: the settings, the table, the failing rows' diagnoses and the verdict."""
    s = report.settings
    head = (f"gradcheck: {report.model}; method {report.method}, {s['dtype']}, eps {sci(s['eps'])}, "
            f"rtol {sci(s['rtol'])}, atol {sci(s['atol'])}; analytic = the model's gradient, "
            f"numeric = finite differences")
    parts = [head, table(report)]
    det = details(report)
    if det:
        parts.append("\n".join(det))
    parts.append(report.verdict())
    return "\n\n".join(parts)
