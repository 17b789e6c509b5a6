"""Read a report dict (``json.loads`` of :func:`gradcheck.render.json_text`) for the HTML renderer.

Nothing is recomputed: a :class:`RowView` is one row of the dict with its label and its err/tol as a float
("inf"/"nan" strings, as JSON carries them, become floats). Bad input is a :class:`ReportDataError` naming the
field, checked in this order: the dict itself, ``rows``, then each row's ``name``, ``kind``, ``t``,
``passed``, ``ratio``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class ReportDataError(ValueError):
    """The report dict is not what ``json_text`` writes (a usage error: the message names the field)."""


def number(x, *, where: str = "value") -> float:
    """A float from a report field: numbers as they are, "inf"/"-inf"/"nan" strings, None as NaN."""
    if x is None:
        return math.nan
    if isinstance(x, bool):
        raise ReportDataError(f"{where}: expected a number, got {x!r}")
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, str) and x.strip().lower() in ("inf", "+inf", "-inf", "nan", "infinity", "-infinity"):
        return float(x)
    raise ReportDataError(f"{where}: expected a number (or 'inf'/'nan'), got {x!r}")


@dataclass(frozen=True)
class RowView:
    """One row: ``kind`` "param" (``t`` None), "state" or a time-indexed input (``t`` an int)."""

    index: int
    kind: str
    name: str
    t: int | None
    part: str | None
    passed: bool
    ratio: float
    raw: dict

    @property
    def block(self) -> str:
        """The name with its part: "Wx" or "Wx:i"."""
        return self.name if self.part is None else f"{self.name}:{self.part}"

    @property
    def label(self) -> str:
        """As the table prints it: "Wx", "Wx:i", "s[t=3]"."""
        return self.block if self.t is None else f"{self.block}[t={self.t}]"

    @property
    def diagnosis(self) -> dict | None:
        diag = self.raw.get("diagnosis")
        return diag if isinstance(diag, dict) else None

    def get(self, key: str, default=None):
        return self.raw.get(key, default)


def report_rows(d) -> list[RowView]:
    """The rows of report dict ``d`` in the dict's order; :class:`ReportDataError` when ``d`` is not one."""
    if not isinstance(d, dict):
        raise ReportDataError(
            f"expected the report as a dict (json.loads of the report JSON), got {type(d).__name__}"
        )
    rows = d.get("rows")
    if not isinstance(rows, list):
        raise ReportDataError(
            "the report dict has no 'rows' list: is this a gradcheck report JSON "
            f"(keys found: {', '.join(map(str, d)) or 'none'})?"
        )
    return [_row(i, r) for i, r in enumerate(rows)]


def _row(i: int, r) -> RowView:
    where = f"rows[{i}]"
    if not isinstance(r, dict):
        raise ReportDataError(f"{where}: expected a dict, got {type(r).__name__}")
    name, kind, t, part = r.get("name"), r.get("kind", "param"), r.get("t"), r.get("part")
    if not isinstance(name, str) or not name:
        raise ReportDataError(f"{where}: 'name' must be a non-empty string, got {name!r}")
    if not isinstance(kind, str):
        raise ReportDataError(f"{where} ({name}): 'kind' must be a string, got {kind!r}")
    if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 0):
        raise ReportDataError(f"{where} ({name}): 't' must be None or an int >= 0, got {t!r}")
    if part is not None and not isinstance(part, str):
        raise ReportDataError(f"{where} ({name}): 'part' must be None or a string, got {part!r}")
    passed = r.get("passed")
    if not isinstance(passed, bool):
        raise ReportDataError(f"{where} ({name}): 'passed' must be true or false, got {passed!r}")
    ratio = number(r.get("ratio"), where=f"{where} ({name}): 'ratio'")
    return RowView(i, kind, name, t, part, passed, ratio, r)


def worst_first(rows: list[RowView]) -> list[RowView]:
    """Failing rows first, then by err/tol, largest first (NaN as the worst), ties in report order; as
    ``Report.worst_first`` sorts them."""
    return sorted(rows, key=lambda r: (r.passed, -(math.inf if math.isnan(r.ratio) else r.ratio), r.index))


def step_size_at_fault(rows: list[RowView]) -> bool:
    """Whether rows fail and the step-size re-check of every failing row says finite-difference error (the
    gradient is right: the step is at fault)."""
    verdicts = {(r.diagnosis or {}).get("verdict") for r in rows if not r.passed}
    return verdicts == {"finite-difference error"}


def first_bad_step(d: dict) -> tuple[str, int] | None:
    """``(name, t)`` of the report's first bad step, or None."""
    fb = d.get("first_bad_step")
    if isinstance(fb, dict) and isinstance(fb.get("name"), str) and isinstance(fb.get("t"), int):
        return fb["name"], fb["t"]
    return None
