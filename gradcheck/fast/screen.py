"""The random-projection screen: v^T g against the directional finite difference, per block and per (state, t).

For every parameter block and every state at every step, K random Rademacher directions v (entries +-1, drawn
from ``numpy.random.default_rng([seed, SCREEN_STREAM, row])``; for a 2-D block rank-1, ``v = a b^T`` with a and b
+-1 vectors: every entry still +-1 and any two entries independent, see :func:`factors_for`) are compared: the
analytic ``v^T g`` against the finite difference of L along v (same method as the check: central, richardson or
complex step; ``method="auto"`` screens with complex step where the model allows it). That is 2K loss
evaluations per row for central (K for complex step), instead of 2 per entry; all rows go to the model in one
call when it offers ``loss_directions_many`` (see :mod:`gradcheck.protocol`).

What it misses (the detection threshold). A single entry j wrong by e shifts every ``v_k^T g`` by ``+-e``; the
row's tolerance is that of :func:`gradcheck.tolerance.compare` applied to the K directional derivatives, about
``rtol * max_k |v_k^T g|`` (``~ rtol * ||g||_2 * sqrt(2 ln 2K)``) plus the round-off floor. So the screen catches a
single-entry error e only when ``|e| >~ rtol * max_k |v_k^T g|``: roughly ``sqrt(n)`` times less sensitive than
the full check on a block of n entries with entries of similar size (measured in ``benchmarks/run.py``). Errors
spread over a block (a scaled block, a dropped term) shift ``v^T g`` by about their own 2-norm (the mean square of
``v^T e`` is ``||e||^2`` for dense and rank-1 directions alike, since any two entries of v are independent), so
they are caught much like by the full check. Because of that, any row whose error/tolerance exceeds ``NEAR`` (or fails)
is localised by group testing (:mod:`gradcheck.fast.localise`), automatically.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np

from .. import finite_diff as fd
from ..protocol import dense_directions
from ..report import Row
from ..tolerance import compare_many
from .blas_threads import single_threaded_blas
from .chunked import request_by_calls

NEAR = 0.1  # error/tolerance above this: "near threshold", the row gets the full check
SCREEN_STREAM = 7  # seed stream id of the screen's directions


def directions_for(
    seed: int, row_number: int, K: int, shape: tuple[int, ...], out: np.ndarray | None = None
) -> np.ndarray:
    """K Rademacher directions ``(K, *shape)`` for the row_number-th row of the check (written into ``out``, a
    float array of that shape, when given): every entry +-1, independent."""
    n = K * int(np.prod(shape, dtype=int))
    v = np.empty((K, *shape)) if out is None else out
    np.copyto(v, _signs(seed, row_number, n).reshape(K, *shape))
    return v


def factors_for(seed: int, row_number: int, K: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """K rank-1 Rademacher directions for a 2-D block ``(m, n)``: direction k is ``outer(A[k], B[k])`` with
    ``A`` ``(K, m)`` and ``B`` ``(K, n)`` independent +-1 entries, so every entry of a direction is +-1 and any
    two entries are independent (what the detection threshold rests on, see the module docstring). Why not
    dense: a dense direction of a weight block is K*m*n floats written, read for v^T g and read again by the
    model (7.7 MB per screen at the write-up's size, ~1 ms per pass from memory on this machine); the factors
    are K*(m+n), and the model's products ``V_k x`` become ``A_k (B_k . x)``."""
    m, n = shape
    signs = _signs(seed, row_number, K * (m + n)).astype(np.float64)
    return signs[: K * m].reshape(K, m), signs[K * m :].reshape(K, n)


def _signs(seed: int, row_number: int, n: int) -> np.ndarray:
    """n independent +-1 (int8) from ``numpy.random.default_rng([seed, SCREEN_STREAM, row_number])``."""
    rng = np.random.default_rng([seed, SCREEN_STREAM, row_number])
    bits = np.unpackbits(np.frombuffer(rng.bytes((n + 7) // 8), dtype=np.uint8), count=n)
    signs = bits.view(np.int8)
    signs *= 2  # 0, 1 -> -1, +1 (in int8: 8x less memory traffic than in float64)
    signs -= 1
    return signs


_POOL = threading.local()
POOL_BYTES = 64 * 2**20  # direction arrays kept for the next check (fresh multi-MB arrays page-fault)


def buffer(key, shape: tuple[int, ...]) -> np.ndarray:
    """A writable float64 array of ``shape``, the same one every time for ``key`` in this thread (while the
    pool stays under ``POOL_BYTES``). Measured: screening with fresh direction arrays took ~1 ms more per check
    at the write-up's size, all page faults."""
    pool = _POOL.__dict__.setdefault("arrays", {})
    shape = tuple(int(n) for n in shape)
    arr = pool.get(key)
    if arr is None or arr.shape != shape:
        arr = np.empty(shape)
        size = 8 * int(np.prod(shape, dtype=np.int64))
        if size <= POOL_BYTES:
            if sum(a.nbytes for a in pool.values()) + size > POOL_BYTES:
                pool.clear()
            pool[key] = arr
    arr.flags.writeable = True
    return arr


@dataclass
class Job:
    """One request of the screen to the model, and the rows it serves.

    ``directions`` ``(n, *shape)`` or rank-1 factors ``(A, B)`` (read-only); ``deltas`` ``(S, n)``: the
    stencil's S steps along each direction; ``rows``: ``(key, analytic, columns, row_directions)`` per row (the
    target's key): the row's K analytic ``v^T g``, which of the n directions are its own, and a function giving
    those K directions over the row's own entries ``(K, row size)`` (the localiser's root).
    """

    kind: str
    name: str
    directions: np.ndarray
    deltas: np.ndarray
    rows: list
    delta: float

    @property
    def nbytes(self) -> int:
        d = self.directions
        return sum(a.nbytes for a in d) if isinstance(d, tuple) else d.nbytes


def param_job(target, x: np.ndarray, g: np.ndarray, *, seed: int, K: int, method: str, step: float) -> Job:
    """A parameter row along K directions: rank-1 factors for a whole 2-D block, dense otherwise (zero outside
    the row's entries for one index of a time axis or one part of a split block)."""
    g = np.asarray(g).real
    number = target.number
    if target.whole and x.ndim == 2:
        A, B = V = factors_for(seed, number, K, x.shape)
        analytic = np.einsum("kj,kj->k", A @ g, B)  # a_k^T G b_k = v_k^T g
        A.flags.writeable = B.flags.writeable = False
    elif target.whole:
        V = directions_for(seed, number, K, x.shape, out=buffer(("param", number), (K, *x.shape)))
        analytic = V.reshape(K, -1) @ g.reshape(-1)
        V.flags.writeable = False  # a model writing into it fails loudly
    else:
        V = buffer(("param", number), (K, *x.shape))
        V[:] = 0.0
        flat = V.reshape(K, -1)
        flat[:, target.flat_idx] = directions_for(seed, number, K, (target.size,))
        analytic = flat @ g.reshape(-1)
        V.flags.writeable = False
    delta = _delta(method, step, max(1.0, float(np.max(np.abs(x.reshape(-1)[target.flat_idx])))), target.size)

    def row_directions(V=V) -> np.ndarray:
        return dense_directions(V).reshape(K, -1)[:, target.flat_idx]

    return Job(
        "param",
        target.name,
        V,
        _stencil(method, delta, K),
        [(target.key, analytic, slice(0, K), row_directions)],
        delta,
    )


def state_job(targets, g: np.ndarray, *, seed: int, K: int, method: str, step: float) -> Job:
    """The steps of one state (its ``targets``, ``g`` ``(T, *state_shape)``) in one request: the K copies of
    step t move only the tap at step t."""
    delta = _delta(method, step, 1.0, g[0].size)
    first = targets[0]
    V = buffer(("state", first.number, len(targets)), (len(targets) * K, *g.shape))
    V[:] = 0.0
    rows = []
    for j, target in enumerate(targets):
        t = target.t
        signs = directions_for(seed, target.number, K, g.shape[1:], out=V[j * K : (j + 1) * K, t])
        analytic = signs.reshape(K, -1) @ np.asarray(g[t]).reshape(-1).real
        rows.append((target.key, analytic, slice(j * K, (j + 1) * K), lambda s=signs: s.reshape(K, -1)))
    V.flags.writeable = False
    return Job("state", first.name, V, _stencil(method, delta, len(targets) * K), rows, delta)


def state_job_bytes(g: np.ndarray, K: int) -> int:
    """Memory of the directions of :func:`state_job` over all steps (the screen goes step by step above a
    limit)."""
    return 8 * K * g.shape[0] * g.size


STATE_SCREEN_BYTES = 32 * 2**20  # a state's directions for all its steps in one request up to this size
SCREEN_CALL_BYTES = 64 * 2**20  # directions per evaluator call of the screen (requests are grouped up to it)


def screen_rows(ev, targets, params: dict, analytic, plan) -> tuple[dict, dict]:
    """The screen's row of every target and its localiser root (see :func:`run`), each keyed by ``target.key``.
    The requests go to the evaluator in groups of at most ``SCREEN_CALL_BYTES`` of directions, ONE evaluator
    call per group (the whole screen at the write-up's size)."""
    opts = {"seed": plan.seed, "K": plan.directions, "method": plan.method, "step": plan.step}
    builders = []
    by_state: dict[str, list] = {}
    for target in targets:
        if target.kind == "param":
            x, g = params[target.name], analytic.params[target.name]
            builders.append(lambda target=target, x=x, g=g: param_job(target, x, g, **opts))
        else:
            by_state.setdefault(target.name, []).append(target)
    for name, steps in by_state.items():
        g = analytic.states[name]
        groups = (
            [steps] if state_job_bytes(g, plan.directions) <= STATE_SCREEN_BYTES else [[t] for t in steps]
        )
        builders += [lambda group=group, g=g: state_job(group, g, **opts) for group in groups]
    out: dict = {}
    roots: dict = {}
    group: list[Job] = []

    def flush():
        rows, row_roots = run(ev, group, plan=plan)
        out.update(rows)
        roots.update(row_roots)

    with single_threaded_blas():  # once for all rows (switching OpenBLAS's threads costs)
        size = 0
        for build in builders:
            job = build()
            if group and size + job.nbytes > SCREEN_CALL_BYTES:
                flush()
                group, size = [], 0
            group.append(job)
            size += job.nbytes
        if group:
            flush()
    return out, roots


def run(ev, jobs: list[Job], *, plan) -> tuple[dict, dict]:
    """Evaluate ``jobs`` in ONE evaluator call when it offers ``direction_losses_many`` (else one call per job)
    and compare every row at once; returns the rows by key, and each row's root for the localiser
    ``(row directions function, numeric (K,), noise (K,))`` by key."""
    requests = [(j.kind, j.name, j.directions, j.deltas) for j in jobs]
    many = getattr(ev, "direction_losses_many", None)
    if many is not None:
        losses = many(requests)
    else:
        losses = [request_by_calls(ev.direction_losses, *r) for r in requests]
    analytic, numeric, noise, keys, roots = [], [], [], [], {}
    for job, L in zip(jobs, losses):
        L = np.asarray(L).reshape(job.deltas.shape)
        h = np.full(L.shape[1], job.delta)
        num = fd.apply_stencil(L, h, plan.method)
        rnoise = fd.round_off_noise(L, h, plan.method, plan.dtype)
        for key, a, cols, row_directions in job.rows:
            analytic.append(a)
            numeric.append(num[cols])
            noise.append(rnoise[cols])
            keys.append(key)
            roots[key] = (row_directions, num[cols], rnoise[cols])
    comps = compare_many(
        np.array(analytic), np.array(numeric), np.array(noise), rtol=plan.rtol, atol=plan.atol
    )
    out = {}
    for key, c in zip(keys, comps):
        roots[key] += (c.threshold,)
    for (kind, name, t, part), a, num, c in zip(keys, analytic, numeric, comps):
        out[kind, name, t, part] = Row(
            kind=kind,
            name=name,
            t=t,
            part=part,
            passed=c.passed,
            max_abs_err=c.max_abs_err,
            max_rel_err=c.max_rel_err,
            worst_index=[],
            analytic=float(a[c.worst]),
            numeric=float(num[c.worst]),
            tolerance=c.tolerance,
            ratio=c.ratio,
            checked=int(a.size),
        )
    return out, roots


def _stencil(method: str, delta: float, n: int) -> np.ndarray:
    """The stencil's steps along each of n directions, ``(S, n)``."""
    return np.repeat(np.asarray(fd.STENCILS[method][0])[:, None] * delta, n, axis=1)


def _delta(method: str, step: float, scale: float, n: int) -> float:
    # the step along v moves the block by step*scale in 2-norm, like one entry moved by step*scale
    return step * scale if method == "complex" else step * scale / np.sqrt(n)


def localised_row(ev, target, row: Row, root, params: dict, grads, plan) -> Row | None:
    """A flagged screen row (failing or near threshold) localised by group testing
    (:mod:`gradcheck.fast.localise`) from its own screen directions: the wrong entries, each confirmed by its own
    finite difference; or "spread over the row" with the error's size and whether it looks like a scale or a
    sign flip; or passing. None when localisation could not finish (the caller checks the row in full)."""
    from . import localise as lz

    directions, numeric, noise, _ = root
    x = params[target.name] if target.kind == "param" else None
    shape = grads.states[target.name].shape if target.kind == "state" else None
    directional, entries = lz.probes(
        ev,
        target.kind,
        target.name,
        method=plan.method,
        step=plan.step,
        dtype=plan.dtype,
        x=x,
        shape=shape,
        flat_idx=target.flat_idx,
    )
    source = grads.params if target.kind == "param" else grads.states
    g = np.asarray(source[target.name]).reshape(-1)[target.flat_idx].reshape(target.shape)
    with single_threaded_blas():
        res = lz.localise(
            g,
            directional,
            entries,
            rtol=plan.rtol,
            atol=plan.atol,
            rng=lz.rng_for(plan.seed, target.number),
            cost=fd.EVALUATIONS[plan.method],
            screen=(directions(), numeric, noise),
        )
    if res.outcome == "incomplete":
        return None
    found = {"outcome": res.outcome, "evaluations": res.evaluations, "calls": res.calls}
    if res.outcome == "passed":
        return replace(
            row,
            passed=True,
            diagnosis={
                "verdict": "passes",
                "localisation": found,
                "reason": "localisation confirmed no wrong entry",
            },
        )
    listed = [e.to_json() for e in res.wrong_entries]
    diagnosis = {
        "verdict": "wrong gradient",
        "reason": res.describe(row.label).removeprefix(f"{row.label}: "),
        "localisation": found,
        "suggest": {},
    } | ({"dense": res.dense.to_json()} if res.dense is not None else {})
    row = replace(row, passed=False, wrong_entries=listed, wrong_entries_more=res.more, diagnosis=diagnosis)
    if res.wrong_entries and res.dense is None:
        w = res.wrong_entries[0]
        return replace(
            row,
            worst_index=[int(i) for i in w.index],
            analytic=w.analytic,
            numeric=w.numeric,
            max_abs_err=w.abs_err,
            ratio=w.ratio,
            tolerance=w.abs_err / w.ratio,
        )
    return row


def flagged(row: Row) -> bool:
    """Failing, non-finite or near-threshold screen rows are localised (or, failing that, checked in full)."""
    r = row.ratio
    return (not row.passed) or not np.isfinite(r) or r > NEAR


def settings(plan, screened: dict, roots: dict, rows: list[Row]) -> dict:
    """The report's ``settings["screen"]``: how the screen drew its directions, each row's ratio and measured
    single-entry detection threshold, which rows were localised and which were checked in full instead."""
    key = lambda r: (r.kind, r.name, r.t, r.part)  # noqa: E731
    return {
        "directions": plan.directions,
        "seed": plan.seed,
        "distribution": "rademacher (+-1 entries); 2-D blocks rank-1: v = a b^T, a and b +-1 vectors",
        "seed_rule": f"numpy.random.default_rng([seed, {SCREEN_STREAM}, row number])",
        "near_threshold": NEAR,
        "screen_ratios": {row.label: _json_num(row.ratio) for row in screened.values()},
        "detection_thresholds": {row.label: _json_num(roots[k][3]) for k, row in screened.items()},
        "detection_rule": "a single wrong entry e is caught when |e| > detection_thresholds[row] = "
        "min_k (tolerance_k + |v_k^T g - numeric_k|); rows above near_threshold are localised",
        "localised": {
            r.label: r.diagnosis["localisation"] for r in rows if "localisation" in (r.diagnosis or {})
        },
        "escalated_to_full": [r.label for r in rows if key(r) in screened and r.top],
        "localise_seed_rule": "numpy.random.default_rng([seed, 13, row number])",
    }


def _json_num(x: float):
    return float(x) if np.isfinite(x) else str(x)
