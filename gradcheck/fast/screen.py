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
is re-checked entry by entry by the full check, automatically.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .. import finite_diff as fd
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
    stencil's S steps along each direction; ``rows``: ``(key, analytic, columns)`` per row (the target's key):
    the row's K analytic ``v^T g`` and which of the n directions are its own.
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
    return Job(
        "param", target.name, V, _stencil(method, delta, K), [(target.key, analytic, slice(0, K))], delta
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
        rows.append(
            (target.key, signs.reshape(K, -1) @ np.asarray(g[t]).reshape(-1).real, slice(j * K, (j + 1) * K))
        )
    V.flags.writeable = False
    return Job("state", first.name, V, _stencil(method, delta, len(targets) * K), rows, delta)


def state_job_bytes(g: np.ndarray, K: int) -> int:
    """Memory of the directions of :func:`state_job` over all steps (the screen goes step by step above a
    limit)."""
    return 8 * K * g.shape[0] * g.size


STATE_SCREEN_BYTES = 32 * 2**20  # a state's directions for all its steps in one request up to this size
SCREEN_CALL_BYTES = 64 * 2**20  # directions per evaluator call of the screen (requests are grouped up to it)


def screen_rows(ev, targets, params: dict, analytic, plan) -> dict:
    """The screen's row of every target, keyed by ``target.key``. The requests go to the evaluator in groups of
    at most ``SCREEN_CALL_BYTES`` of directions, ONE evaluator call per group (the whole screen at the
    write-up's size)."""
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
    group: list[Job] = []
    with single_threaded_blas():  # once for all rows (switching OpenBLAS's threads costs)
        size = 0
        for build in builders:
            job = build()
            if group and size + job.nbytes > SCREEN_CALL_BYTES:
                out.update(run(ev, group, plan=plan))
                group, size = [], 0
            group.append(job)
            size += job.nbytes
        if group:
            out.update(run(ev, group, plan=plan))
    return out


def run(ev, jobs: list[Job], *, plan) -> dict:
    """Evaluate ``jobs`` in ONE evaluator call when it offers ``direction_losses_many`` (else one call per job)
    and compare every row at once; returns the rows by key."""
    requests = [(j.kind, j.name, j.directions, j.deltas) for j in jobs]
    many = getattr(ev, "direction_losses_many", None)
    if many is not None:
        losses = many(requests)
    else:
        losses = [request_by_calls(ev.direction_losses, *r) for r in requests]
    analytic, numeric, noise, keys = [], [], [], []
    for job, L in zip(jobs, losses):
        L = np.asarray(L).reshape(job.deltas.shape)
        h = np.full(L.shape[1], job.delta)
        num = fd.apply_stencil(L, h, plan.method)
        rnoise = fd.round_off_noise(L, h, plan.method, plan.dtype)
        for key, a, cols in job.rows:
            analytic.append(a)
            numeric.append(num[cols])
            noise.append(rnoise[cols])
            keys.append(key)
    comps = compare_many(
        np.array(analytic), np.array(numeric), np.array(noise), rtol=plan.rtol, atol=plan.atol
    )
    out = {}
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
    return out


def _stencil(method: str, delta: float, n: int) -> np.ndarray:
    """The stencil's steps along each of n directions, ``(S, n)``."""
    return np.repeat(np.asarray(fd.STENCILS[method][0])[:, None] * delta, n, axis=1)


def _delta(method: str, step: float, scale: float, n: int) -> float:
    # the step along v moves the block by step*scale in 2-norm, like one entry moved by step*scale
    return step * scale if method == "complex" else step * scale / np.sqrt(n)


def needs_full(row: Row) -> bool:
    """Failing, non-finite or near-threshold screen rows are re-checked entry by entry."""
    r = row.ratio
    return (not row.passed) or not np.isfinite(r) or r > NEAR


def settings(plan, screened: dict, kept) -> dict:
    """The report's ``settings["screen"]``: how the screen drew its directions and which of its rows (all of
    ``screened``) were escalated to the full check (those not in ``kept``)."""
    escalated = [row.label for key, row in screened.items() if key not in kept]
    return {
        "directions": plan.directions,
        "seed": plan.seed,
        "distribution": "rademacher (+-1 entries); 2-D blocks rank-1: v = a b^T, a and b +-1 vectors",
        "seed_rule": f"numpy.random.default_rng([seed, {SCREEN_STREAM}, row number])",
        "near_threshold": NEAR,
        "escalated_to_full": escalated,
        "screen_ratios": {row.label: _json_num(row.ratio) for row in screened.values()},
        "detection_rule": "a single-entry error e is caught when |e| > ~ rtol * max_k |v_k^T g| "
        "(see gradcheck.fast.screen); rows above near_threshold are re-checked in full",
    }


def _json_num(x: float):
    return float(x) if np.isfinite(x) else str(x)
