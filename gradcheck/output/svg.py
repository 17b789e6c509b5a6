"""Inline SVG for the HTML report, with no dependency: elements, log axes and the err/tol colour scale.

Every coordinate is written with at most two decimals (:func:`num`), and every attribute in the order given,
so the same figure is the same bytes. The colour scale is fixed (the same colours mean the same err/tol in
every report): log10(err/tol) clipped to [:data:`LOG_LO`, :data:`LOG_HI`] in steps of :data:`BIN` decades; a
step whose upper end is at most 0 (err/tol <= 1) is a blue of ColorBrewer's Blues, darker towards 1; above 1
an orange of Oranges, darker towards 1e8. Blue against orange stays distinct under the common colour-vision
deficiencies, and failing cells also carry a cross, so nothing rests on colour alone.
"""

from __future__ import annotations

import html
import math

from .junit import xml_text

LOG_LO, LOG_HI = -12, 8  # decades of err/tol on the colour scale and the block bars' axis
BIN = 0.25  # decades per colour step
NAN_COLOUR = "#9e9e9e"
_PASS_ANCHORS = ["#eff3ff", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"]
_FAIL_ANCHORS = ["#fdae6b", "#fd8d3c", "#f16913", "#d94801", "#a63603", "#7f2704"]


def esc(x) -> str:
    """Text or attribute value, escaped for HTML and XML alike; characters neither may carry (controls, lone
    surrogates) are written as \\xNN, as the JUnit report does."""
    return html.escape(xml_text(x), quote=True)


def num(x: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros, never "-0"."""
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def el(tag: str, attrs: dict | None = None, body: str | None = None) -> str:
    """``<tag a="v">body</tag>``, or ``<tag a="v"/>`` when ``body`` is None. Attributes whose value is None
    are left out; floats are written by :func:`num`; every value is escaped."""
    parts = [tag]
    for key, value in (attrs or {}).items():
        if value is None:
            continue
        if isinstance(value, float):
            value = num(value)
        parts.append(f'{key}="{esc(value)}"')
    head = " ".join(parts)
    return f"<{head}/>" if body is None else f"<{head}>{body}</{tag}>"


def figure_svg(width: float, height: float, body: str, *, ident: str, title: str, desc: str = "") -> str:
    """An ``<svg role="img">`` whose accessible name is its ``<title>`` (and ``<desc>``), sized in pixels."""
    labelled = f"{ident}-title" + (f" {ident}-desc" if desc else "")
    head = el("title", {"id": f"{ident}-title"}, esc(title))
    if desc:
        head += el("desc", {"id": f"{ident}-desc"}, esc(desc))
    attrs = {
        "id": ident,
        "role": "img",
        "aria-labelledby": labelled,
        "width": float(math.ceil(width)),
        "height": float(math.ceil(height)),
        "viewBox": f"0 0 {math.ceil(width)} {math.ceil(height)}",
    }
    return el("svg", attrs, head + body)


def text(x: float, y: float, s: str, *, anchor: str = "start", cls: str | None = None, **attrs) -> str:
    return el("text", {"x": float(x), "y": float(y), "text-anchor": anchor, "class": cls, **attrs}, esc(s))


def line(x1: float, y1: float, x2: float, y2: float, *, cls: str | None = None, **attrs) -> str:
    return el(
        "line", {"x1": float(x1), "y1": float(y1), "x2": float(x2), "y2": float(y2), "class": cls, **attrs}
    )


def rect(
    x: float, y: float, w: float, h: float, *, fill: str | None = None, cls: str | None = None, **attrs
) -> str:
    return el(
        "rect",
        {
            "x": float(x),
            "y": float(y),
            "width": float(w),
            "height": float(h),
            "fill": fill,
            "class": cls,
            **attrs,
        },
    )


def cross(cx: float, cy: float, r: float, colour: str, *, width: float = 2.0) -> str:
    """The failure mark: an x of half-size ``r`` centred on (cx, cy)."""
    d = (
        f"M{num(cx - r)} {num(cy - r)}L{num(cx + r)} {num(cy + r)}"
        f"M{num(cx - r)} {num(cy + r)}L{num(cx + r)} {num(cy - r)}"
    )
    return el(
        "path", {"class": "mark", "d": d, "stroke": colour, "stroke-width": float(width), "fill": "none"}
    )


# ---------------------------------------------------------------------------------------------- colour scale


def _hex(rgb) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgb)


def _ramp(anchors: list[str], n: int) -> list[str]:
    """``n`` colours evenly along the piecewise-linear path through ``anchors`` (sRGB)."""
    pts = [tuple(int(a[k : k + 2], 16) for k in (1, 3, 5)) for a in anchors]
    out = []
    for i in range(n):
        u = i / (n - 1) * (len(pts) - 1)
        k = min(int(u), len(pts) - 2)
        f = u - k
        out.append(_hex(a + (b - a) * f for a, b in zip(pts[k], pts[k + 1])))
    return out


N_PASS = round(-LOG_LO / BIN)
N_FAIL = round(LOG_HI / BIN)
PALETTE = _ramp(_PASS_ANCHORS, N_PASS) + _ramp(_FAIL_ANCHORS, N_FAIL)


def log_ratio(ratio: float) -> float:
    """log10(err/tol) clipped to the scale (0 -> LOG_LO, inf -> LOG_HI); NaN stays NaN."""
    if math.isnan(ratio):
        return math.nan
    if ratio <= 0:
        return float(LOG_LO)
    return min(max(math.log10(ratio), LOG_LO), LOG_HI) if ratio != math.inf else float(LOG_HI)


def bin_index(ratio: float) -> int | None:
    """The colour step of ``ratio``: step i covers log10 in (LOG_LO + i*BIN, LOG_LO + (i+1)*BIN], so that
    err/tol = 1 (which passes) is the last blue. None for NaN."""
    x = log_ratio(ratio)
    if math.isnan(x):
        return None
    return min(max(math.ceil((x - LOG_LO) / BIN) - 1, 0), len(PALETTE) - 1)


def colour(ratio: float) -> str:
    i = bin_index(ratio)
    return NAN_COLOUR if i is None else PALETTE[i]


def ink(fill: str) -> str:
    """Black or white, whichever reads better on ``fill`` (relative luminance)."""
    r, g, b = (int(fill[k : k + 2], 16) / 255 for k in (1, 3, 5))
    lum = sum(
        w * (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
        for w, c in zip((0.2126, 0.7152, 0.0722), (r, g, b))
    )
    return "#000000" if lum > 0.2 else "#ffffff"


# ------------------------------------------------------------------------------------------------------ axes


def tick_label(k: int) -> str:
    """The label of 10**k: "1", "1e3", "1e-6" (read back by ``float()``)."""
    return "1" if k == 0 else f"1e{k}"


class LogAxis:
    """Decades ``lo``..``hi`` (integers, lo < hi) of a log axis mapped linearly to pixels ``p0``..``p1``."""

    def __init__(self, lo: int, hi: int, p0: float, p1: float):
        if not hi > lo:
            raise ValueError(f"LogAxis: need hi > lo, got {lo}..{hi}")
        self.lo, self.hi, self.p0, self.p1 = lo, hi, p0, p1

    @classmethod
    def around(cls, values, p0: float, p1: float, *, pad: float = 0.0) -> LogAxis:
        """The decades that hold every positive finite value, ``pad`` decades clear of both ends (at least one
        decade)."""
        logs = [math.log10(v) for v in values if v > 0 and math.isfinite(v)]
        lo = math.floor(min(logs) - pad) if logs else -1
        hi = max(math.ceil(max(logs) + pad), lo + 1) if logs else 0
        return cls(lo, hi, p0, p1)

    def at_log(self, x: float) -> float:
        return self.p0 + (x - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def pos(self, v: float) -> float:
        """Pixel of ``v``, clipped to the axis (0 and below go to its low end)."""
        x = math.log10(v) if v > 0 else -math.inf
        return self.at_log(min(max(x, self.lo), self.hi))

    def ticks(self, most: int = 7) -> list[int]:
        """Decades to label: every k-th, at most ``most`` of them, always both ends."""
        k = max(1, math.ceil((self.hi - self.lo) / (most - 1)))
        out = list(range(self.lo, self.hi + 1, k))
        return out if out[-1] == self.hi else out + [self.hi]


def legend(width: float = 480.0, *, ident: str = "legend") -> str:
    """The colour scale as its own SVG: one swatch per colour step, decade ticks, the line at err/tol = 1, and
    the marks (cross = fails, grey = NaN)."""
    x0, y0, bar_h = 30.0, 22.0, 14.0
    axis = LogAxis(LOG_LO, LOG_HI, x0, x0 + width)
    step = width / len(PALETTE)
    body = [text(x0, 12, "err/tol (log scale; the colour of every cell and bar):", cls="small")]
    body += [rect(x0 + i * step, y0, step + 0.02, bar_h, fill=c, cls="swatch") for i, c in enumerate(PALETTE)]
    for k in range(LOG_LO, LOG_HI + 1, 2):
        x = axis.at_log(k)
        label = ("<=" if k == LOG_LO else ">=" if k == LOG_HI else "") + tick_label(k)
        body += [
            line(x, y0 + bar_h, x, y0 + bar_h + 4, cls="tick"),
            text(x, y0 + bar_h + 15, label, anchor="middle", cls="tick-label"),
        ]
    one = axis.at_log(0)
    body += [
        line(one, y0 - 4, one, y0 + bar_h + 4, cls="one"),
        text(
            one,
            y0 + bar_h + 28,
            "1 = tolerance: passes at or below, fails above",
            anchor="middle",
            cls="small",
        ),
    ]
    kx = x0 + width + 24
    body += [
        rect(kx, y0, bar_h, bar_h, fill=PALETTE[-4]),
        cross(kx + bar_h / 2, y0 + bar_h / 2, 4, "#ffffff"),
        text(kx + bar_h + 5, y0 + 11, "fails", cls="small"),
        rect(kx + 60, y0, bar_h, bar_h, fill=NAN_COLOUR),
        text(kx + 60 + bar_h + 5, y0 + 11, "NaN", cls="small"),
    ]
    return figure_svg(
        kx + 130,
        y0 + bar_h + 34,
        "".join(body),
        ident=ident,
        title="Colour scale of err/tol",
        desc=f"log10(err/tol) from {LOG_LO} to {LOG_HI} in steps of {BIN}: blues up to err/tol = 1 "
        f"(passes), oranges above (fails); failing cells also carry a cross.",
    )
