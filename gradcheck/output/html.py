"""The HTML report: one self-contained page (inline CSS and SVG; no script, font, image or link to fetch).

:func:`html_page` renders the dict of a check's report (``json.loads(json_text(report))``),
:func:`selftest_page` the dict of ``SelftestResult.to_dict()``. Both only read the dict: the same dict gives
the same bytes (no clock, no randomness, dict order kept), so a page made again from a saved JSON is
identical.

The page, in order: the verdict and the command that reproduces the report; the time-step map (err/tol of
every state and time-indexed input at every t, the first bad step outlined); the block bars (err/tol per
parameter block); the step-size curves of every failing row (and of the worst passing row when the report has
its sweep); the worst entries; the settings, versions and timings. Every figure carries its numbers in text
too.

    gradcheck report reports/gradcheck.json --html reports/gradcheck.html

writes the page of a saved report again (``gradcheck run`` writes it by default).
"""

from __future__ import annotations

import json

from . import figures
from .json_report import json_text
from .page import flat, kv_table, page, rerun_command, seconds, verdict_header
from .reportdata import (
    ReportDataError,
    RowView,
    first_bad_step,
    number,
    report_rows,
    step_size_at_fault,
    worst_first,
)
from .selftest_html import selftest_page
from .svg import esc
from .text import index_str, sci

__all__ = ["ReportDataError", "html_page", "html_text", "selftest_page"]

MAX_CURVES = 48  # step-size figures drawn (worst first); the rest are named in a sentence
MAX_PASSING_ENTRIES = 3  # passing rows shown under the failing ones in "worst entries"
MAX_WRONG_ENTRIES = 50  # per row


def html_text(report) -> str:
    """The page of a :class:`~gradcheck.report.Report`: exactly the page of its JSON report."""
    return html_page(json.loads(json_text(report)))


def html_page(d: dict) -> str:
    """The report page of report dict ``d``; :class:`ReportDataError` (a ValueError) naming the field when
    ``d`` is not a report dict."""
    rows = report_rows(d)
    fb = first_bad_step(d)
    passed = d.get("passed") if isinstance(d.get("passed"), bool) else all(r.passed for r in rows)
    settings = d.get("settings") if isinstance(d.get("settings"), dict) else {}
    sections = [
        ("map", "Time-step map", figures.time_step_map(rows, fb)),
        ("blocks", "Block bars", figures.block_bars(rows)),
        ("steps", "Step-size curves", _curves(rows, settings)),
        ("entries", "Worst entries", _entries(rows)),
        ("settings", "Settings, versions and timings", _settings(d, settings)),
    ]
    title = f"gradcheck {'PASS' if passed else 'FAIL'}: {d.get('model', 'model')}"
    return page(title, _header(d, rows, fb, passed, settings), sections)


def _header(d: dict, rows: list[RowView], fb, passed: bool, settings: dict) -> str:
    seed = d.get("seed", 0)
    bad = [r for r in rows if not r.passed]
    lines = []
    if fb and step_size_at_fault(rows):
        lines.append(
            f'<span class="enters">Rows fail from <strong>{esc(fb[0])}, t={fb[1]}</strong> back, but the '
            "step size is at fault, not the gradient</span> (the step-size re-check of every failing row "
            "says finite-difference error: see the curves)."
        )
    elif fb:
        lines.append(
            f'<span class="enters">The error enters at <strong>{esc(fb[0])}, t={fb[1]}</strong></span> '
            "(the latest time step whose state fails; every earlier step inherits it)."
        )
    elif bad:
        lines.append(
            f'<span class="enters">{len(bad)} of {len(rows)} rows fail</span>; no state row fails, '
            "so there is no time step where the error enters."
        )
    lines.append(
        f'<span class="verdict-line">{esc(d.get("verdict") or ("PASS" if passed else "FAIL"))}</span>'
    )
    facts = [
        f"{k} {sci(settings[k]) if k in ('eps', 'rtol', 'atol') else settings[k]}"
        for k in ("method", "dtype", "eps", "rtol", "atol", "mode")
        if k in settings
    ]
    lines.append(
        esc(", ".join(facts + [f"seed {seed}"])) + "; analytic = the model's gradient, numeric = "
        "finite differences; err/tol &gt; 1 fails."
    )
    command = rerun_command(d, f"gradcheck run --seed {seed}")
    note = (
        None
        if d.get("rerun") is not None
        else "with the original run's model and flags: this report records no command line"
    )
    return verdict_header(passed, f"gradcheck: {d.get('model', 'model')}", lines, command, note=note)


def _curves(rows: list[RowView], settings: dict) -> str:
    swept = [r for r in worst_first(rows) if (r.diagnosis or {}).get("steps")]
    shown = [r for r in swept if not r.passed]
    worst_pass = next((r for r in swept if r.passed), None)
    notes = []
    if len(shown) > MAX_CURVES:
        rest = shown[MAX_CURVES:]
        notes.append(
            f"{len(rest)} more failing rows have a sweep, not drawn here (the JSON report has them): "
            + ", ".join(r.label for r in rest)
            + "."
        )
        shown = shown[:MAX_CURVES]
    if worst_pass is not None:
        shown.append(worst_pass)
    elif any(r.passed for r in rows):
        notes.append(
            "This report has no step-size sweep of a passing row (the checker re-checks failing rows "
            "only), so no passing curve is drawn."
        )
    unswept = [r.label for r in rows if not r.passed and not (r.diagnosis or {}).get("steps")]
    if unswept:
        notes.append(
            f"Failing rows without a sweep (no comparison was possible, see worst entries): "
            f"{', '.join(unswept)}."
        )
    eps = number(settings.get("eps"), where="settings.eps") if "eps" in settings else None
    figs = "".join(figures.step_curve(r, k, eps=eps) for k, r in enumerate(shown))
    intro = (
        "<p>Each failing row's worst entries re-checked at several steps. A right gradient's error falls "
        "as the step shrinks (truncation error) until round-off makes it rise again: a V, or its falling "
        "side. A wrong gradient's error stays flat at the size of the mistake, far above the tolerance "
        "(dashed).</p>"
    )
    body = (
        f'<div class="curves">{figs}</div>' if figs else '<p class="note">No row has a step-size sweep.</p>'
    )
    return intro + body + "".join(f'<p class="note">{esc(n)}</p>' for n in notes)


ENTRY_HEADERS = [
    "status",
    "row",
    "worst index",
    "analytic",
    "numeric",
    "|analytic - numeric|",
    "tolerance",
    "err/tol",
    "checked",
    "step-size re-check or note",
]


def _entries(rows: list[RowView]) -> str:
    ordered = worst_first(rows)
    bad = [r for r in ordered if not r.passed]
    good = [r for r in ordered if r.passed][: MAX_PASSING_ENTRIES if bad else 10]
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in ENTRY_HEADERS)
    body = "".join(_entry_row(r) for r in bad + good)
    intro = (
        f"<p>{'The failing rows, then the' if bad else 'The'} {len(good)} worst passing rows; worst first. "
        "analytic = the model's gradient, numeric = the finite difference.</p>"
    )
    table = (
        f'<div class="scroll"><table class="entries"><thead><tr>{head}</tr></thead><tbody>{body}'
        "</tbody></table></div>"
    )
    out = [intro, table]
    out += [_wrong_entries(r) for r in bad + good if isinstance(r.get("wrong_entries"), list)]
    return "".join(out)


def _entry_row(r: RowView) -> str:
    diag = r.diagnosis or {}
    words = r.get("note") or (f"{diag['verdict']}: {diag.get('reason', '')}" if "verdict" in diag else "")
    if r.get("zero"):
        words = (words + "; " if words else "") + "zero by construction"
    cells = [
        ("FAIL" if not r.passed else "ok"),
        r.label,
        index_str(r.get("worst_index") or []),
        sci(r.get("analytic")),
        sci(r.get("numeric")),
        sci(r.get("max_abs_err")),
        sci(r.get("tolerance")),
        sci(r.ratio),
        str(r.get("checked", "-")),
    ]
    tds = "".join(f"<td>{esc(c)}</td>" for c in cells)
    return f'<tr class="{"fail" if not r.passed else "pass"}">{tds}<td class="text">{esc(words)}</td></tr>'


def _wrong_entries(r: RowView) -> str:
    entries = [e for e in r.get("wrong_entries") if isinstance(e, dict)]
    shown = entries[:MAX_WRONG_ENTRIES]
    body = "".join(
        f"<tr><td>{esc(index_str(e.get('index') or []))}</td><td>{esc(sci(e.get('analytic')))}</td>"
        f"<td>{esc(sci(e.get('numeric')))}</td><td>{esc(sci(e.get('abs_err')))}</td></tr>"
        for e in shown
    )
    more = f" (the first {len(shown)} of {len(entries)})" if len(entries) > len(shown) else ""
    return (
        f'<h3>Entries out of tolerance in {esc(r.label)}{more}</h3><table class="wrong-entries" '
        f'data-row="{esc(r.label)}"><thead><tr><th scope="col">index</th><th scope="col">analytic</th>'
        '<th scope="col">numeric</th><th scope="col">|analytic - numeric|</th></tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _settings(d: dict, settings: dict) -> str:
    model = [(k, d[k]) for k in ("model", "seed", "loss", "model_spec") if k in d]
    parts = [kv_table(flat(dict(model)), "Model"), kv_table(flat(settings), "Settings")]
    if isinstance(d.get("versions"), dict):
        parts.append(kv_table(flat(d["versions"]), "Versions"))
    timings = d.get("timings")
    if isinstance(timings, dict) and timings:
        pairs = [(k, seconds(v)) for k, v in timings.items()]
        total = sum(v for v in timings.values() if isinstance(v, (int, float)) and not isinstance(v, bool))
        parts.append(kv_table(pairs + [("total", seconds(total))], "Timings"))
    return f'<div class="kvs">{"".join(parts)}</div>'
