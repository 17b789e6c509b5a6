"""``check(model)``: every parameter entry and every state entry at every time step, analytic vs numerical.

The pipeline, one way: read the model (:mod:`gradcheck.protocol`) -> resolve the plan (:mod:`gradcheck.plan`)
-> the analytic side, validated (:mod:`gradcheck.analytic`) -> the rows (:mod:`gradcheck.targets`), each a
comparison of the model's gradient with finite differences (:mod:`gradcheck.finite_diff`,
:mod:`gradcheck.tolerance`; the screen and chunked evaluation in :mod:`gradcheck.fast`) -> the failing rows'
diagnosis (:mod:`gradcheck.diagnose`) -> the :class:`~gradcheck.report.Report`.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from . import finite_diff as fd
from .analytic import Analytic, ignored_taps, read_analytic
from .diagnose import diagnose as diagnose_row
from .fast import screen
from .fast.cost import full_check_cost
from .fast.speed import Speed, open_evaluator
from .options import AUTO
from .plan import Plan, make_plan
from .protocol import inspect_model
from .report import Report, Row, first_bad_step
from .targets import Target, targets
from .tolerance import compare

SAMPLE_STREAM = 11  # seed stream id of sampled entries


def check(
    model,
    *,
    method: str = "auto",
    eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
    mode: str = "auto",
    budget: float | None = None,
    directions: int = 16,
    sample: int | None = None,
    blocks=None,
    diagnose: bool = True,
    progress=None,
    **speed,
) -> Report:
    """Check ``model``'s analytic gradients against numerical derivatives, row by row (see the module doc).

    ``method``: "central", "richardson", "complex" (models declaring "complex") or "auto" (central; complex
    step for "complex" models in float32 or when screening). ``eps``: the base step (default per method and
    dtype); ``rtol``/``atol``: the tolerance (:mod:`gradcheck.tolerance`); ``seed``: every random draw.
    ``mode``: "full" (every entry), "screen" (``directions`` random directions per row; failing or
    near-threshold rows localised by group testing) or "auto" (full when its estimated cost fits ``budget``
    seconds, default 10, else screen). ``sample``: check N random entries per row. ``blocks``: names of
    parameters and states to check. ``diagnose``: re-check failing rows at several steps. ``progress(n)``:
    called after every n loss evaluations (and ``progress.start(evaluations, seconds, budget)``, if it has
    one, once before: the full check's evaluations and estimated seconds, None when screening). ``speed``: the
    keywords of :class:`gradcheck.fast.speed.Speed` (batched, batch, executor, workers, scheduler, evaluator).
    Raises ProtocolError (usage) and ModelError (the model raised).
    """
    clock = _Clock()
    spec = inspect_model(model)
    plan = make_plan(spec, method, eps, rtol, atol, seed, mode, budget, directions, sample, blocks, diagnose)
    grads = read_analytic(model, spec)
    todo = targets(spec, grads.state_shapes, plan.blocks)
    speed = Speed.of(speed)
    plan, cost = planned_mode(model, spec, grads, todo, plan, speed, progress)
    speed = speed.for_model(spec, plan.mode, cost)  # worker processes for a model declaring "processes"
    clock.lap("analytic")
    with open_evaluator(model, spec, grads.state_shapes, plan, speed, progress) as (ev, evaluation):
        screened, roots = (
            screen.screen_rows(ev, todo, spec.params, grads, plan) if plan.mode == "screen" else ({}, {})
        )
        rows = screened_or_full(ev, todo, screened, roots, spec.params, grads, plan)
        screened_only = {t.key for t, row in zip(todo, rows) if t.key in screened and not row.top}
        ignored_taps(rows, grads)
        clock.lap("numeric")
        if plan.diagnose:
            rows = diagnosed_rows(rows, todo, model, ev, spec, grads, plan)
        clock.lap("diagnosis")
        evaluation["model_calls"] = getattr(ev, "calls", None)
    settings = plan.settings() | {
        "evaluation": evaluation,
        "coverage": _coverage(rows, todo, screened_only, plan),
        "cost": None if cost is None else cost.settings(),
    }
    if plan.mode == "screen":
        settings["screen"] = screen.settings(plan, screened, roots, rows)
    settings = spec.report_settings | settings  # what the model records (protocol: report_settings)
    return Report(
        rows=rows,
        seed=plan.seed,
        method=plan.method,
        settings=settings,
        model=_describe(model),
        loss=float(np.real(grads.loss)),
        first_bad_step=first_bad_step(rows, list(grads.states)),
        timings=clock.laps | ({} if cost is None else cost.timings()),
    )


def planned_mode(model, spec, grads: Analytic, todo: list[Target], plan: Plan, speed: Speed, progress):
    """``(plan, cost)``: mode "auto" resolved to "full" when the full check's estimated cost fits the budget, else
    "screen"; the cost is estimated only when needed (mode "auto", a progress callback with ``start``, or a
    model that may get worker processes: :meth:`Speed.wants_processes`), and a progress callback's ``start`` is
    told the total and the estimate of a full check (None when screening)."""
    start = getattr(progress, "start", None)
    if plan.mode != AUTO and not callable(start) and not speed.wants_processes(spec, plan.mode):
        return plan, None
    cost = full_check_cost(model, spec, grads.state_shapes, todo, plan.method, speed, plan.sample)
    if plan.mode == AUTO:
        plan = plan.with_mode("full" if cost.seconds <= plan.budget else "screen")
    if callable(start):
        full = plan.mode == "full"
        start(cost.evaluations if full else None, cost.seconds if full else None, plan.budget)
    return plan, cost


def screened_or_full(
    ev, todo: list[Target], screened: dict, roots: dict, params, grads: Analytic, plan: Plan
):
    """Every row: the screen's when it passed clearly; localised (:func:`gradcheck.fast.screen.localised_row`)
    when it failed or came near the threshold; entry by entry (``full_row``) when not screened, or when the
    localisation could not finish."""
    rng = np.random.default_rng([plan.seed, SAMPLE_STREAM]) if plan.sample is not None else None
    rows = []
    for t in todo:
        row = screened.get(t.key)
        if row is not None and screen.flagged(row):
            row = screen.localised_row(ev, t, row, roots[t.key], params, grads, plan)
        rows.append(row if row is not None else full_row(ev, t, params, grads, plan, rng))
    return rows


def full_row(ev, target: Target, params: dict, grads: Analytic, plan: Plan, rng=None) -> Row:
    """The row of ``target``, entry by entry (or ``plan.sample`` random entries of it when ``rng`` is given)."""
    pick = _pick(target.size, rng, plan.sample)
    idx = target.flat_idx if pick is None else target.flat_idx[pick]
    x = _point(target, params, grads, plan.dtype)
    n, noise = fd.derivatives(
        lambda j, d: ev.losses(target.kind, target.name, j, d), x, idx, plan.method, plan.step, _what(target)
    )
    a = _analytic(target, grads)[idx]
    c = compare(a, n, noise, rtol=plan.rtol, atol=plan.atol)
    local = c.worst if pick is None else int(pick[c.worst])
    row = Row(
        kind=target.kind,
        name=target.name,
        t=target.t,
        part=target.part,
        passed=c.passed,
        max_abs_err=c.max_abs_err,
        max_rel_err=c.max_rel_err,
        worst_index=[int(k) for k in np.unravel_index(local, target.shape)],
        analytic=float(np.real(a[c.worst])),
        numeric=float(n[c.worst]),
        tolerance=c.tolerance,
        ratio=c.ratio,
        resolution=c.resolution,
        checked=int(a.size),
        zero=c.zero,
        top=tuple(int(j) for j in idx[c.top]),
    )
    if c.nonfinite:
        row = dataclasses.replace(row, note=_nonfinite_note(a, n, grads.loss, idx, target))
    return row


def diagnosed_rows(
    rows: list[Row], todo: list[Target], model, ev, spec, grads: Analytic, plan: Plan
) -> list[Row]:
    """Every row that failed on finite values with its step-size re-check, and the worst passing row (compared
    entry by entry, not zero by construction) with the same sweep, for comparison (its verdict: "passes")."""
    passing = [k for k, r in enumerate(rows) if r.passed and r.top and not r.zero]
    worst = max(passing, key=lambda k: rows[k].ratio, default=None)
    return [
        diagnosed(row, t, model, ev, spec, grads, plan) if not row.passed or k == worst else row
        for k, (row, t) in enumerate(zip(rows, todo))
    ]


def diagnosed(row: Row, target: Target, model, ev, spec, grads: Analytic, plan: Plan) -> Row:
    """The row with its step-size re-check (see :mod:`gradcheck.diagnose`); rows failed on non-finite values
    or without entries (screened) as they are."""
    if row.note is not None or not row.top:
        return row
    top = np.asarray(row.top)
    x = _point(target, spec.params, grads, plan.dtype)
    what = _what(target)

    def numeric_at(step: float) -> np.ndarray:
        return fd.derivatives(
            lambda j, d: ev.losses(target.kind, target.name, j, d), x, top, plan.method, step, what
        )[0]

    complex_step = None
    if plan.method != "complex" and "complex" in spec.capabilities:
        cev = fd.SerialEvaluator(model, spec.params, grads.state_shapes, complex_=True)

        def complex_step() -> np.ndarray:
            losses = lambda j, d: cev.losses(target.kind, target.name, j, d)  # noqa: E731
            return fd.derivatives(losses, x, top, "complex", fd.default_step("complex", plan.dtype), what)[0]

    entries = np.searchsorted(target.flat_idx, top)
    d = diagnose_row(
        row,
        np.real(_analytic(target, grads)[top]),
        numeric_at,
        step=plan.step,
        entries=entries,
        complex_step=complex_step,
    )
    return dataclasses.replace(row, diagnosis=d)


def _point(target: Target, params: dict, grads: Analytic, dtype) -> np.ndarray:
    """The flat values the row's steps are scaled to: the parameter, or the (zero) tap of a state."""
    if target.kind == "param":
        return params[target.name].reshape(-1)
    return np.zeros(grads.states[target.name].size, dtype=np.result_type(dtype, np.float32))


def _analytic(target: Target, grads: Analytic) -> np.ndarray:
    source = grads.params if target.kind == "param" else grads.states
    return np.asarray(source[target.name]).reshape(-1)


def _what(target: Target) -> str:
    return f"parameter {target.name!r}" if target.kind == "param" else f"state {target.name!r}"


def _nonfinite_note(a: np.ndarray, n: np.ndarray, loss, idx: np.ndarray, target: Target) -> str:
    """Which side is not finite, and where it first is (a non-finite row gets no step-size advice)."""
    if not np.isfinite(loss):
        return f"non-finite: the loss itself is {loss!r} at the unperturbed point"
    for side, values in (("analytic gradient", a), ("numerical derivative", n)):
        bad = ~np.isfinite(values)
        if bad.any():
            k = int(np.argmax(bad))
            where = [
                int(i) for i in np.unravel_index(int(np.searchsorted(target.flat_idx, idx[k])), target.shape)
            ]
            why = "" if side.startswith("analytic") else " (the loss is not finite at a perturbed point)"
            return (
                f"non-finite: the {side} is {values[k]} at {tuple(where)}{why}; "
                f"{int(bad.sum())} of {values.size} entries are not finite"
            )
    return "non-finite values"


def _pick(size: int, rng, sample) -> np.ndarray | None:
    """Sorted random entries (without replacement) of a row of ``size``, or None for every entry."""
    if rng is None or sample is None or sample >= size:
        return None
    return np.sort(rng.choice(size, size=sample, replace=False))


def _coverage(rows: list[Row], todo: list[Target], screened_keys, plan: Plan) -> dict:
    """How many entries were compared one by one (screened rows compare directions, not entries)."""
    screened = [r.label for r, t in zip(rows, todo) if t.key in screened_keys]
    entries = sum(r.checked for r, t in zip(rows, todo) if t.key not in screened_keys)
    total = sum(t.size for t in todo)
    out = {
        "entries_checked": int(entries),
        "entries_total": int(total),
        "fraction": float(entries / total) if total else 1.0,
        "rows_screened_only": screened,
        "rows_localised": [r.label for r in rows if "localisation" in (r.diagnosis or {})],
    }
    if plan.sample is not None:
        out |= {
            "sample_per_row": plan.sample,
            "sample_seed": plan.seed,
            "sample_rule": f"numpy.random.default_rng([seed, {SAMPLE_STREAM}]), rows in check order",
        }
    return out


def _describe(model) -> str:
    r = repr(model)
    return r if len(r) <= 200 and " at 0x" not in r else type(model).__name__


class _Clock:
    """Seconds per stage of the check."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = now - self._last
        self._last = now
