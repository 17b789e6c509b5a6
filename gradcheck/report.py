"""The result of a check: rows, verdict, settings. Every output format reads this; none recomputes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .tolerance import INSENSITIVE


@dataclass
class Row:
    """One parameter block (``kind="param"``, ``t=None``) or one state at one time step (``kind="state"``).

    ``worst_index``: the index of the worst entry inside the block, or inside the state at step t.
    ``analytic`` / ``numeric``: that entry's values (the model's gradient / the finite difference).
    ``ratio``: error / tolerance at the worst entry (> 1 fails). ``note``: why a row failed without a comparison
    (missing gradient, wrong shape). ``diagnosis``: for failing rows, the step-size re-check (see :mod:`check`).
    """

    kind: str
    name: str
    t: int | None
    passed: bool
    max_abs_err: float
    max_rel_err: float
    worst_index: list[int]
    analytic: float
    numeric: float
    tolerance: float
    ratio: float
    checked: int
    note: str | None = None
    diagnosis: dict | None = None
    resolution: float | None = None

    @property
    def label(self) -> str:
        return self.name if self.t is None else f"{self.name}[t={self.t}]"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "name": self.name, "t": self.t, "passed": self.passed,
            "max_abs_err": _num(self.max_abs_err), "max_rel_err": _num(self.max_rel_err),
            "worst_index": list(self.worst_index), "analytic": _num(self.analytic), "numeric": _num(self.numeric),
            "tolerance": _num(self.tolerance), "ratio": _num(self.ratio), "checked": self.checked,
            "note": self.note, "diagnosis": self.diagnosis, "resolution": _num(self.resolution),
        }


def _num(x):
    """JSON has no NaN/inf: write them as strings so a report stays valid JSON and never reads as a pass."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else str(x)


@dataclass
class Report:
    """``rows`` in check order (parameters in the model's order, then each state over time).

    ``first_bad_step``: ``{"name", "t"}`` of the latest time step whose state row fails (where the error enters
    going back in time), or None. ``settings``: method, steps, tolerances, dtype. ``timings``: seconds per stage.
    """

    rows: list[Row]
    seed: int
    method: str
    settings: dict
    model: str
    loss: float
    first_bad_step: dict | None
    timings: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def failing(self) -> list[Row]:
        return [r for r in self.rows if not r.passed]

    def worst_first(self) -> list[Row]:
        """Rows sorted by error/tolerance, failing ones first (stable, so equal rows keep check order)."""
        return sorted(self.rows, key=lambda r: (r.passed, -_sort_key(r.ratio)))

    @property
    def insensitive(self) -> list[Row]:
        """Passing rows whose tolerance floor exceeds 1% of their own scale: a 1% error there could pass unseen
        (the round-off of a finite difference in float32, or a gradient tiny next to the loss)."""
        return [r for r in self.rows if r.passed and r.resolution is not None and r.resolution > INSENSITIVE]

    def verdict(self) -> str:
        n = len(self.rows)
        tail = f" ({self.method}, seed {self.seed}; rerun with --seed {self.seed})"
        blind = self.insensitive
        caveat = []
        if blind:
            labels = ", ".join(r.label for r in blind[:6]) + (", ..." if len(blind) > 6 else "")
            worst = max(r.resolution for r in blind)
            caveat = [f"{len(blind)} passing rows cannot resolve relative errors below {_pct(worst)} ({labels}): "
                      f"use --method complex (if the model allows it) or float64"]
        caveat += self._coverage_clause()
        if self.passed:
            return "; ".join([f"PASS: all {n} rows within tolerance", *caveat]) + tail
        bad = self.failing
        params = [r.name for r in bad if r.kind == "param"]
        parts = [f"FAIL: {len(bad)} of {n} rows fail"]
        if params:
            parts.append(f"parameters: {', '.join(params)}")
        if self.first_bad_step:
            fb = self.first_bad_step
            parts.append(f"first divergence going back in time: {fb['name']} at t={fb['t']}")
        return "; ".join(parts + caveat) + tail

    def _coverage_clause(self) -> list[str]:
        """Say plainly when not every entry was checked one by one (--sample, --mode screen)."""
        cov = self.settings.get("coverage") or {}
        total, checked = cov.get("entries_total"), cov.get("entries_checked")
        screened = cov.get("rows_screened_only") or []
        if not total or (checked == total and not screened):
            return []
        words = f"coverage: {checked:,} of {total:,} entries checked one by one ({100 * checked / total:.3g}%)"
        if screened:
            k = (self.settings.get("screen") or {}).get("directions")
            words += f", {len(screened)} rows by {k} random directions only" if k else \
                f", {len(screened)} rows screened only"
        return [words]

    def to_dict(self) -> dict:
        return {
            "passed": self.passed, "seed": self.seed, "method": self.method, "model": self.model,
            "loss": _num(self.loss), "settings": self.settings, "first_bad_step": self.first_bad_step,
            "verdict": self.verdict(), "rows": [r.to_dict() for r in self.rows], "timings": self.timings,
        }


def _pct(x: float) -> str:
    return "any size" if x == math.inf else f"{100 * x:.2g}%"


def _sort_key(x: float) -> float:
    return math.inf if x != x else x
