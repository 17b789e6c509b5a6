"""Renderings of a Report: the terminal table, Markdown, JUnit XML and JSON.

Every function here only reads the Report (its rows, verdict, settings and ``to_dict()``); nothing is recomputed.
Numbers are pre-formatted strings in scientific notation (:func:`sci`) and tabulate is told not to parse them
(``disable_numparse``), so an error of 1e-300 never shows as 0 and an index "(3)" never becomes -3.
"""

from __future__ import annotations

import json
import math
import platform
import re
import xml.etree.ElementTree as ET

from tabulate import tabulate

from .report import Report, Row

HEADERS = ["status", "row", "max abs err", "max rel err", "err/tol", "worst index", "analytic", "numeric",
           "checked"]
# The same columns, stating plainly which side is which (assertion messages, Markdown).
PLAIN_HEADERS = HEADERS[:6] + ["analytic (model's gradient)", "numerical (finite differences)", "checked"]
ALIGN = ["left", "left"] + ["right"] * 7

FOLD_ROWS = 20          # GitHub step summary: tables longer than this are folded in <details>


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
    return ["ok" if r.passed else "FAIL", r.label, sci(r.max_abs_err), sci(r.max_rel_err), sci(r.ratio),
            index_str(r.worst_index), sci(r.analytic), sci(r.numeric), str(r.checked)]


def rows_table(rows: list[Row], *, tablefmt: str = "simple", headers=HEADERS, escape=None,
               colalign=None) -> str:
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


def diagnosis_text(r: Row) -> str | None:
    """The step-size re-check of a failing row in words ("wrong gradient: ..."), if there is one."""
    if r.diagnosis and "verdict" in r.diagnosis:
        return f"{r.diagnosis['verdict']}: {r.diagnosis.get('reason', '')}"
    return None


def details(report: Report) -> list[str]:
    """One line per failing row that needs words: a missing/misshapen gradient, or the step-size re-check."""
    lines = []
    for r in report.worst_first():
        if r.passed:
            continue
        if r.note:
            lines.append(f"{r.label}: {r.note}")
        elif diagnosis_text(r):
            lines.append(f"{r.label}: {diagnosis_text(r)}")
    return lines


def headline(report: Report) -> str:
    """The settings line: model, method, dtype, step, tolerances, and which side is which."""
    s = report.settings
    return (f"gradcheck: {report.model}; method {report.method}, {s.get('dtype', '?')}, eps {sci(s.get('eps'))}, "
            f"rtol {sci(s.get('rtol'))}, atol {sci(s.get('atol'))}; analytic = the model's gradient, "
            f"numeric = finite differences")


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
    parts.append(verdict)
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def md_escape(s: str) -> str:
    """Backslash-escape Markdown's active characters (a ``|`` in a name must not split a table cell)."""
    return _MD_SPECIAL.sub(r"\\\1", str(s)).replace("\r", " ").replace("\n", " ")


def markdown(report: Report, *, fold_after: int | None = None) -> str:
    """A Markdown report: title, settings, a pipe table of the rows worst first, diagnoses, and the verdict line.

    ``fold_after``: when the table has more rows than this, it is folded in ``<details>`` (GitHub summaries)
    and the failing rows are shown unfolded above it.
    """
    status = "PASS" if report.passed else "FAIL"
    s = report.settings
    out = [f"## gradcheck: {status}", "",
           f"Model {md_escape(report.model)}; method {md_escape(report.method)}, {md_escape(s.get('dtype', '?'))}, "
           f"eps {sci(s.get('eps'))}, rtol {sci(s.get('rtol'))}, atol {sci(s.get('atol'))}, seed {report.seed}. "
           f"*analytic* = the model's gradient, *numeric* = finite differences.", ""]
    rows = report.worst_first()
    full = rows_table(rows, tablefmt="pipe", escape=md_escape, colalign=ALIGN)
    if fold_after is not None and len(rows) > fold_after:
        bad = [r for r in rows if not r.passed]
        if bad:
            out += [f"Failing rows ({len(bad)}):", "",
                    rows_table(bad, tablefmt="pipe", escape=md_escape, colalign=ALIGN), ""]
        out += ["<details>", f"<summary>All {len(rows)} rows, worst first</summary>", "", full, "", "</details>", ""]
    else:
        out += [full, ""]
    det = details(report)
    if det:
        out += [f"- {md_escape(line)}" for line in det] + [""]
    out.append(f"**{md_escape(report.verdict())}**")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------- JUnit XML

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _x(s) -> str:
    """Text XML can carry (characters XML 1.0 forbids become \\xNN, as pytest does)."""
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(s))


def failure_message(r: Row) -> str:
    """One line: the worst entry, analytic and numeric values, the error and the tolerance."""
    if r.note:
        return r.note
    return (f"{r.label}: worst entry {index_str(r.worst_index)}: analytic {sci(r.analytic)} vs numeric "
            f"{sci(r.numeric)}, |analytic - numeric| = {sci(r.max_abs_err)} > tolerance {sci(r.tolerance)} "
            f"(max rel err {sci(r.max_rel_err)}, err/tol {sci(r.ratio)})")


def junit(report: Report, *, suite: str = "gradcheck") -> str:
    """JUnit XML as pytest writes it: ``<testsuites><testsuite>`` with ``<properties>`` (seed, method, settings)
    and one ``<testcase classname name>`` per row; failing rows carry ``<failure message=...>``."""
    rows = report.rows
    failures = sum(1 for r in rows if not r.passed)
    total_time = sum(v for v in report.timings.values() if isinstance(v, (int, float)) and math.isfinite(v))
    ts = ET.Element("testsuite", name=suite, errors="0", failures=str(failures), skipped="0",
                    tests=str(len(rows)), time=f"{total_time:.3f}")
    props = ET.SubElement(ts, "properties")
    pairs = [("seed", report.seed), ("method", report.method), ("model", report.model),
             ("passed", str(report.passed).lower()), ("verdict", report.verdict())]
    pairs += [(f"settings.{k}", v) for k, v in report.settings.items()]
    if report.first_bad_step:
        pairs.append(("first_bad_step", f"{report.first_bad_step.get('name')} at t={report.first_bad_step.get('t')}"))
    for name, value in pairs:
        value = str(value).lower() if isinstance(value, bool) else value
        ET.SubElement(props, "property", name=_x(name), value=_x(value))
    for r in rows:
        classname = f"{suite}.{r.kind}" if r.kind == "param" else f"{suite}.{r.kind}.{r.name}"
        tc = ET.SubElement(ts, "testcase", classname=_x(classname), name=_x(r.label))
        tp = ET.SubElement(tc, "properties")
        for name, value in (("max_abs_err", sci(r.max_abs_err)), ("max_rel_err", sci(r.max_rel_err)),
                            ("worst_index", index_str(r.worst_index)), ("analytic", sci(r.analytic)),
                            ("numeric", sci(r.numeric)), ("tolerance", sci(r.tolerance)),
                            ("checked", r.checked)):
            ET.SubElement(tp, "property", name=name, value=_x(value))
        if not r.passed:
            body = [failure_message(r), "analytic = the model's gradient, numeric = finite differences"]
            if diagnosis_text(r):
                body.append(f"step-size re-check: {diagnosis_text(r)}")
            fail = ET.SubElement(tc, "failure", message=_x(failure_message(r)))
            fail.text = _x("\n".join(body))
    root = ET.Element("testsuites", name="gradcheck")
    root.append(ts)
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------------------------------------- JSON

def versions() -> dict:
    """The library versions a report was made with (read from the environment, not from the check)."""
    out = {"python": platform.python_version()}
    for pkg in ("gradcheck", "numpy", "tabulate"):
        out[pkg] = _module_version(pkg)
    return out


def _module_version(pkg: str) -> str | None:
    try:
        mod = __import__(pkg)
    except ImportError:
        return None
    return getattr(mod, "__version__", None)


def jsonable(obj):
    """Plain JSON values: NaN/inf become strings ("nan", "inf") so the file stays valid JSON, numpy scalars and
    arrays become numbers and lists."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "tolist"):           # numpy scalar or array
        return jsonable(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, int):
        return obj
    if isinstance(obj, complex):
        return jsonable([obj.real, obj.imag])
    return str(obj)


def json_text(report: Report) -> str:
    """The issue-4 JSON (``Report.to_dict()``) plus ``versions``; ``timings`` last, the only field that varies
    between runs with the same seed and settings."""
    d = report.to_dict()
    timings = d.pop("timings", {})
    d["versions"] = versions()
    d["timings"] = timings
    return json.dumps(jsonable(d), indent=2, allow_nan=False) + "\n"
