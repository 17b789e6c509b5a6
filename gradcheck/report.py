"""The result of a check: rows, verdict, settings. Every output format reads this; none recomputes.

A :class:`Row` is one comparison of analytic against numerical derivatives: a parameter block (or one part of
a split block, or one index along a parameter's time axis), or one state at one time step. A :class:`Report`
holds the rows in check order, where the error enters in time (``first_bad_step``), the settings that make the
check reproducible, and timings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .tolerance import INSENSITIVE

SCHEMA_VERSION = 2  # of Report.to_dict(); version 1 had no schema field, no part, zero, hints or model_spec
HINT_STYLES = ("python", "cli")


@dataclass
class Row:
    """One row of the check.

    ``kind``: ``"param"`` or ``"state"``. ``t``: the time step of a state row, or the index of a parameter row
    along its declared time axis (None for a whole parameter block). ``part``: the part of a split parameter.
    ``worst_index``: the index of the worst entry inside the row (inside the part, the time slice, or the state
    at step t). ``analytic`` / ``numeric``: that entry's values (the model's gradient / the finite difference).
    ``ratio``: error / tolerance at the worst entry (> 1 fails). ``note``: why a row failed without a finite
    comparison (a non-finite value). ``diagnosis``: for failing rows, the step-size re-check
    (:mod:`gradcheck.diagnose`). ``zero``: both sides exactly zero (zero by construction: passes, nothing to
    resolve). ``wrong_entries``: entries found wrong one by one by the screen's localisation, worst first, each
    ``{"index", "analytic", "numeric", "abs_err"}`` (at most 20; ``wrong_entries_more`` counts the rest).
    ``top``: flat indices (into the parameter, or the ``(T, *state_shape)`` tap) of the worst entries, for the
    re-check; not part of the JSON.
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
    part: str | None = None
    zero: bool = False
    wrong_entries: list[dict] | None = None
    wrong_entries_more: int = 0
    top: tuple[int, ...] = field(default=(), repr=False, compare=False)

    @property
    def label(self) -> str:
        name = self.name if self.part is None else f"{self.name}:{self.part}"
        return name if self.t is None else f"{name}[t={self.t}]"

    @property
    def timed(self) -> bool:
        """A row at one time step (a state, or a parameter's index along its time axis)."""
        return self.t is not None

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "t": self.t,
            "part": self.part,
            "label": self.label,
            "passed": self.passed,
            "zero": self.zero,
            "max_abs_err": _num(self.max_abs_err),
            "max_rel_err": _num(self.max_rel_err),
            "worst_index": list(self.worst_index),
            "analytic": _num(self.analytic),
            "numeric": _num(self.numeric),
            "tolerance": _num(self.tolerance),
            "ratio": _num(self.ratio),
            "checked": self.checked,
            "note": self.note,
            "diagnosis": self.diagnosis,
            "resolution": _num(self.resolution),
            "wrong_entries": self.wrong_entries,
            "wrong_entries_more": self.wrong_entries_more,
        }


def _num(x):
    """JSON has no NaN/inf: write them as strings so a report stays valid JSON and never reads as a pass."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else str(x)


def spell(option: str, value, style: str) -> str:
    """An option as the user gives it: ``eps=1e-04`` (Python) or ``--eps 1e-04`` (command line)."""
    if style == "cli":
        return f"--{option.replace('_', '-')} {value}"
    return f"{option}={value!r}" if isinstance(value, str) else f"{option}={value}"


@dataclass
class Report:
    """``rows`` in check order (parameters in the model's order, then each state over time).

    ``first_bad_step``: ``{"name", "t"}`` of the latest time step whose row fails (a state's, or a parameter's
    along its time axis: where the error enters going back in time), or None. ``settings``: method, steps,
    tolerances, dtype, coverage. ``timings``: seconds per stage. ``model_spec``: the ``MODULE:FACTORY`` the model
    came from (None for an object or the built-in reference); ``rerun``: a command line that reproduces this
    report (set by the command line). ``hints``: how suggestions are spelled, ``"python"`` (``eps=1e-04``) or
    ``"cli"`` (``--eps 1e-04``).
    """

    rows: list[Row]
    seed: int
    method: str
    settings: dict
    model: str
    loss: float
    first_bad_step: dict | None
    timings: dict = field(default_factory=dict)
    model_spec: str | None = None
    rerun: str | None = None
    hints: str = "python"

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
        (the round-off of a finite difference in float32, or a gradient tiny next to the loss). Rows that are
        zero by construction are not among them."""
        return [r for r in self.rows if r.passed and not r.zero and (r.resolution or 0.0) > INSENSITIVE]

    def verdict(self) -> str:
        n = len(self.rows)
        dtype = self.settings.get("dtype", "float64")  # named when not float64: its tolerance is far wider
        tail = f" ({self.method}, {dtype + ', ' if dtype != 'float64' else ''}seed {self.seed})"
        caveat = self._resolution_clause() + self._coverage_clause()
        if self.passed:
            zeros = sum(r.zero for r in self.rows)
            head = f"PASS: all {n} {_rows(n)} within tolerance"
            head += f" ({zeros} zero by construction)" if zeros else ""
            return "; ".join([head, *caveat]) + tail
        bad = self.failing
        names = list(
            dict.fromkeys(
                r.name if r.part is None else r.label for r in bad if r.kind == "param" and r.t is None
            )
        )
        parts = [f"FAIL: {len(bad)} of {n} {_rows(n)} fail"]
        if names:
            parts.append(f"parameters: {', '.join(names)}")
        if self.first_bad_step:
            fb = self.first_bad_step
            parts.append(f"first divergence going back in time: {fb['name']} at t={fb['t']}")
        return "; ".join(parts + caveat) + tail

    def _resolution_clause(self) -> list[str]:
        blind = self.insensitive
        if not blind:
            return []
        labels = ", ".join(r.label for r in blind[:6]) + (", ..." if len(blind) > 6 else "")
        worst = max(r.resolution for r in blind)
        return [
            f"{len(blind)} passing {_rows(len(blind))} cannot resolve relative errors below {_pct(worst)} "
            f"({labels}): use {spell('method', 'complex', self.hints)} (if the model allows it) or float64"
        ]

    def _coverage_clause(self) -> list[str]:
        """Say plainly when not every entry was checked one by one (sampling, the screen)."""
        cov = self.settings.get("coverage") or {}
        total, checked = cov.get("entries_total"), cov.get("entries_checked")
        screened = cov.get("rows_screened_only") or []
        if not total or (checked == total and not screened):
            return []
        words = (
            f"coverage: {checked:,} of {total:,} entries checked one by one ({100 * checked / total:.3g}%)"
        )
        if screened:
            k = (self.settings.get("screen") or {}).get("directions")
            words += (
                f", {len(screened)} {_rows(len(screened))} by {k} random directions only"
                if k
                else f", {len(screened)} {_rows(len(screened))} screened only"
            )
        localised = cov.get("rows_localised") or []
        if localised:
            words += f" ({len(localised)} of them then localised entry by entry by group testing)"
        return [words]

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA_VERSION,
            "passed": self.passed,
            "seed": self.seed,
            "method": self.method,
            "model": self.model,
            "model_spec": self.model_spec,
            "rerun": self.rerun,
            "hints": self.hints,
            "loss": _num(self.loss),
            "settings": self.settings,
            "first_bad_step": self.first_bad_step,
            "verdict": self.verdict(),
            "rows": [r.to_dict() for r in self.rows],
            "timings": self.timings,
        }


REQUIRED = ("passed", "seed", "method", "model", "settings", "rows")
ROW_FIELDS = (
    "kind",
    "name",
    "t",
    "passed",
    "max_abs_err",
    "max_rel_err",
    "worst_index",
    "analytic",
    "numeric",
    "tolerance",
    "ratio",
    "checked",
)


def report_from_dict(d) -> Report:
    """The Report a JSON report (``Report.to_dict()`` as written by ``gradcheck run``) was made from, for
    re-rendering it; ``ValueError`` naming what is missing or unreadable. Reports of schema 1 (no ``schema``
    field) are read with the defaults of the fields added since; a newer schema is refused."""
    if not isinstance(d, dict) or not all(k in d for k in REQUIRED):
        missing = [k for k in REQUIRED if not isinstance(d, dict) or k not in d]
        raise ValueError(f"not a gradcheck report: missing {', '.join(missing)}")
    schema = d.get("schema", 1)
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise ValueError(
            f"report schema {schema!r} is newer than this gradcheck reads (up to {SCHEMA_VERSION}): "
            "upgrade gradcheck to render it"
        )
    rows = []
    for k, r in enumerate(d["rows"]):
        if not isinstance(r, dict) or not all(f in r for f in ROW_FIELDS):
            raise ValueError(
                f"not a gradcheck report: rows[{k}] lacks {[f for f in ROW_FIELDS if f not in r]}"
            )
        values = {f: r[f] for f in ROW_FIELDS} | {f: _float(r[f]) for f in _FLOATS if f in r}
        rows.append(
            Row(
                **values,
                note=r.get("note"),
                diagnosis=r.get("diagnosis"),
                part=r.get("part"),
                zero=bool(r.get("zero", False)),
                wrong_entries=r.get("wrong_entries"),
                wrong_entries_more=int(r.get("wrong_entries_more", 0)),
            )
        )
    return Report(
        rows=rows,
        seed=d["seed"],
        method=d["method"],
        settings=d["settings"],
        model=d["model"],
        loss=_float(d.get("loss")),
        first_bad_step=d.get("first_bad_step"),
        timings=d.get("timings", {}),
        model_spec=d.get("model_spec"),
        rerun=d.get("rerun"),
        hints=d.get("hints", "python"),
    )


_FLOATS = ("max_abs_err", "max_rel_err", "analytic", "numeric", "tolerance", "ratio", "resolution")


def _float(x):
    """A number of the JSON (NaN and inf are written as strings) back as a float."""
    return None if x is None else float(x)


def first_bad_step(rows: list[Row], state_order: list[str]) -> dict | None:
    """The latest time step whose row fails: where a BPTT error enters, going back in time.

    Over states and parameters with a time axis alike. At equal t a state wins, and among states the one the
    model lists first (the reference lists h before s: dL(t)/dh(t) is computed before dL(t)/ds(t)).
    """
    bad = [r for r in rows if r.timed and not r.passed]
    if not bad:
        return None
    rank = {n: k for k, n in enumerate(state_order)}

    def key(r: Row):
        return (r.t, r.kind == "state", -rank.get(r.name, 0))

    worst = max(bad, key=key)
    return {"name": worst.name, "t": worst.t}


def _rows(n: int) -> str:
    return "row" if n == 1 else "rows"


def _pct(x: float) -> str:
    return "any size" if x == math.inf else f"{100 * x:.2g}%"


def _sort_key(x: float) -> float:
    return math.inf if x != x else x
