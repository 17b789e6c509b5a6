"""The random-projection screen: v^T g against the directional finite difference, per block and per (state, t).

For every parameter block and every state at every step, K random Rademacher directions v (entries +-1, drawn
from ``numpy.random.default_rng([seed, SCREEN_STREAM, row])``; for a 2-D block rank-1, ``v = a b^T`` with a and b
+-1 vectors: every entry still +-1 and any two entries independent, see :func:`factors_for`) are compared: the
analytic ``v^T g`` against the finite difference of L along v (same method as the check: central, richardson or
complex step; ``--method auto`` screens with complex step where the model allows it). That is 2K loss
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

from . import finite_diff as fd
from .protocol import request_by_calls
from .report import Row
from .tolerance import compare_many

NEAR = 0.1               # error/tolerance above this: "near threshold", the row gets the full check
SCREEN_STREAM = 7        # seed stream id of the screen's directions


def directions_for(seed: int, row_number: int, K: int, shape: tuple[int, ...], out: np.ndarray | None = None
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
    return signs[:K * m].reshape(K, m), signs[K * m:].reshape(K, n)


def _signs(seed: int, row_number: int, n: int) -> np.ndarray:
    """n independent +-1 (int8) from ``numpy.random.default_rng([seed, SCREEN_STREAM, row_number])``."""
    rng = np.random.default_rng([seed, SCREEN_STREAM, row_number])
    bits = np.unpackbits(np.frombuffer(rng.bytes((n + 7) // 8), dtype=np.uint8), count=n)
    signs = bits.view(np.int8)
    signs *= 2                          # 0, 1 -> -1, +1 (in int8: 8x less memory traffic than in float64)
    signs -= 1
    return signs


_POOL = threading.local()
POOL_BYTES = 64 * 2**20          # direction arrays kept for the next check (fresh multi-MB arrays page-fault)


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
    stencil's S steps along each direction; ``rows``: ``(t, analytic, columns)`` per row (t None for a parameter
    block): the row's K analytic ``v^T g`` and which of the n directions are its own.
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


def param_job(name: str, x: np.ndarray, g: np.ndarray, *, seed: int, row_number: int, K: int, method: str,
              base: float) -> Job:
    """Parameter block ``name`` (the row_number-th row) along K directions (rank-1 factors for a 2-D block)."""
    g = np.asarray(g).real
    if x.ndim == 2:
        A, B = V = factors_for(seed, row_number, K, x.shape)
        analytic = np.einsum("kj,kj->k", A @ g, B)                        # a_k^T G b_k = v_k^T g
        A.flags.writeable = B.flags.writeable = False
    else:
        V = directions_for(seed, row_number, K, x.shape, out=buffer(("param", row_number), (K, *x.shape)))
        analytic = V.reshape(K, -1) @ g.reshape(-1)
        V.flags.writeable = False           # a model writing into it fails loudly
    delta = _delta(method, base, max(1.0, float(np.max(np.abs(x)))), g.size)
    return Job("param", name, V, _stencil(method, delta, K), [(None, analytic, slice(0, K))], delta)


def state_job(name: str, g: np.ndarray, *, seed: int, first_row: int, K: int, method: str, base: float,
              steps=None) -> Job:
    """Steps ``steps`` (None: all) of state ``name`` (``g`` ``(T, *state_shape)``; step t is row
    ``first_row + t``) in one request: the K copies of step t move only the tap at step t."""
    T = g.shape[0]
    steps = list(range(T)) if steps is None else list(steps)
    delta = _delta(method, base, 1.0, g[0].size)
    V = buffer(("state", first_row, steps[0], len(steps)), (len(steps) * K, *g.shape))
    V[:] = 0.0
    rows = []
    for j, t in enumerate(steps):
        signs = directions_for(seed, first_row + t, K, g.shape[1:], out=V[j * K:(j + 1) * K, t])
        V[j * K:(j + 1) * K, t] = signs
        rows.append((t, signs.reshape(K, -1) @ np.asarray(g[t]).reshape(-1).real, slice(j * K, (j + 1) * K)))
    V.flags.writeable = False
    return Job("state", name, V, _stencil(method, delta, len(steps) * K), rows, delta)


def state_job_bytes(g: np.ndarray, K: int) -> int:
    """Memory of the directions of :func:`state_job` over all steps (the checker screens step by step above a
    limit)."""
    return 8 * K * g.shape[0] * g.size


def run(ev, jobs: list[Job], *, method: str, rtol: float, atol: float, dtype) -> list[list[Row]]:
    """Evaluate ``jobs`` in ONE evaluator call when it offers ``direction_losses_many`` (else one call per job)
    and compare every row at once; returns each job's rows."""
    requests = [(j.kind, j.name, j.directions, j.deltas) for j in jobs]
    many = getattr(ev, "direction_losses_many", None)
    if many is not None:
        losses = many(requests)
    else:
        losses = [request_by_calls(ev.direction_losses, *r) for r in requests]
    weights = fd.STENCILS[method][1]
    analytic, numeric, noise, where = [], [], [], []
    for n, (job, L) in enumerate(zip(jobs, losses)):
        L = np.asarray(L).reshape(job.deltas.shape)
        h = np.full(L.shape[1], job.delta)
        num = L[0].imag / h if method == "complex" else sum(w * Lc.real for w, Lc in zip(weights, L)) / h
        rnoise = fd.round_off_noise(L, h, method, dtype)
        for t, a, cols in job.rows:
            analytic.append(a)
            numeric.append(num[cols])
            noise.append(rnoise[cols])
            where.append((n, t))
    comps = compare_many(np.array(analytic), np.array(numeric), np.array(noise), rtol=rtol, atol=atol)
    out: list[list[Row]] = [[] for _ in jobs]
    for (n, t), a, num, c in zip(where, analytic, numeric, comps):
        job = jobs[n]
        out[n].append(Row(kind=job.kind, name=job.name, t=t, passed=c.passed, max_abs_err=c.max_abs_err,
                          max_rel_err=c.max_rel_err, worst_index=[], analytic=float(a[c.worst]),
                          numeric=float(num[c.worst]), tolerance=c.tolerance, ratio=c.ratio, checked=int(a.size)))
    return out


def _stencil(method: str, delta: float, n: int) -> np.ndarray:
    """The stencil's steps along each of n directions, ``(S, n)``."""
    return np.repeat(np.asarray(fd.STENCILS[method][0])[:, None] * delta, n, axis=1)


def _delta(method: str, base: float, scale: float, n: int) -> float:
    # the step along v moves the block by base*scale in 2-norm, like one entry moved by base*scale
    return base * scale if method == "complex" else base * scale / np.sqrt(n)


def needs_full(row: Row) -> bool:
    """Failing, non-finite or near-threshold screen rows are re-checked entry by entry."""
    r = row.ratio
    return (not row.passed) or not np.isfinite(r) or r > NEAR
