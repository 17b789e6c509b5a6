"""The random-projection screen: v^T g against the directional finite difference, per block and per (state, t).

For every parameter block and every state at every step, K random Rademacher directions v (entries +-1, drawn
from ``numpy.random.default_rng([seed, SCREEN_STREAM, row])``) are compared: the analytic ``v^T g`` against the
finite difference of L along v (same method as the check: central, richardson or complex step). That is 2K loss
evaluations per row for central (K for complex step), instead of 2 per entry.

What it misses (the detection threshold). A single entry j wrong by e shifts every ``v_k^T g`` by ``+-e``; the
row's tolerance is that of :func:`gradcheck.tolerance.compare` applied to the K directional derivatives, about
``rtol * max_k |v_k^T g|`` (``~ rtol * ||g||_2 * sqrt(2 ln 2K)``) plus the round-off floor. So the screen catches a
single-entry error e only when ``|e| >~ rtol * max_k |v_k^T g|``: roughly ``sqrt(n)`` times less sensitive than
the full check on a block of n entries with entries of similar size (measured in ``benchmarks/run.py``). Errors
spread over a block (a scaled block, a dropped term) shift ``v^T g`` by about their own 2-norm, so they are
caught much like by the full check. Because of that, any row whose error/tolerance exceeds ``NEAR`` (or fails)
is re-checked entry by entry by the full check, automatically.
"""

from __future__ import annotations

import threading

import numpy as np

from . import finite_diff as fd
from .report import Row
from .tolerance import compare

NEAR = 0.1               # error/tolerance above this: "near threshold", the row gets the full check
SCREEN_STREAM = 7        # seed stream id of the screen's directions


def directions_for(seed: int, row_number: int, K: int, shape: tuple[int, ...], out: np.ndarray | None = None
                   ) -> np.ndarray:
    """K Rademacher directions ``(K, *shape)`` for the row_number-th row of the check (written into ``out``, a
    contiguous float array of that shape, when given)."""
    rng = np.random.default_rng([seed, SCREEN_STREAM, row_number])
    n = K * int(np.prod(shape, dtype=int))
    bits = np.unpackbits(rng.integers(0, 256, size=(n + 7) // 8, dtype=np.uint8), count=n)
    signs = bits.view(np.int8)
    signs *= 2                          # 0, 1 -> -1, +1 (in int8: 8x less memory traffic than in float64)
    signs -= 1
    v = np.empty(n) if out is None else out.reshape(-1)
    np.copyto(v, signs)
    return v.reshape(K, *shape)


class Scratch:
    """Direction arrays reused by the rows of one check (the four weight blocks share one; fresh multi-MB arrays
    cost page faults every time)."""

    def __init__(self):
        self._local = threading.local()          # one set of arrays per thread

    def get(self, tag: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float64 array of ``shape``; arrays tagged "zeros" are zero when first handed out (callers overwrite
        the same entries every time)."""
        arrays = self._local.__dict__.setdefault("arrays", {})
        key = (tag, tuple(shape))
        arr = arrays.get(key)
        if arr is None:
            arr = np.zeros(shape) if tag == "zeros" else np.empty(shape)
            arrays[key] = arr
        return arr


def param_row(ev, name: str, x: np.ndarray, g: np.ndarray, *, seed: int, row_number: int, K: int,
              scratch: Scratch | None = None, method: str, base: float, rtol: float, atol: float, dtype) -> Row:
    """Screen parameter block ``name`` (the row_number-th row) along K directions in one evaluator call."""
    offsets = fd.STENCILS[method][0]
    dirs = (scratch or Scratch()).get("param", (len(offsets) * K, *x.shape))
    V = directions_for(seed, row_number, K, x.shape, out=dirs[:K])
    for j in range(1, len(offsets)):            # the same directions for every offset of the stencil
        dirs[j * K:(j + 1) * K] = V
    analytic = V.reshape(K, -1) @ np.asarray(g).reshape(-1).real
    delta = _delta(method, base, max(1.0, float(np.max(np.abs(x)))), g.size)
    deltas = np.repeat(np.asarray(offsets) * delta, K)
    L = _losses(ev, "param", name, dirs, deltas).reshape(len(offsets), K)
    return _row("param", name, None, analytic, L, delta, method=method, rtol=rtol, atol=atol, dtype=dtype)


def screen_row(ev, kind: str, name: str, t: int | None, x: np.ndarray, g: np.ndarray, V: np.ndarray, *,
               method: str, base: float, rtol: float, atol: float, dtype) -> Row:
    """Screen one row. ``x``: the block (params) or ``None`` for a state; ``g``: the analytic gradient of the row
    (block shape, or the state's step-t slice); ``V``: ``(K, *g.shape)`` directions (for a state, the tap's
    ``(K, T, *state_shape)`` with only step t nonzero)."""
    K = V.shape[0]
    rowV = V if t is None else V[:, t]
    analytic = np.tensordot(rowV.reshape(K, -1), np.asarray(g).reshape(-1).real, axes=(1, 0))
    scale = 1.0 if x is None else max(1.0, float(np.max(np.abs(x))))
    delta = _delta(method, base, scale, g.size)
    offsets = fd.STENCILS[method][0]
    dirs = V if len(offsets) == 1 else np.concatenate([V] * len(offsets))
    deltas = np.concatenate([np.full(K, c * delta) for c in offsets])
    L = ev.direction_losses(kind, name, dirs, deltas).reshape(len(offsets), K)
    return _row(kind, name, t, analytic, L, delta, method=method, rtol=rtol, atol=atol, dtype=dtype)


def state_rows(ev, name: str, g: np.ndarray, signs: list[np.ndarray], *, method: str, base: float, rtol: float,
               atol: float, dtype, scratch: Scratch | None = None) -> list[Row]:
    """Screen every step of state ``name`` in ONE evaluator call: ``g`` ``(T, *state_shape)``, ``signs[t]``
    ``(K, *state_shape)`` the directions of step t (copies t*K..t*K+K-1 move only the tap at step t)."""
    T, K = g.shape[0], signs[0].shape[0]
    delta = _delta(method, base, 1.0, g[0].size)
    offsets = fd.STENCILS[method][0]
    S = len(offsets)
    dirs = (scratch or Scratch()).get("zeros", (S * T * K, *g.shape))   # zero off the diagonal blocks
    D = dirs[:T * K]
    for t in range(T):
        D[t * K:(t + 1) * K, t] = signs[t]
    for j in range(1, S):
        dirs[j * T * K:(j + 1) * T * K] = D
    deltas = np.repeat(np.asarray(offsets) * delta, T * K)
    L = _losses(ev, "state", name, dirs, deltas).reshape(S, T, K)
    rows = []
    for t in range(T):
        analytic = signs[t].reshape(K, -1) @ np.asarray(g[t]).reshape(-1).real
        rows.append(_row("state", name, t, analytic, L[:, t], delta, method=method, rtol=rtol, atol=atol,
                         dtype=dtype))
    return rows


def state_job(ev, name: str, g: np.ndarray, *, seed: int, first_row: int, K: int, scratch: Scratch | None = None,
              **kw) -> dict:
    """:func:`state_rows` of state ``name`` whose step t is row ``first_row + t``; returns {t: Row}."""
    signs = [directions_for(seed, first_row + t, K, g.shape[1:]) for t in range(g.shape[0])]
    return {r.t: r for r in state_rows(ev, name, g, signs, scratch=scratch, **kw)}


def _losses(ev, kind, name, dirs, deltas):
    """The evaluator call on a reused scratch array, read-only meanwhile (a model writing into it fails loudly
    instead of changing the next row's directions)."""
    dirs.flags.writeable = False
    try:
        return ev.direction_losses(kind, name, dirs, deltas)
    finally:
        dirs.flags.writeable = True


def state_rows_bytes(g: np.ndarray, K: int, method: str) -> int:
    """Memory of :func:`state_rows`' direction array (the checker screens row by row above a limit)."""
    return 8 * K * g.shape[0] * g.size * len(fd.STENCILS[method][0])


def _delta(method: str, base: float, scale: float, n: int) -> float:
    # the step along v moves the block by base*scale in 2-norm, like one entry moved by base*scale
    return base * scale if method == "complex" else base * scale / np.sqrt(n)


def _row(kind, name, t, analytic, L, delta, *, method, rtol, atol, dtype) -> Row:
    """Compare ``analytic`` ``(K,)`` with the stencil of losses ``L`` ``(offsets, K)`` at step ``delta``."""
    K = analytic.shape[0]
    weights = fd.STENCILS[method][1]
    h = np.full(K, delta)
    if method == "complex":
        numeric = L[0].imag / h
    else:
        numeric = sum(w * Lc.real for w, Lc in zip(weights, L)) / h
    noise = fd.round_off_noise(L, h, method, dtype)
    c = compare(analytic, numeric, noise, rtol=rtol, atol=atol)
    return Row(kind=kind, name=name, t=t, passed=c.passed, max_abs_err=c.max_abs_err,
               max_rel_err=c.max_rel_err, worst_index=[], analytic=float(analytic[c.worst]),
               numeric=float(numeric[c.worst]), tolerance=c.tolerance, ratio=c.ratio, checked=int(K))


def needs_full(row: Row) -> bool:
    """Failing, non-finite or near-threshold screen rows are re-checked entry by entry."""
    r = row.ratio
    return (not row.passed) or not np.isfinite(r) or r > NEAR
