"""The HTML report page: its figures' marks match the report's numbers, it parses, it is deterministic and
self-contained, and bad input is a clear error.

The SVG is read back the way a person reads it, not through the renderer's own functions: a cell's colour
through the legend's swatches and tick labels, a bar's end and a curve's points through their axes' tick
labels. Each of these readers is shown to fail on a page that does not match its report (a planted wrong
number) beside the page that does.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st
from user_models import Linear, UserLSTM

import gradcheck
from gradcheck.cli import main
from gradcheck.output.html import html_page
from gradcheck.output.json_report import json_text
from gradcheck.output.reportdata import ReportDataError
from gradcheck.output.selftest_html import selftest_page


def report_dict(model, **kw) -> dict:
    return json.loads(json_text(gradcheck.check(model, **kw)))


@pytest.fixture(scope="module")
def passing():
    return report_dict(gradcheck.ReferenceLSTM(3, 4, 5))


@pytest.fixture(scope="module")
def failing():
    """The README's dropped-carry example: a 5-step LSTM whose backward drops dL(t+1)/ds(t)."""
    return report_dict(UserLSTM(steps=5, bug="drop_ds_carry"))


@pytest.fixture(scope="module")
def step_error():
    """A right gradient checked with far too large a step: rows that fail by finite-difference error."""
    return report_dict(gradcheck.ReferenceLSTM(3, 4, 5), method="central", eps=3e-2)


def edited(d: dict) -> dict:
    """``d`` with the fields other developers are adding, by hand: time-indexed input rows, parts of a fused
    block, ``wrong_entries``, ``zero``, a passing row's step sweep (a V), inf and NaN rows, ``rerun``,
    ``model_spec`` and a diagnosis ``tolerance``."""
    d = copy.deepcopy(d)
    rows = d["rows"]
    state = next(r for r in rows if r["kind"] == "state")
    for t in range(5):
        rows.append(
            dict(
                state,
                kind="input",
                name="x",
                t=t,
                passed=t != 1,
                ratio=3e2 if t == 1 else 10.0 ** -(t + 3),
                diagnosis=None,
            )
        )
    wx = next(r for r in rows if r["name"] == "Wx")
    for k, part in enumerate("gifo"):
        rows.append(
            dict(
                wx,
                part=part,
                passed=part != "f",
                ratio=4e3 if part == "f" else 2e-4 * (k + 1),
                diagnosis=None,
            )
        )
    bad = next(r for r in rows if r["name"] == "s" and r["t"] == 2)
    bad["wrong_entries"] = [
        {"index": [0], "analytic": 0.5574, "numeric": 0.08112, "abs_err": 0.4763},
        {"index": [3], "analytic": -0.25, "numeric": -0.125, "abs_err": 0.125},
    ]
    bad["diagnosis"]["tolerance"] = bad["tolerance"]
    good = next(r for r in rows if r["name"] == "h" and r["t"] == 3)
    good["zero"] = True
    good["diagnosis"] = {
        "verdict": "finite-difference error",
        "reason": "a V: truncation then round-off",
        "steps": [1e-2, 1e-4, 1e-6, 1e-8, 1e-10],
        "max_errors": [1e-4, 1e-8, 1e-10, 1e-8, 1e-6],
    }
    rows.append(
        dict(wx, name="c", passed=False, ratio="inf", note="param_grads['c'] is missing", diagnosis=None)
    )
    rows.append(
        dict(wx, name="d", passed=False, ratio="nan", note="the analytic gradient holds NaN", diagnosis=None)
    )
    d["rerun"] = "gradcheck run --model my_models:buggy_lstm --seed 0"
    d["model_spec"] = "my_models:buggy_lstm"
    return d


def label(r: dict) -> str:
    block = r["name"] if r.get("part") is None else f"{r['name']}:{r['part']}"
    return block if r["t"] is None else f"{block}[t={r['t']}]"


def ratio(r: dict) -> float:
    return float(r["ratio"])


# -------------------------------------------------------------------------------------- reading the SVG back


def xml(page: str) -> ET.Element:
    return ET.fromstring(page)


def by_id(root: ET.Element, ident: str) -> ET.Element:
    found = [e for e in root.iter() if e.get("id") == ident]
    assert len(found) == 1, f"expected one element with id {ident!r}, found {len(found)}"
    return found[0]


def cls(e: ET.Element) -> list[str]:
    return (e.get("class") or "").split()


def fit(points: list[tuple[float, float]]):
    """The linear map pixel -> log10(value) through labelled ticks (every tick must lie on it)."""
    (p0, v0), (p1, v1) = points[0], points[-1]
    slope = (v1 - v0) / (p1 - p0)
    for p, v in points:
        assert abs(v0 + (p - p0) * slope - v) < 1e-3, f"tick {v} at {p} off the axis through the other ticks"
    return lambda p: v0 + (p - p0) * slope


def tick_value(s: str) -> float:
    return math.log10(float(s.replace("<=", "").replace(">=", "")))


def legend(root):
    """``{fill: (lo, hi)}`` in log10(err/tol) read from the legend's swatches and tick labels, the scale's
    ends, and the NaN colour."""
    leg = by_id(root, "legend")
    ticks = [(float(t.get("x")), tick_value(t.text)) for t in leg.iter("text") if "tick-label" in cls(t)]
    to_log = fit(ticks)
    bins: dict[str, tuple[float, float]] = {}
    for r in leg.iter("rect"):
        if "swatch" in cls(r):
            x, w = float(r.get("x")), float(r.get("width"))
            lo, hi = to_log(x), to_log(x + w - 0.02)
            old = bins.get(r.get("fill"), (lo, hi))
            bins[r.get("fill")] = (min(lo, old[0]), max(hi, old[1]))
    texts = list(leg.iter("text"))
    nan_at = next(t for t in texts if t.text == "NaN")
    nan_fill = min(
        (r for r in leg.iter("rect") if "swatch" not in cls(r)),
        key=lambda r: abs(float(r.get("x")) - float(nan_at.get("x"))),
    ).get("fill")
    return bins, (ticks[0][1], ticks[-1][1]), nan_fill


def clipped(x: float, ends) -> float:
    if math.isnan(x):
        return x
    return min(max(math.log10(x) if x > 0 else -math.inf, ends[0]), ends[1])


def assert_map_matches(page: str, d: dict) -> None:
    """Every time-indexed row of ``d`` is one cell of the map: in its row and column (read from the labels),
    its colour's legend range holding its err/tol, a cross exactly when it fails; the first bad step
    outlined."""
    root = xml(page)
    bins, ends, nan_fill = legend(root)
    m = by_id(root, "map-svg")
    cols = {t.text: float(t.get("x")) for t in m.iter("text") if "col-label" in cls(t)}
    row_y = {t.text: float(t.get("y")) - 4 for t in m.iter("text") if "row-label" in cls(t)}
    cells = {(g.get("data-row"), g.get("data-t")): g for g in m.iter("g") if "cell" in cls(g)}
    timed = [r for r in d["rows"] if r["t"] is not None]
    assert len(cells) == len(timed), f"{len(cells)} cells for {len(timed)} time-indexed rows"
    for r in timed:
        block = label(dict(r, t=None))
        g = cells[(block, str(r["t"]))]
        rect = next(e for e in g.iter("rect"))
        x, y, w, h = (float(rect.get(k)) for k in ("x", "y", "width", "height"))
        if str(r["t"]) in cols:
            assert abs(x + w / 2 - cols[str(r["t"])]) < 0.5, f"{label(r)} is not under its column label"
        head = block if r["kind"] in ("state", "param") else f"{block} ({r['kind']})"
        assert abs(y + h / 2 - row_y[head]) < 0.5, f"{label(r)} is not beside its row label"
        want = clipped(ratio(r), ends)
        if math.isnan(want):
            assert rect.get("fill") == nan_fill, f"{label(r)}: NaN drawn as {rect.get('fill')}"
        else:
            lo, hi = bins[rect.get("fill")]
            assert lo - 1e-6 <= want <= hi + 1e-6, (
                f"{label(r)}: err/tol {r['ratio']} drawn in the legend's colour for 1e{lo:.2f}..1e{hi:.2f}"
            )
        marked = any("mark" in cls(e) for e in g.iter("path"))
        assert marked == (not r["passed"]), f"{label(r)}: cross {marked} but passed {r['passed']}"
    outlines = [g for g in m.iter("g") if "first-bad" in cls(g)]
    fb = d.get("first_bad_step")
    assert len(outlines) == (1 if fb else 0)
    if fb:
        frame = next(e for e in outlines[0].iter("rect"))
        cell = next(e for e in cells[(fb["name"], str(fb["t"]))].iter("rect"))
        cx = float(frame.get("x")) + float(frame.get("width")) / 2
        cy = float(frame.get("y")) + float(frame.get("height")) / 2
        assert abs(cx - float(cell.get("x")) - float(cell.get("width")) / 2) < 0.5
        assert abs(cy - float(cell.get("y")) - float(cell.get("height")) / 2) < 0.5


def assert_bars_match(page: str, d: dict) -> None:
    """Every parameter block is a bar whose end, read on the axis's tick labels, is its err/tol (clipped to
    the axis), with a cross exactly when it fails; the line at 1 stands at the tick labelled 1."""
    root = xml(page)
    bars = by_id(root, "bars-svg")
    ticks = [(float(t.get("x")), tick_value(t.text)) for t in bars.iter("text") if "tick-label" in cls(t)]
    to_log = fit(ticks)
    ends = (ticks[0][1], ticks[-1][1])
    one = next(e for e in bars.iter("line") if "one" in cls(e))
    assert abs(to_log(float(one.get("x1")))) < 1e-3, "the line at err/tol = 1 is not at the tick labelled 1"
    groups = {g.get("data-row"): g for g in bars.iter("g") if "block" in cls(g)}
    blocks = [r for r in d["rows"] if r["t"] is None]
    assert list(groups) == [label(r) for r in blocks], "bars are not the report's blocks in its order"
    for r in blocks:
        g = groups[label(r)]
        want = clipped(ratio(r), ends)
        bar = [e for e in g.iter("rect") if "bar" in cls(e)]
        if math.isnan(want):
            assert not bar and any(t.text and t.text.startswith("NaN") for t in g.iter("text"))
        else:
            end = float(bar[0].get("x")) + float(bar[0].get("width"))
            assert abs(to_log(end) - want) < 0.01, (
                f"{label(r)}: bar ends at 1e{to_log(end):.3f}, expected {want}"
            )
        marked = any("mark" in cls(e) for e in g.iter("path"))
        assert marked == (not r["passed"]), f"{label(r)}: cross {marked} but passed {r['passed']}"


def curve_rows(d: dict) -> list[dict]:
    """The rows that should have a curve: the failing ones with a sweep, worst first, and the worst passing
    one that has a sweep."""

    def key(r):
        x = ratio(r)
        return (r["passed"], -(math.inf if math.isnan(x) else x))

    swept = sorted([r for r in d["rows"] if (r.get("diagnosis") or {}).get("steps")], key=key)
    return [r for r in swept if not r["passed"]] + [r for r in swept if r["passed"]][:1]


def assert_curves_match(page: str, d: dict) -> None:
    """One step-size figure per row of :func:`curve_rows`, in that order, titled with the verdict; its points,
    read on the axes' tick labels, are the sweep's (step, error) pairs, and its dashed line the tolerance."""
    root = xml(page)
    figs = [f for f in root.iter("figure") if "curve" in cls(f)]
    want = curve_rows(d)
    assert [f.get("data-row") for f in figs] == [label(r) for r in want]
    for fig, r in zip(figs, want):
        diag = r["diagnosis"]
        svg = next(fig.iter("svg"))
        assert next(svg.iter("title")).text == f"{label(r)}: {diag['verdict']}"
        xs = fit([(float(t.get("x")), tick_value(t.text)) for t in svg.iter("text") if "x-tick" in cls(t)])
        ys = fit(
            sorted(
                ((float(t.get("y")) - 4, tick_value(t.text)) for t in svg.iter("text") if "y-tick" in cls(t)),
                reverse=True,
            )
        )
        points = [(xs(float(c.get("cx"))), ys(float(c.get("cy")))) for c in svg.iter("circle")]
        expected = sorted((math.log10(s), math.log10(e)) for s, e in zip(diag["steps"], diag["max_errors"]))
        assert len(points) == len(expected)
        for (px, py), (ex, ey) in zip(points, expected):
            assert abs(px - ex) < 0.005 and abs(py - ey) < 0.005, (
                f"{label(r)}: point ({px}, {py}) vs ({ex}, {ey})"
            )
        tol = float(diag.get("tolerance", r["tolerance"]))
        line = next(e for e in svg.iter("line") if "tol" in cls(e))
        assert abs(ys(float(line.get("y1"))) - math.log10(tol)) < 0.005, (
            f"{label(r)}: tolerance line misplaced"
        )


CHECKS = [assert_map_matches, assert_bars_match, assert_curves_match]


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("which", ["passing", "failing", "step_error", "edited"])
def test_figures_match_the_report(check, which, request):
    d = request.getfixturevalue("failing" if which == "edited" else which)
    d = edited(d) if which == "edited" else d
    check(html_page(d), d)


def plant(d: dict, where, **change) -> dict:
    d = copy.deepcopy(d)
    r = next(r for r in d["rows"] if where(r))
    r.update(change)
    return d


PLANTED = [
    ("map colour", assert_map_matches, lambda r: r["name"] == "s" and r["t"] == 3, {"ratio": 1e-3}),
    ("map cross", assert_map_matches, lambda r: r["name"] == "h" and r["t"] == 4, {"passed": False}),
    ("first bad step", assert_map_matches, None, {}),
    ("bar length", assert_bars_match, lambda r: r["name"] == "Wh", {"ratio": 3e3}),
    ("bar cross", assert_bars_match, lambda r: r["name"] == "b", {"passed": True}),
    ("curve point", assert_curves_match, lambda r: r["name"] == "s" and r["t"] == 2, {}),
    ("curve tolerance", assert_curves_match, lambda r: r["name"] == "Wx", {"tolerance": 1e-3}),
]


@pytest.mark.parametrize("what, check, where, change", PLANTED, ids=[p[0] for p in PLANTED])
def test_readers_catch_a_page_that_does_not_match(failing, what, check, where, change):
    """Each reader passes the page against its own report (above) and fails against a report with one number
    changed: the tests of the figures can fail."""
    page = html_page(failing)
    if what == "first bad step":
        other = dict(copy.deepcopy(failing), first_bad_step={"name": "s", "t": 2})
    elif what == "curve point":
        other = copy.deepcopy(failing)
        diag = next(r for r in other["rows"] if where(r))["diagnosis"]
        diag["max_errors"] = [e * 1.5 for e in diag["max_errors"]]
    elif what == "curve tolerance":  # the sweep's own tolerance (the row's, recorded by the re-check)
        other = copy.deepcopy(failing)
        next(r for r in other["rows"] if where(r))["diagnosis"].update(change)
    else:
        other = plant(failing, where, **change)
    check(page, failing)
    with pytest.raises(AssertionError):
        check(page, other)


# ---------------------------------------------------------------------------------------- what the page says


def test_failing_page_says_where_the_error_enters(failing):
    page = html_page(failing)
    head = page[: page.index('<section id="map">')]
    assert "FAIL" in head and "The error enters at <strong>s, t=3</strong>" in head
    assert failing["verdict"] in head
    assert "Reproduce: <code>gradcheck run --seed 0</code>" in head, "without rerun: the fallback command"
    assert "records no command line" in head


def test_sections_come_in_the_issue_order(failing):
    page = html_page(edited(failing))
    marks = [
        'class="badge"',
        'class="reproduce"',
        'id="map"',
        'id="blocks"',
        'id="steps"',
        'id="entries"',
        'id="settings"',
    ]
    places = [page.index(m) for m in marks]
    assert places == sorted(places)


def test_rerun_is_the_reproduce_command(failing):
    d = edited(failing)
    assert "<code>gradcheck run --model my_models:buggy_lstm --seed 0</code>" in html_page(d)
    d["rerun"] = "gradcheck run --model 'my models:f' --steps 5"
    assert "<code>gradcheck run --model &#x27;my models:f&#x27; --steps 5</code>" in html_page(d)


def test_passing_page(passing):
    page = html_page(passing)
    assert '<p class="badge">PASS</p>' in page and "error enters" not in page
    assert 'class="first-bad"' not in page
    root = xml(page)  # the worst passing row's sweep is drawn, titled with its verdict
    titles = [next(f.iter("title")).text for f in root.iter("figure") if "curve" in cls(f)]
    worst = max((r for r in passing["rows"] if r["diagnosis"]), key=lambda r: r["ratio"])
    assert titles == [f"{label(worst)}: passes"]


def test_step_error_verdict_is_drawn_as_such(step_error, failing):
    """A too-large step: the curves fall with the step (blue, verdict finite-difference error), not flat, and
    the page blames the step where the wrong gradient's page says the error enters."""
    page = html_page(step_error)
    assert "the step size is at fault, not the gradient" in page and "The error enters at" not in page
    assert "first failing step (the step size is at fault): s, t=3" in page
    assert "step size is at fault" not in html_page(failing)
    root = xml(page)
    figs = [f for f in root.iter("figure") if "curve" in cls(f)]
    figs = [f for f in figs if not next(f.iter("title")).text.endswith(": passes")]  # the worst passing row's
    assert figs
    for f in figs:
        assert "finite-difference error" in next(f.iter("title")).text
        assert any("fd" in cls(p) for p in f.iter("polyline"))


def test_edited_fields_are_shown(failing):
    d = edited(failing)
    root = xml(html_page(d))
    m = by_id(root, "map-svg")
    assert {t.text for t in m.iter("text") if "row-label" in cls(t)} == {"h", "s", "x (input)"}
    assert [t.text for t in by_id(root, "bars-svg").iter("text") if "row-label" in cls(t)][-6:] == [
        "Wx:g",
        "Wx:i",
        "Wx:f",
        "Wx:o",
        "c",
        "d",
    ]
    (table,) = [t for t in root.iter("table") if t.get("data-row") == "s[t=2]"]
    cells = [[td.text for td in tr.iter("td")] for tr in table.iter("tr")][1:]
    assert cells == [
        ["(0)", "5.574e-01", "8.112e-02", "4.763e-01"],
        ["(3)", "-2.500e-01", "-1.250e-01", "1.250e-01"],
    ]
    zero = next(g for g in m.iter("g") if g.get("data-row") == "h" and g.get("data-t") == "3")
    assert "zero by construction" in next(zero.iter("title")).text
    page = html_page(d)
    assert "param_grads[&#x27;c&#x27;] is missing" in page and "my_models:buggy_lstm" in page
    assert "Failing rows without a sweep" in page


def test_model_without_state_has_no_map():
    d = report_dict(Linear(bug="transpose"))
    page = html_page(d)
    assert "no time-step map" in page and 'id="map"' in page
    xml(page)
    assert_bars_match(page, d)


def test_long_runs_thin_the_column_labels():
    """T = 120: every cell drawn, column labels at least 20 px apart (the first bad step's too, here 1 step
    after a regular label), the map no wider than the page."""
    rows = [
        {"kind": "state", "name": name, "t": t, "passed": t > 117, "ratio": 1e-4 if t > 117 else 1e3}
        for name in ("h", "s")
        for t in range(120)
    ]
    d = {"rows": rows, "first_bad_step": {"name": "s", "t": 117}, "seed": 3}
    page = html_page(d)
    assert_map_matches(page, d)
    m = by_id(xml(page), "map-svg")
    xs = sorted(float(t.get("x")) for t in m.iter("text") if "col-label" in cls(t))
    assert min(b - a for a, b in itertools.pairwise(xs)) >= 20
    assert float(m.get("width")) <= 1200


# ---------------------------------------------------------------------------------------------- the document

VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "col", "area", "base", "source", "track", "embed"}
HTML_TAGS = VOID | {
    "html",
    "head",
    "body",
    "title",
    "style",
    "main",
    "header",
    "nav",
    "section",
    "h1",
    "h2",
    "h3",
    "p",
    "span",
    "strong",
    "code",
    "a",
    "figure",
    "figcaption",
    "details",
    "summary",
    "div",
    "ul",
    "li",
    "table",
    "caption",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}
SVG_TAGS = {"svg", "g", "rect", "line", "path", "text", "title", "desc", "circle", "polyline"}


class Structure(HTMLParser):
    """The HTML5 rules a strict validator would apply to our page, with the standard library's tokenizer:
    known elements only, no self-closed HTML element that is not void, unique ids, references that resolve,
    one document title; and nothing fetched: no src, no link but to the page itself, no url() or @import."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems, self.ids, self.refs, self.stack, self.in_svg, self.titles = [], [], [], [], 0, 0

    def handle_startendtag(self, tag, attrs):
        if not self.in_svg and tag not in VOID:
            self.problems.append(f"<{tag}/> is not a void element: HTML reads it as an open tag")
        self._attrs(tag, attrs)

    def handle_starttag(self, tag, attrs):
        self._attrs(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)
        self.in_svg += tag == "svg"
        self.titles += tag == "title" and not self.in_svg

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()
        self.in_svg -= tag == "svg"

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "style" and ("url(" in data or "@import" in data):
            self.problems.append("the stylesheet fetches something: the page must be self-contained")

    def _attrs(self, tag, attrs):
        known = SVG_TAGS if self.in_svg or tag == "svg" else HTML_TAGS
        if tag not in known:
            self.problems.append(f"unknown element <{tag}>")
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        self.refs += (a.get("aria-labelledby") or "").split()
        href = a.get("href")
        if href is not None and not href.startswith("#"):
            self.problems.append(f"link to {href!r}: the page must be self-contained")
        elif href:
            self.refs.append(href[1:])
        if "src" in a or "style" in a and "url(" in a["style"]:
            self.problems.append(f"<{tag}> fetches a resource: the page must be self-contained")


def assert_valid_page(page: str) -> None:
    assert page.startswith('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>')
    xml(page)  # well-formed: every element closed, every attribute quoted, every & escaped
    p = Structure()
    p.feed(page)
    p.close()
    assert not p.problems, "; ".join(p.problems)
    assert p.stack == [], f"unclosed: {p.stack}"
    assert len(p.ids) == len(set(p.ids)), "duplicate ids"
    assert set(p.refs) <= set(p.ids), f"references to missing ids: {set(p.refs) - set(p.ids)}"
    assert p.titles == 1, "one document title"
    for needle in ("<script", "<link", "<iframe", "<object"):
        assert needle not in page, f"the page must be self-contained and script-free: found {needle!r}"


@pytest.mark.parametrize("which", ["passing", "failing", "step_error", "edited"])
def test_page_is_valid_and_self_contained(which, request):
    d = request.getfixturevalue("failing" if which == "edited" else which)
    assert_valid_page(html_page(edited(d) if which == "edited" else d))


@pytest.mark.parametrize(
    "bad, problem",
    [
        ("<div/>", "not a void element"),
        ("<blink>x</blink>", "unknown element"),
        ('<p id="map">x</p>', "duplicate ids"),
        ('<a href="#nowhere">x</a>', "missing ids"),
        ("<p>unclosed", "unclosed|mismatched tag"),
        ("<script>console.log(1)</script>", "unknown element"),
        ('<a href="https://example.org">x</a>', "self-contained"),
        ('<img src="https://example.org/x.png"/>', "self-contained"),
    ],
)
def test_validity_check_can_fail(failing, bad, problem):
    page = html_page(failing).replace("<main>", "<main>" + bad, 1)
    with pytest.raises((AssertionError, ET.ParseError), match=problem):
        assert_valid_page(page)


def test_same_dict_same_bytes(failing, tmp_path):
    """Deterministic: the page made from the report, from a copy, and from the JSON saved on disk by
    ``gradcheck report`` is byte for byte the same."""
    d = edited(failing)
    page = html_page(d)
    assert html_page(copy.deepcopy(d)) == page
    src, out = tmp_path / "r.json", tmp_path / "r.html"
    src.write_text(json.dumps(d, indent=2))
    assert main(["report", str(src), "--html", str(out)]) == 0
    assert out.read_bytes() == page.encode("utf-8")


def test_report_command_on_selftest_json_writes_the_selftest_page(selftest_dict, tmp_path):
    src, out = tmp_path / "s.json", tmp_path / "s.html"
    src.write_text(json.dumps(selftest_dict))
    assert main(["report", str(src), "--html", str(out)]) == 0
    assert out.read_text() == selftest_page(selftest_dict)


def test_report_command_bad_input_is_a_one_line_error(tmp_path, capsys):
    src = tmp_path / "r.json"
    src.write_text("[1, 2]")
    assert main(["report", str(src), "--html", str(tmp_path / "o.html")]) == 2
    err = capsys.readouterr().err
    assert "not a gradcheck report" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    src.write_text("{not json")
    assert main(["report", str(src), "--html", str(tmp_path / "o.html")]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert main(["report"]) == 2 and "REPORT.json" in capsys.readouterr().err
    assert not (tmp_path / "o.html").exists()


def minimal(**row) -> dict:
    return {"rows": [{"kind": "param", "name": "w", "t": None, "passed": True, "ratio": 0.1, **row}]}


@pytest.mark.parametrize(
    "d, message",
    [
        ([], "expected the report as a dict"),
        ({"cases": []}, "no 'rows' list"),
        ({"rows": [3]}, r"rows\[0\]: expected a dict"),
        (minimal(name=None), r"rows\[0\]: 'name' must be a non-empty string"),
        (minimal(t="3"), r"rows\[0\] \(w\): 't' must be None or an int"),
        (minimal(passed="yes"), r"rows\[0\] \(w\): 'passed' must be true or false"),
        (minimal(ratio="big"), r"rows\[0\] \(w\): 'ratio': expected a number \(or 'inf'/'nan'\), got 'big'"),
    ],
)
def test_bad_input_names_the_problem(d, message):
    with pytest.raises(ReportDataError, match=message):
        html_page(d)


def test_minimal_dict_renders(passing):
    """Only rows: no settings, versions, timings, verdict or seed; the page still says PASS and parses."""
    d = {"rows": passing["rows"]}
    page = html_page(d)
    assert_valid_page(page)
    assert '<p class="badge">PASS</p>' in page


def test_names_are_escaped(failing):
    d = copy.deepcopy(failing)
    d["model"] = "<script>alert(1)</script> & co"
    d["rows"][0]["name"] = 'W<x>&"\x07'
    page = html_page(d)
    assert_valid_page(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    bars = by_id(xml(page), "bars-svg")
    assert next(t.text for t in bars.iter("text") if "row-label" in cls(t)) == 'W<x>&"\\x07'


finite = st.floats(min_value=1e-30, max_value=1e30)
names = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=8)
ratios = st.one_of(finite, st.sampled_from([0.0, "inf", "nan"]))


@given(
    st.lists(
        st.tuples(names, st.one_of(st.none(), st.integers(0, 30)), ratios, st.booleans()),
        min_size=1,
        max_size=25,
        unique_by=lambda r: (r[0], r[1]),
    )
)
def test_any_rows_give_a_valid_page_whose_marks_match(rows):
    d = {
        "rows": [
            {"kind": "param" if t is None else "state", "name": n, "t": t, "passed": p, "ratio": x}
            for n, t, x, p in rows
        ]
    }
    page = html_page(d)
    assert_valid_page(page)
    if any(t is not None for _, t, _, _ in rows):
        assert_map_matches(page, d)
    if any(t is None for _, t, _, _ in rows):
        assert_bars_match(page, d)


# ---------------------------------------------------------------------------------------- the self-test page


@pytest.fixture(scope="module")
def selftest_dict():
    from gradcheck.lstm.selftest import SelftestConfig, run_selftest

    names = ["drop_ds_next", "loss_grad_missing_factor_2", "gates_swapped", "tiny_scale_one_block"]
    return json.loads(json.dumps(run_selftest(SelftestConfig(), names=names, demo=False).to_dict()))


def assert_catalogue_matches(page: str, d: dict) -> None:
    """One table line and one map row per case: caught?, rows flagged, first divergence; the map's crosses are
    the case's failing (state, t) rows, the outline its first divergence and the dot the expected one."""
    root = xml(page)
    lines = {
        tr.get("data-case"): [td.text for td in tr.iter("td")]
        for tr in root.iter("tr")
        if tr.get("data-case")
    }
    strips = {g.get("data-case"): g for g in by_id(root, "catalogue-map").iter("g") if "case" in cls(g)}
    assert list(lines) == list(strips) == [c["name"] for c in d["cases"]]
    for c in d["cases"]:
        cells = lines[c["name"]]
        ok = ("passes" if c["ok"] else "FAILS") if c["name"] == "reference" else ("yes" if c["ok"] else "NO")
        assert cells[1] == ok and cells[2] == f"{c['rows_failed']}/{c['rows_total']}"
        fd = c["first_divergence"]
        assert cells[3].startswith("-" if fd is None else f"{fd['name']} at t={fd['t']}")
        g = strips[c["name"]]
        failing = {e.get("data-cell") for e in g.iter("rect") if e.get("data-status") == "fail"}
        assert failing == {lb for lb in c["failing_rows"] if "[t=" in lb}, c["name"]
        marks = sum("mark" in cls(e) for e in g.iter("path"))
        assert marks == len(failing)
        rects = {e.get("data-cell"): e for e in g.iter("rect") if e.get("data-cell")}

        def at(e, name, rects=rects):
            x = float(e.get("x") or e.get("cx"))
            return [
                k
                for k, r in rects.items()
                if float(r.get("x")) <= x <= float(r.get("x")) + float(r.get("width"))
                and k.startswith(name + "[")
            ]

        found = [e for e in g.iter("rect") if "found" in cls(e)]
        assert len(found) == (fd is not None)
        if fd:
            assert at(found[0], fd["name"]) == [f"{fd['name']}[t={fd['t']}]"]
        exp = c["expected_first_divergence"]
        dots = [e for e in g.iter("circle") if "expected" in cls(e)]
        assert len(dots) == (exp is not None)
        if exp:
            assert at(dots[0], exp["name"]) == [f"{exp['name']}[t={exp['t']}]"]


def test_selftest_page_matches_its_result(selftest_dict):
    page = selftest_page(selftest_dict)
    assert_valid_page(page)
    assert_catalogue_matches(page, selftest_dict)
    assert selftest_dict["verdict"] in page
    assert (
        "<code>gradcheck selftest --x-dim 3 --hidden 4 --steps 5 --seed 0 --dtype float64 "
        "--method central</code>" in page
    )


def test_selftest_reader_can_fail(selftest_dict):
    page = selftest_page(selftest_dict)
    for change in (
        {"ok": False},
        {"failing_rows": ["wg", "s[t=0]"]},
        {"first_divergence": {"name": "s", "t": 1}},
    ):
        other = copy.deepcopy(selftest_dict)
        other["cases"][1].update(change)
        with pytest.raises(AssertionError):
            assert_catalogue_matches(page, other)


def test_selftest_page_of_a_miss(selftest_dict):
    d = copy.deepcopy(selftest_dict)
    d["passed"] = False
    d["cases"][2].update(ok=False, problems=["s[t=4] passed but must fail"])
    page = selftest_page(d)
    assert_catalogue_matches(page, d)
    assert '<p class="badge">FAIL</p>' in page and "s[t=4] passed but must fail" in page


@pytest.mark.parametrize(
    "d, message",
    [
        ({"rows": []}, "no 'cases' list"),
        ({"cases": [{"name": "x"}]}, r"cases\[0\]: expected a dict with a string 'name' and a boolean 'ok'"),
        ("selftest", "expected the self-test result as a dict"),
    ],
)
def test_selftest_bad_input(d, message):
    with pytest.raises(ReportDataError, match=message):
        selftest_page(d)
