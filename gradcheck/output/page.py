"""The frame of an HTML report page: the document, the verdict header, key-value tables.

Shared by :mod:`gradcheck.output.html` (a check's report) and :mod:`gradcheck.output.selftest_html`.
"""

from __future__ import annotations

import json
import shlex

from .style import CSS
from .svg import esc
from .text import sci


def page(title: str, header: str, sections: list[tuple[str, str, str]]) -> str:
    """The document around a header and ``(id, heading, html)`` sections, with a line of links to them."""
    nav = " \u00b7 ".join(f'<a href="#{ident}">{esc(h)}</a>' for ident, h, _ in sections)
    body = "".join(
        f'<section id="{ident}"><h2>{esc(h)}</h2>{content}</section>' for ident, h, content in sections
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" '
        f'content="width=device-width, initial-scale=1"/><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head><body><main>{header}<nav>{nav}</nav>{body}</main></body></html>\n"
    )


def rerun_command(d: dict, fallback: str) -> str:
    """The report's ``rerun`` (a string, or a list of arguments), else ``fallback``."""
    rerun = d.get("rerun")
    if isinstance(rerun, str) and rerun.strip():
        return rerun
    if isinstance(rerun, list) and rerun and all(isinstance(a, str) for a in rerun):
        return shlex.join(rerun)
    return fallback


def verdict_header(
    passed: bool, heading: str, lines: list[str], command: str, *, note: str | None = None
) -> str:
    """The top of a page: PASS/FAIL in words (and colour), the heading, ``lines`` (HTML), the command that
    reproduces the report and a ``note`` on it."""
    status = "PASS" if passed else "FAIL"
    inner = "".join(f"<p>{line}</p>" for line in lines)
    tail = f' <span class="small">({esc(note)})</span>' if note else ""
    return (
        f'<header class="verdict {status.lower()}"><p class="badge">{status}</p><div>'
        f"<h1>{esc(heading)}</h1>{inner}"
        f'<p class="reproduce">Reproduce: <code>{esc(command)}</code>{tail}</p></div></header>'
    )


def flat(d: dict, prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted key, text)`` for every leaf of a nested dict; floats in scientific notation."""
    out = []
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += flat(value, name + ".") if value else [(name, "-")]
        elif isinstance(value, bool) or value is None:
            out.append((name, {True: "true", False: "false", None: "-"}[value]))
        elif isinstance(value, float):
            out.append((name, sci(value)))
        elif isinstance(value, list):
            out.append(
                (
                    name,
                    ", ".join(json.dumps(v) if isinstance(v, (dict, list)) else str(v) for v in value)
                    or "none",
                )
            )
        else:
            out.append((name, str(value)))
    return out


def seconds(v) -> str:
    """A duration from a report ("0.06561 s"); anything that is not a number as it is."""
    return f"{v:.4g} s" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def kv_table(pairs: list[tuple[str, str]], caption: str) -> str:
    body = "".join(f'<tr><th scope="row">{esc(k)}</th><td class="text">{esc(v)}</td></tr>' for k, v in pairs)
    return f'<table class="kv"><caption>{esc(caption)}</caption><tbody>{body}</tbody></table>'
