"""The self-test's HTML page: one line per mutant (caught?, rows, first divergence) and a catalogue map.

:func:`selftest_page` renders ``SelftestResult.to_dict()`` (``reports/selftest.json``) and only reads it.
The catalogue map has a row per case and a column per (state, t); a failing row is an orange cell with a
cross, the first divergence found is outlined and the one derived from the equations carries a dot.
"""

from __future__ import annotations

import re

from . import svg
from .page import flat, kv_table, page, rerun_command, seconds, verdict_header
from .reportdata import ReportDataError
from .svg import esc
from .text import sci

_STATE_LABEL = re.compile(r"^(.+)\[t=(\d+)\]$")
FAIL_FILL, PASS_FILL = svg.PALETTE[-6], svg.PALETTE[10]


def _cases(d) -> list[dict]:
    if not isinstance(d, dict):
        raise ReportDataError(
            f"expected the self-test result as a dict (json.loads of selftest.json), got {type(d).__name__}"
        )
    cases = d.get("cases")
    if not isinstance(cases, list) or not cases:
        raise ReportDataError(
            "the self-test dict has no 'cases' list: is this reports/selftest.json "
            f"(keys found: {', '.join(map(str, d)) or 'none'})?"
        )
    for i, c in enumerate(cases):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not isinstance(c.get("ok"), bool):
            raise ReportDataError(
                f"cases[{i}]: expected a dict with a string 'name' and a boolean 'ok', got {c!r:.80}"
            )
        if not isinstance(c.get("failing_rows", []), list):
            raise ReportDataError(f"cases[{i}] ({c['name']}): 'failing_rows' must be a list")
    return cases


def state_cells(case: dict) -> set[tuple[str, int]]:
    """The ``(state, t)`` of the case's failing rows that are indexed by time ("s[t=3]" -> ("s", 3))."""
    out = set()
    for label in case.get("failing_rows") or []:
        m = _STATE_LABEL.match(str(label))
        if m:
            out.add((m.group(1), int(m.group(2))))
    return out


def _fd(x) -> tuple[str, int] | None:
    return (
        (x["name"], x["t"]) if isinstance(x, dict) and "name" in x and isinstance(x.get("t"), int) else None
    )


def _fd_text(x) -> str:
    fd = _fd(x)
    return "-" if fd is None else f"{fd[0]} at t={fd[1]}"


def selftest_page(d: dict) -> str:
    """The self-test page of ``d`` (``SelftestResult.to_dict()``); :class:`ReportDataError` naming the field
    when ``d`` is not one."""
    cases = _cases(d)
    cfg = d.get("config") if isinstance(d.get("config"), dict) else {}
    passed = d["passed"] if isinstance(d.get("passed"), bool) else all(c["ok"] for c in cases)
    mutants = [c for c in cases if c["name"] != "reference"]
    caught = sum(c["ok"] for c in mutants)
    facts = ", ".join(
        f"{k} {cfg[k]}" for k in ("x_dim", "hidden", "steps", "loss", "seed", "dtype", "method") if k in cfg
    )
    caught_line = (
        f'<span class="enters">{caught} of {len(mutants)} mutants caught with the expected rows '
        f"named</span>; the reference {'passes' if cases[0]['ok'] else 'FAILS'}."
    )
    lines = [
        caught_line,
        f'<span class="verdict-line">{esc(d.get("verdict", ""))}</span>',
        esc(f"Reference LSTM {facts}" + ("" if d.get("strict", True) else "; not strict")) + ".",
    ]
    header = verdict_header(passed, "gradcheck selftest", lines, rerun_command(d, _command(cfg)))
    sections = [
        ("catalogue", "Catalogue", _catalogue_map(cases, cfg) + _table(cases)),
        ("problems", "Mismatches and demo", _problems(cases, d)),
        (
            "settings",
            "Settings",
            kv_table(
                flat(cfg)
                + [
                    ("strict", str(d.get("strict", "-")).lower()),
                    ("seconds", seconds(d.get("seconds", "-"))),
                ],
                "Configuration",
            ),
        ),
    ]
    return page(f"gradcheck selftest {'PASS' if passed else 'FAIL'}", header, sections)


def _command(cfg: dict) -> str:
    words = ["gradcheck", "selftest"]
    for key in ("x_dim", "hidden", "steps", "seed", "dtype", "method"):
        if cfg.get(key) is not None:
            words += [f"--{key.replace('_', '-')}", str(cfg[key])]
    return " ".join(words + (["--lenient"] if cfg.get("lenient") else []))


def _catalogue_map(cases: list[dict], cfg: dict) -> str:
    cells = [state_cells(c) for c in cases]
    states = sorted({name for cs in cells for name, _ in cs})  # the states some case fails, by name
    if not states:
        return ""
    steps = max([cfg.get("steps") or 0] + [t + 1 for cs in cells for _, t in cs])
    label_w = min(max(7.5 * max(len(c["name"]) for c in cases) + 24, 80), 320)
    cw, ch, gap, top = 18.0, 20.0, 12.0, 36.0
    col_x = {
        (s, t): label_w + k * (steps * cw + gap) + t * cw for k, s in enumerate(states) for t in range(steps)
    }
    right = label_w + len(states) * (steps * cw + gap)
    body = []
    for k, s in enumerate(states):
        x = label_w + k * (steps * cw + gap)
        body.append(svg.text(x + steps * cw / 2, 12, s, anchor="middle", cls="row-label"))
        body += [
            svg.text(x + (t + 0.5) * cw, top - 6, str(t), anchor="middle", cls="small") for t in range(steps)
        ]
    body.append(svg.text(right, top - 6, "blocks flagged, caught?", cls="small"))
    for i, (case, cs) in enumerate(zip(cases, cells)):
        body.append(_catalogue_row(case, cs, top + i * ch, ch, cw, col_x, label_w, right))
    return (
        '<figure class="catalogue">'
        + svg.figure_svg(
            right + 170,
            top + len(cases) * ch + 8,
            "".join(body),
            ident="catalogue-map",
            title="Catalogue map: the failing (state, t) rows of every case",
            desc="A row per case; a cross on orange marks a failing state row; the first "
            "divergence found is outlined; a dot marks the one the equations predict.",
        )
        + "<figcaption>Orange with a cross: the row fails; blue: it passes; outline: the first divergence "
        "the check found; dot: the first divergence derived from the equations. The table below has the "
        "same facts in words.</figcaption></figure>"
    )


def _catalogue_row(case, cs, y, ch, cw, col_x, label_w, right) -> str:
    found, expected = _fd(case.get("first_divergence")), _fd(case.get("expected_first_divergence"))
    parts = [svg.text(label_w - 8, y + ch / 2 + 4, case["name"], anchor="end", cls="row-label")]
    for (s, t), x in col_x.items():
        fail = (s, t) in cs
        parts.append(
            svg.rect(
                x,
                y,
                cw,
                ch,
                fill=FAIL_FILL if fail else PASS_FILL,
                cls="cell-fill",
                **{"data-cell": f"{s}[t={t}]", "data-status": "fail" if fail else "pass"},
            )
        )
        if fail:
            parts.append(svg.cross(x + cw / 2, y + ch / 2, 4.5, svg.ink(FAIL_FILL), width=1.5))
        if (s, t) == found:
            parts.append(svg.rect(x + 1, y + 1, cw - 2, ch - 2, fill="none", cls="outline-outer found"))
        if (s, t) == expected:
            parts.append(
                svg.el(
                    "circle",
                    {
                        "class": "expected",
                        "cx": x + cw / 2,
                        "cy": y + ch - 4,
                        "r": 2.5,
                        "fill": "#000000",
                        "stroke": "#ffffff",
                        "stroke-width": 1.0,
                    },
                )
            )
    blocks = [lb for lb in case.get("failing_rows") or [] if not _STATE_LABEL.match(str(lb))]
    status = (
        ("passes" if case["ok"] else "FAILS")
        if case["name"] == "reference"
        else ("caught" if case["ok"] else "NOT caught")
    )
    parts.append(svg.text(right, y + ch / 2 + 4, f"{len(blocks)} blocks, {status}", cls="small"))
    return svg.el("g", {"class": "case", "data-case": case["name"]}, "".join(parts))


HEADERS = [
    "mutant",
    "caught?",
    "rows flagged",
    "first divergence (expected)",
    "blocks flagged",
    "method",
    "re-check",
    "what it breaks",
]


def _table(cases: list[dict]) -> str:
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in HEADERS)
    body = []
    for c in cases:
        ref = c["name"] == "reference"
        status = ("passes" if c["ok"] else "FAILS") if ref else ("yes" if c["ok"] else "NO")
        fd = _fd_text(c.get("first_divergence")) + (
            "" if ref else f" ({_fd_text(c.get('expected_first_divergence'))})"
        )
        blocks = [lb for lb in c.get("failing_rows") or [] if not _STATE_LABEL.match(str(lb))]
        cells = [
            c["name"],
            status,
            f"{c.get('rows_failed', '-')}/{c.get('rows_total', '-')}",
            fd,
            " ".join(map(str, blocks)) or "-",
            c.get("method", "-"),
            ", ".join(c.get("verdicts") or []) or "-",
            c.get("description", ""),
        ]
        tds = "".join(f'<td class="text">{esc(x)}</td>' for x in cells)
        body.append(f'<tr class="{"pass" if c["ok"] else "fail"}" data-case="{esc(c["name"])}">{tds}</tr>')
    return (
        f'<div class="scroll"><table class="cases"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
        "</tbody></table></div>"
    )


def _problems(cases: list[dict], d: dict) -> str:
    misses = [f"{c['name']}: {p}" for c in cases for p in c.get("problems") or []]
    weak = [f"{c['name']}: {', '.join(c['not_flagged'])}" for c in cases if c.get("not_flagged")]
    out = [
        "<ul>" + "".join(f"<li>{esc(m)}</li>" for m in misses) + "</ul>"
        if misses
        else "<p>Every case flagged exactly the rows derived from the equations.</p>"
    ]
    if weak:
        out.append(
            "<p>Changed only through an error attenuated below the tolerance (allowed when not strict):</p>"
            "<ul>" + "".join(f"<li>{esc(w)}</li>" for w in weak) + "</ul>"
        )
    demo = d.get("demo")
    if isinstance(demo, dict):
        rejected = "rejects it" if demo.get("wrong_fix_rejected") else "does NOT reject it"
        out.append(
            f"<p>Demo ({esc(demo.get('iterations', '?'))} iterations, write-up size): right gradient -&gt; "
            f"loss {esc(sci(demo.get('right_loss')))}; wrong 'fix' (drop_ds_next) -&gt; loss "
            f"{esc(sci(demo.get('wrong_fix_loss')))}; the checker {rejected}.</p>"
        )
    return "".join(out)
