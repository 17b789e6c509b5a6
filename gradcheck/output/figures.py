"""The HTML report's figures, each an HTML ``<figure>``: inline SVG plus a text alternative with its numbers.

- :func:`time_step_map`: err/tol of every (state or time-indexed input, t), the first bad step outlined.
- :func:`block_bars`: err/tol of every parameter block on a log axis, with the line at 1.
- :func:`step_curve`: a row's step-size re-check (error vs step, log-log) with the verdict it gave.

They read :class:`~gradcheck.output.reportdata.RowView` rows and never recompute the check.
"""

from __future__ import annotations

import math

from . import svg
from .reportdata import RowView, step_size_at_fault
from .svg import esc
from .text import index_str, sci

# The map's cells take at most MAP_WIDTH pixels (with the labels, within the page's 1200), so a whole run fits
# the first screen down to cells MIN_CELL pixels wide (470 steps); longer runs scroll sideways.
MAP_WIDTH = 940
MIN_CELL = 2
BAR_WIDTH = 560  # pixels of the block bars' axis


def _label_width(labels) -> float:
    return min(max(7.5 * max((len(s) for s in labels), default=1) + 24, 56), 220)


def time_groups(rows: list[RowView]) -> list[tuple[RowView, dict[int, RowView]]]:
    """The map's rows: one per (kind, name, part) indexed by time, in report order, each ``{t: row}``."""
    groups: dict[tuple, dict[int, RowView]] = {}
    for r in rows:
        if r.t is not None:
            groups.setdefault((r.kind, r.block), {})[r.t] = r
    return [(next(iter(g.values())), g) for g in groups.values()]


def _spans(ts: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    out, start = [], None
    for k, t in enumerate(ts):
        if start is None:
            start = t
        if k + 1 == len(ts) or ts[k + 1] != t + 1:
            out.append(str(start) if start == t else f"{start}-{t}")
            start = None
    return ", ".join(out)


def _row_title(r: RowView) -> str:
    verdict = (r.diagnosis or {}).get("verdict")
    status = "passes" if r.passed else "FAILS" + (f" ({verdict})" if verdict else "")
    zero = "; zero by construction" if r.get("zero") else ""
    return f"{r.label}: err/tol {sci(r.ratio)} {status}{zero}"


def time_step_map(rows: list[RowView], first_bad: tuple[str, int] | None) -> str:
    """The time-step map as a ``<figure>``, or a paragraph saying there is nothing indexed by time."""
    groups = time_groups(rows)
    if not groups:
        return (
            '<p class="note">No state or time-indexed input rows in this report (the model declares no '
            "state), so there is no time-step map.</p>"
        )
    cells = [r for _, g in groups for r in g.values()]
    bad = [r for r in cells if not r.passed]
    per_row = [
        f"{head.block} at t={_spans(sorted(t for t, r in g.items() if not r.passed))}"
        for head, g in groups
        if any(not r.passed for r in g.values())
    ]
    worst = max(cells, key=lambda r: math.inf if math.isnan(r.ratio) else r.ratio)
    words = [f"{len(bad)} of {len(cells)} cells fail" + (f": {'; '.join(per_row)}." if per_row else ".")]
    at_fault = step_size_at_fault(rows)
    if first_bad:
        words.append(
            f"First bad step (the latest time step whose state fails: going back in time, the error "
            f"enters there): {first_bad[0]}, t={first_bad[1]}."
            + (" The step-size re-check blames the step, not the gradient." if at_fault else "")
        )
    words.append(f"Largest err/tol: {worst.label}, {sci(worst.ratio)}.")
    return (
        f'<figure class="map"><div class="scroll">{_map_svg(groups, first_bad, at_fault)}</div>{svg.legend()}'
        f"<figcaption>{esc(' '.join(words))}</figcaption>{_map_table(groups, first_bad)}</figure>"
    )


def _map_svg(groups, first_bad, at_fault: bool) -> str:
    steps = max(t for _, g in groups for t in g) + 1
    labels = [
        head.block + ("" if head.kind in ("state", "param") else f" ({head.kind})") for head, _ in groups
    ]
    label_w = _label_width(labels)
    cw = min(max(MAP_WIDTH / steps, MIN_CELL), 80)
    ch = 32 if len(groups) <= 8 else 20
    top = 44 if first_bad else 24
    width = max(label_w + steps * cw + 12, 360)
    height = top + len(groups) * ch + 28
    every = max(1, math.ceil(26 / cw))
    body = []
    marked = first_bad[1] if first_bad else None
    for t in range(steps):  # every k-th step, and the first bad one, each label 26 px clear of that one
        if t == marked or (t % every == 0 and (marked is None or abs(t - marked) * cw >= 26)):
            body.append(svg.text(label_w + (t + 0.5) * cw, top - 6, str(t), anchor="middle", cls="col-label"))
    outline = ""
    for k, (head, g) in enumerate(groups):
        y = top + k * ch
        body.append(svg.text(label_w - 8, y + ch / 2 + 4, labels[k], anchor="end", cls="row-label"))
        for t, r in sorted(g.items()):
            body.append(_map_cell(r, label_w + t * cw, y, cw, ch))
            if first_bad and head.kind == "state" and (r.name, r.t) == first_bad and head.part is None:
                outline = _outline(label_w + t * cw, y, cw, ch, width, first_bad, at_fault)
    body.append(svg.text(label_w, height - 8, "time step t \u2192", cls="axis-title"))
    title = "Time-step map: err/tol of every state and time-indexed input at every time step"
    return svg.figure_svg(
        width,
        height,
        "".join(body) + outline,
        ident="map-svg",
        title=title,
        desc="Rows: states and inputs; columns: time steps t; colour: log10 err/tol on the "
        "fixed scale below; a cross marks a failing cell; the first bad step is outlined.",
    )


def _map_cell(r: RowView, x: float, y: float, cw: float, ch: float) -> str:
    fill = svg.colour(r.ratio)
    parts = [svg.el("title", None, esc(_row_title(r))), svg.rect(x, y, cw, ch, fill=fill, cls="cell-fill")]
    if not r.passed:
        parts.append(
            svg.cross(
                x + cw / 2, y + ch / 2, min(cw, ch) * 0.27, svg.ink(fill), width=2.0 if cw >= 16 else 1.2
            )
        )
    if math.isnan(r.ratio):
        parts.append(svg.text(x + cw / 2, y + ch / 2 + 4, "?", anchor="middle", cls="cell-text"))
    elif r.get("zero") and cw >= 14:
        dark = " on-dark" if svg.ink(fill) == "#ffffff" else ""
        parts.append(svg.text(x + cw / 2, y + ch / 2 + 4, "0", anchor="middle", cls="cell-text" + dark))
    attrs = {
        "class": "cell",
        "data-row": r.block,
        "data-kind": r.kind,
        "data-t": str(r.t),
        "data-status": "pass" if r.passed else "fail",
    }
    return svg.el("g", attrs, "".join(parts))


def _outline(x, y, cw, ch, width, first_bad, at_fault: bool) -> str:
    """The first bad step: a black and white frame, a pointer and words above its column."""
    cx = x + cw / 2
    what = "first failing step (the step size is at fault)" if at_fault else "error enters here"
    words = f"{what}: {first_bad[0]}, t={first_bad[1]}"
    anchor, tx = ("start", max(cx - 8, 4)) if cx < width / 2 else ("end", min(cx + 8, width - 4))
    return svg.el(
        "g",
        {"class": "first-bad", "data-row": first_bad[0], "data-t": str(first_bad[1])},
        svg.rect(x - 1.5, y - 1.5, cw + 3, ch + 3, fill="none", cls="outline-outer")
        + svg.rect(x + 1, y + 1, cw - 2, ch - 2, fill="none", cls="outline-inner")
        + svg.text(tx, 11, words, anchor=anchor, cls="enters-label")
        + svg.el(
            "path", {"class": "pointer", "d": f"M{svg.num(cx - 5)} 16L{svg.num(cx + 5)} 16L{svg.num(cx)} 23Z"}
        ),
    )


def _map_table(groups, first_bad) -> str:
    steps = max(t for _, g in groups for t in g) + 1
    head = "".join(f'<th scope="col">{t}</th>' for t in range(steps))
    body = []
    for g_head, g in groups:
        cells = []
        for t in range(steps):
            r = g.get(t)
            if r is None:
                cells.append("<td>-</td>")
                continue
            val = esc(sci(r.ratio)) + ("" if r.passed else " \u00d7")
            if first_bad and (r.name, r.t) == first_bad and g_head.kind == "state":
                val = f"<strong>{val} (first bad step)</strong>"
            cells.append(f'<td class="{"fail" if not r.passed else "pass"}">{val}</td>')
        body.append(f'<tr><th scope="row">{esc(g_head.block)}</th>{"".join(cells)}</tr>')
    return (
        "<details><summary>The map's numbers: err/tol per row and t (\u00d7 fails)</summary>"
        f'<div class="scroll"><table class="numbers"><thead><tr><th scope="col">row \\ t</th>{head}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table></div></details>"
    )


# ------------------------------------------------------------------------------------------------ block bars


def block_bars(rows: list[RowView]) -> str:
    """err/tol per parameter block on the fixed log axis as a ``<figure>`` (or a note if there are none)."""
    blocks = [r for r in rows if r.t is None]
    if not blocks:
        return '<p class="note">No parameter blocks in this report.</p>'
    label_w = _label_width([r.block for r in blocks])
    axis = svg.LogAxis(svg.LOG_LO, svg.LOG_HI, label_w, label_w + BAR_WIDTH)
    pitch, bar_h, top = 24, 16, 26
    bottom = top + len(blocks) * pitch
    body = []
    for k in range(axis.lo, axis.hi + 1):
        x = axis.at_log(k)
        body.append(svg.line(x, top - 4, x, bottom, cls="grid"))
        if (k - axis.lo) % 2 == 0:
            body.append(svg.text(x, bottom + 16, svg.tick_label(k), anchor="middle", cls="tick-label"))
    span = f"bars start at {svg.tick_label(axis.lo)} and stop at {svg.tick_label(axis.hi)}"
    body.append(svg.text(axis.p0, bottom + 32, f"err/tol (log scale; {span})", cls="axis-title"))
    for i, r in enumerate(blocks):
        body.append(_bar(r, axis, top + i * pitch + (pitch - bar_h) / 2, bar_h, label_w))
    one = axis.at_log(0)
    body += [
        svg.line(one, top - 8, one, bottom + 4, cls="one"),
        svg.text(one, top - 12, "err/tol = 1 (tolerance)", anchor="middle", cls="small"),
    ]
    figure = svg.figure_svg(
        label_w + BAR_WIDTH + 24,
        bottom + 40,
        "".join(body),
        ident="bars-svg",
        title="Block bars: err/tol of every parameter block",
        desc=f"One bar per parameter block on a log axis ({span}); the vertical line is "
        "err/tol = 1; a cross marks a failing block.",
    )
    words = "; ".join(f"{r.block} {sci(r.ratio)} ({'passes' if r.passed else 'fails'})" for r in blocks)
    return f'<figure class="bars">{figure}<figcaption>err/tol per block: {esc(words)}.</figcaption></figure>'


def _bar(r: RowView, axis: svg.LogAxis, y: float, h: float, label_w: float) -> str:
    fill = svg.colour(r.ratio)
    parts = [
        svg.el("title", None, esc(_row_title(r))),
        svg.text(label_w - 8, y + h / 2 + 4, r.block, anchor="end", cls="row-label"),
    ]
    if math.isnan(r.ratio):  # no bar: a NaN has no length
        if not r.passed:
            parts.append(svg.cross(axis.p0 + 8, y + h / 2, 4.5, "#000000"))
        parts.append(svg.text(axis.p0 + 18, y + h / 2 + 4, "NaN (no comparison)", cls="value"))
    else:
        end = axis.pos(r.ratio)
        parts.append(svg.rect(axis.p0, y, end - axis.p0, h, fill=fill, cls="bar"))
        inside = end > axis.p1 - 90
        colour = svg.ink(fill) if inside else "#000000"
        mark_x, text_x = (end - 10, end - 20) if inside else (end + 10, end + 20)
        if not r.passed:
            parts.append(svg.cross(mark_x, y + h / 2, 4.5, colour))
        elif not inside:
            text_x = end + 6
        parts.append(
            svg.text(
                text_x,
                y + h / 2 + 4,
                sci(r.ratio),
                anchor="end" if inside else "start",
                cls="value" + (" on-dark" if colour == "#ffffff" else ""),
            )
        )
    attrs = {"class": "block", "data-row": r.block, "data-status": "pass" if r.passed else "fail"}
    return svg.el("g", attrs, "".join(parts))


# ---------------------------------------------------------------------------------------------- step curves


def step_curve(r: RowView, k: int, *, eps: float | None = None) -> str:
    """A row's step-size re-check as a ``<figure>``: |analytic - numeric| against the step, log-log, with the
    row's tolerance, the complex-step error when there is one, and the check's own step ``eps``."""
    diag = r.diagnosis or {}
    steps = [float(s) for s in diag.get("steps") or []]
    errors = [float(e) for e in diag.get("max_errors") or []]
    tol = _float(diag.get("tolerance", r.get("tolerance")))
    cs = _float(diag.get("complex_step_error"))
    verdict = diag.get("verdict", "no verdict")
    w, h, x0, x1, y0, y1 = 284.0, 236.0, 62.0, 272.0, 34.0, 190.0
    xa = svg.LogAxis.around(steps, x0, x1)
    ya = svg.LogAxis.around(errors + [v for v in (tol, cs) if v is not None], y1, y0, pad=0.15)
    body = [svg.text(8, 16, f"{r.label}: {verdict}", cls="curve-title")]
    body += _axes(xa, ya)
    pts = sorted(zip(steps, errors))
    coords = [(xa.pos(s), ya.pos(e)) for s, e in pts]
    if tol is not None and tol > 0:
        body += _hline(ya, tol, x0, x1, "tol", f"tolerance {sci(tol)}")
    if cs is not None:
        body += _hline(ya, cs, x0, x1, "cs", f"complex step {sci(cs)}")
    if eps and xa.lo <= math.log10(eps) <= xa.hi:
        body.append(svg.line(xa.pos(eps), y0, xa.pos(eps), y1, cls="eps"))
        body.append(svg.text(xa.pos(eps), y0 - 4, "eps", anchor="middle", cls="small"))
    cls = (
        "wrong" if verdict == "wrong gradient" else "fd" if verdict == "finite-difference error" else "other"
    )
    body.append(
        svg.el(
            "polyline",
            {
                "class": f"curve {cls}",
                "fill": "none",
                "points": " ".join(f"{svg.num(x)},{svg.num(y)}" for x, y in coords),
            },
        )
    )
    for (s, e), (x, y) in zip(pts, coords):
        body.append(
            svg.el(
                "circle",
                {"class": f"point {cls}", "cx": x, "cy": y, "r": 3.5},
                svg.el("title", None, esc(f"step {sci(s)}: error {sci(e)}")),
            )
        )
    figure = svg.figure_svg(
        w,
        h,
        "".join(body),
        ident=f"curve-{k}",
        title=f"{r.label}: {verdict}",
        desc="|analytic - numeric| of the row's worst entries against the finite-difference "
        "step, both log scales; dashed: the row's tolerance.",
    )
    caption = _curve_caption(r, diag, pts, tol, cs)
    return f'<figure class="curve" data-row="{esc(r.label)}">{figure}{caption}</figure>'


def _float(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _axes(xa: svg.LogAxis, ya: svg.LogAxis) -> list[str]:
    out = [svg.rect(xa.p0, ya.p1, xa.p1 - xa.p0, ya.p0 - ya.p1, fill="none", cls="frame")]
    for k in xa.ticks(5):
        x = xa.at_log(k)
        out += [
            svg.line(x, ya.p1, x, ya.p0, cls="grid"),
            svg.text(x, ya.p0 + 14, svg.tick_label(k), anchor="middle", cls="tick-label x-tick"),
        ]
    for k in ya.ticks(6):
        y = ya.at_log(k)
        out += [
            svg.line(xa.p0, y, xa.p1, y, cls="grid"),
            svg.text(xa.p0 - 5, y + 4, svg.tick_label(k), anchor="end", cls="tick-label y-tick"),
        ]
    out.append(
        svg.text(
            (xa.p0 + xa.p1) / 2, ya.p0 + 32, "finite-difference step h", anchor="middle", cls="axis-title"
        )
    )
    out.append(
        svg.text(
            12,
            (ya.p0 + ya.p1) / 2,
            "|analytic - numeric|",
            anchor="middle",
            cls="axis-title",
            transform=f"rotate(-90 12 {svg.num((ya.p0 + ya.p1) / 2)})",
        )
    )
    return out


def _hline(ya: svg.LogAxis, v: float, x0: float, x1: float, cls: str, words: str) -> list[str]:
    y = ya.pos(v)
    return [
        svg.line(x0, y, x1, y, cls=cls),
        svg.text(x1 - 3, y - 4, words, anchor="end", cls=f"small {cls}-label"),
    ]


def _curve_caption(r: RowView, diag: dict, pts, tol, cs) -> str:
    rows = "".join(f"<tr><td>{esc(sci(s))}</td><td>{esc(sci(e))}</td></tr>" for s, e in pts)
    extra = f" Tolerance {sci(tol)}." if tol is not None else ""
    if cs is not None:
        extra += f" Complex step differs by {sci(cs)}."
    entries = diag.get("entries")
    if entries:
        extra += f" Entries re-checked: {', '.join(map(str, entries))}."
    reason = diag.get("reason", "")
    return (
        f"<figcaption><strong>{esc(r.label)}</strong> ({'passes' if r.passed else 'fails'}, err/tol "
        f"{esc(sci(r.ratio))}, worst index {esc(index_str(r.get('worst_index') or []))}): "
        f"{esc(diag.get('verdict', 'no verdict'))}: {esc(reason.rstrip('.'))}.{esc(extra)}"
        '<table class="numbers small"><thead><tr><th scope="col">step</th><th scope="col">|analytic - '
        f"numeric|</th></tr></thead><tbody>{rows}</tbody></table></figcaption>"
    )
