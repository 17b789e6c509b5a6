"""The HTML report's stylesheet, inlined in every page (system fonts only: nothing is fetched).

No ``<`` or ``&`` in it, so a page stays well-formed XML as well as HTML.
"""

CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
  color: #1a1a1a; background: #ffffff; }
main { max-width: 1240px; margin: 0 auto; padding: 10px 20px 40px; }
header.verdict { display: flex; gap: 16px; align-items: flex-start; padding: 10px 16px;
  border-left: 10px solid; margin: 0 0 6px; }
header.fail { border-color: #b35806; background: #fff4e8; }
header.pass { border-color: #2166ac; background: #eef4fb; }
header p { margin: 2px 0; }
.badge { font-weight: 700; font-size: 26px; padding: 2px 12px; color: #ffffff; }
.fail .badge { background: #b35806; }
.pass .badge { background: #2166ac; }
h1 { font-size: 19px; margin: 0 0 2px; }
h2 { font-size: 17px; margin: 16px 0 6px; border-bottom: 1px solid #d0d0d0; }
h3 { font-size: 14px; margin: 12px 0 4px; }
.enters { font-size: 18px; }
.verdict-line { font-weight: 600; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
.reproduce code { background: #ffffff; padding: 1px 6px; border: 1px solid #c8c8c8; user-select: all; }
nav { font-size: 13px; margin: 4px 0; }
figure { margin: 4px 0 12px; }
figcaption { font-size: 13px; color: #333333; max-width: 1000px; }
svg { display: block; overflow: visible; }
svg text { font-family: inherit; font-size: 12px; fill: #1a1a1a; }
svg .small, .small { font-size: 11px; }
svg .row-label, svg .curve-title { font-weight: 600; }
svg .enters-label { font-weight: 700; font-size: 13px; }
svg .cell-text { font-weight: 700; }
svg .on-dark { fill: #ffffff; }
.cell-fill { stroke: #ffffff; stroke-width: 1; }
.outline-outer { stroke: #000000; stroke-width: 3; }
.outline-inner { stroke: #ffffff; stroke-width: 1.5; }
.pointer { fill: #000000; }
.one { stroke: #000000; stroke-width: 2; }
.grid { stroke: #e3e3e3; stroke-width: 1; }
.tick { stroke: #555555; }
.frame { stroke: #8a8a8a; }
.tol { stroke: #444444; stroke-dasharray: 6 3; stroke-width: 1.5; }
.cs { stroke: #542788; stroke-dasharray: 1 3; stroke-width: 2; }
.eps { stroke: #9a9a9a; stroke-dasharray: 2 2; }
polyline.curve { stroke-width: 2; }
.curve.wrong { stroke: #b35806; } .point.wrong { fill: #b35806; }
.curve.fd { stroke: #2166ac; } .point.fd { fill: #2166ac; }
.curve.other { stroke: #542788; } .point.other { fill: #542788; }
.curves { display: flex; flex-wrap: wrap; gap: 8px 18px; }
.curves figure { width: 284px; margin: 0; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0; }
th, td { border: 1px solid #d6d6d6; padding: 2px 6px; text-align: right; vertical-align: top; }
td { white-space: nowrap; }
td.text { white-space: normal; }
th[scope="row"], td.text, caption, table.cases th { text-align: left; }
caption { font-weight: 600; padding: 2px 0; }
tr.fail td, td.fail { background: #fff0e0; }
table.small { font-size: 11px; }
table.small td, table.small th { padding: 0 4px; }
table.entries th:last-child { text-align: left; }
.scroll { overflow-x: auto; }
.kvs { display: flex; flex-wrap: wrap; gap: 6px 24px; align-items: flex-start; }
.note { color: #444444; font-size: 13px; }
"""
