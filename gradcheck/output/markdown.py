"""The Markdown report: title, settings, a pipe table of the rows worst first, the failing rows' words, and the
verdict (also the GitHub step summary, with long tables folded)."""

from __future__ import annotations

import re

from ..report import Report
from .text import ALIGN, details, rows_table, sci

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
    out = [
        f"## gradcheck: {status}",
        "",
        f"Model {md_escape(report.model)}"
        f"{'' if report.model_spec is None else ' from ' + code_span(report.model_spec)}; method {md_escape(report.method)}, {md_escape(s.get('dtype', '?'))}, "
        f"eps {sci(s.get('eps'))}, rtol {sci(s.get('rtol'))}, atol {sci(s.get('atol'))}, seed {report.seed}. "
        f"*analytic* = the model's gradient, *numeric* = finite differences.",
        "",
    ]
    rows = report.worst_first()
    full = rows_table(rows, tablefmt="pipe", escape=md_escape, colalign=ALIGN)
    if fold_after is not None and len(rows) > fold_after:
        bad = [r for r in rows if not r.passed]
        if bad:
            out += [
                f"Failing rows ({len(bad)}):",
                "",
                rows_table(bad, tablefmt="pipe", escape=md_escape, colalign=ALIGN),
                "",
            ]
        out += [
            "<details>",
            f"<summary>All {len(rows)} rows, worst first</summary>",
            "",
            full,
            "",
            "</details>",
            "",
        ]
    else:
        out += [full, ""]
    det = details(report)
    if det:
        out += [f"- {md_escape(line)}" for line in det] + [""]
    out.append(f"**{md_escape(report.verdict())}**")
    if report.rerun is not None:
        out += ["", f"Reproduce: {code_span(report.rerun)}"]
    return "\n".join(out) + "\n"


def code_span(text: str) -> str:
    """Inline code that survives backticks in ``text`` (a fence one backtick longer than any run inside)."""
    runs = re.findall(r"`+", text)
    fence = "`" * (max((len(r) for r in runs), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
