"""Default tolerances, keyed by dtype and method, and the comparison of one row.

An entry passes when ``|analytic - numeric| <= max(atol, noise_j, rtol * scale) + rtol * |numeric_j|``:

- ``scale`` is the row's largest ``|numeric|``. The floor ``rtol * scale`` ties the absolute part to the
  gradient's own magnitude, so entries near zero (the reference has entries of ~3e-12 beside entries of ~1) are
  not failed for a round-off-sized difference, while a wrong entry anywhere in the row is measured against the
  row's size. In effect the row passes when its max-norm relative error is below about ``rtol``.
- ``noise_j`` is the estimated round-off of that entry's numerical derivative (eps * |L| * sum|w| / h, see
  :mod:`gradcheck.finite_diff`), multiplied by ``NOISE_FACTOR``: a row whose gradient is tiny compared with the
  loss (a vanishing gradient far back in time) is not failed for differences nobody could resolve.
- ``atol`` is an optional absolute floor (0 by default).

Why these numbers: ``RTOL`` below gives each default with its reason; the measurements behind them (1000 random
reference configurations per dtype and method, correct gradients against planted errors) are in
docs/benchmarks.md, section "Tolerances", with the command that makes them
(``python benchmarks/tolerance_margins.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NOISE_FACTOR = 100.0  # correct gradients' errors are round-off, at most ~5x the eps*|L|/h estimate (measured)
# A row whose floor exceeds this fraction of its own scale cannot see an error of 1%: the report says so.
INSENSITIVE = 1e-2
TOP = 3

# dtype name -> method -> rtol. float64: central differences are good to ~1e-10 of a row's scale here, richardson
# ~1e-11, complex step ~1e-15 (exact to rounding). float32: a central difference is good to ~1e-4 of a row at
# best (round-off ~1e-7 |L| over a 4.9e-3 step); complex step has no cancellation but float32 rounding of both
# sides is amplified where a gradient is itself a cancellation (a saturated gate), hence 3e-4, not 1e-4.
RTOL = {
    "float64": {"central": 1e-6, "richardson": 1e-7, "complex": 1e-9},
    "float32": {"central": 1e-2, "richardson": 3e-3, "complex": 3e-4},
}


def default_rtol(dtype, method: str) -> float:
    name = np.dtype(dtype).name
    table = RTOL.get(name, RTOL["float32"] if np.dtype(dtype).itemsize < 8 else RTOL["float64"])
    return table[method]


@dataclass
class Comparison:
    """The comparison of one row (flat arrays). ``worst`` is the entry furthest over (or nearest to) tolerance."""

    passed: bool
    ratio: float  # max over entries of error / tolerance (> 1 fails)
    max_abs_err: float
    max_rel_err: float  # max of |a - n| / max(|a|, |n|, floor): relative, with near-zero entries floored
    worst: int
    tolerance: float  # the tolerance at the worst entry
    nonfinite: bool
    top: np.ndarray  # flat indices of the entries furthest over tolerance, worst first (at most TOP)
    resolution: float  # the coarsest floor / the row's scale: relative errors below this may pass unseen
    zero: bool = False  # both sides exactly zero at every entry (zero by construction)
    # min over entries of (tolerance + |a - n|): for a row of directional derivatives v_k^T g (the screen), a
    # single wrong entry e shifts every one by +-e, so |e| above this is sure to fail the row
    threshold: float = 0.0


def compare(
    analytic: np.ndarray, numeric: np.ndarray, noise: np.ndarray, *, rtol: float, atol: float
) -> Comparison:
    """The comparison of one row: :func:`compare_many` on a single row."""
    a = np.asarray(analytic).reshape(1, -1)
    n = np.asarray(numeric).reshape(1, -1)
    noise = np.broadcast_to(np.asarray(noise, dtype=float).reshape(-1), n.shape[1:])
    return compare_many(a, n, noise[None, :], rtol=rtol, atol=atol)[0]


def compare_many(
    analytic: np.ndarray, numeric: np.ndarray, noise: np.ndarray, *, rtol: float, atol: float
) -> list[Comparison]:
    """The comparison of each row of ``(R, K)`` arrays, in one vectorised pass (the screen compares R rows of K
    directions each; R separate comparisons would cost more than the screen's own arithmetic)."""
    a = np.asarray(analytic)
    n = np.asarray(numeric)
    noise = np.broadcast_to(np.asarray(noise, dtype=float), n.shape)
    if a.ndim != 2 or a.shape != n.shape:
        raise ValueError(
            f"compare_many: expected two (R, K) arrays of one shape, got {a.shape} and {n.shape}"
        )
    if a.shape[1] == 0:
        return [_empty() for _ in range(a.shape[0])]
    finite = np.isfinite(a) & np.isfinite(n)
    with np.errstate(invalid="ignore", over="ignore"):
        scale = np.max(np.where(finite, np.abs(n), 0.0), axis=1)  # (R,)
        floor = np.maximum(np.maximum(atol, NOISE_FACTOR * noise), rtol * scale[:, None])
        tol = floor + rtol * np.abs(n)
        err = np.abs(a - n)
        ratio = np.where(tol > 0, err / np.where(tol > 0, tol, 1.0), np.where(err > 0, np.inf, 0.0))
        rel = err / np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)
        rel = np.where(np.isnan(rel), 0.0, rel)  # 0/0: both sides exactly zero
    ratio = np.where(finite, ratio, np.inf)
    nonfinite = ~np.all(finite, axis=1)
    worst = np.where(nonfinite, np.argmax(~finite, axis=1), np.argmax(ratio, axis=1))
    top = np.argsort(-ratio, axis=1, kind="stable")[:, :TOP]
    err = np.where(finite, err, np.inf)
    rel = np.where(finite, rel, np.inf)
    rows = np.arange(a.shape[0])
    passed = np.all(ratio <= 1.0, axis=1)
    zero = np.all((a == 0) & (n == 0), axis=1)
    threshold = np.min(np.where(finite, tol + err, np.inf), axis=1)
    r_worst, t_worst = ratio[rows, worst], tol[rows, worst]
    max_err, max_rel = err.max(axis=1), rel.max(axis=1)
    return [
        Comparison(
            passed=bool(passed[i]),
            ratio=float(r_worst[i]),
            max_abs_err=float(max_err[i]),
            max_rel_err=float(max_rel[i]),
            worst=int(worst[i]),
            tolerance=float(t_worst[i]),
            nonfinite=bool(nonfinite[i]),
            top=top[i],
            resolution=0.0 if zero[i] else _resolution(floor[i], float(scale[i])),
            zero=bool(zero[i]),
            threshold=float(threshold[i]),
        )
        for i in rows
    ]


def _empty() -> Comparison:
    return Comparison(
        passed=True,
        ratio=0.0,
        max_abs_err=0.0,
        max_rel_err=0.0,
        worst=0,
        tolerance=0.0,
        nonfinite=False,
        top=np.zeros(0, dtype=int),
        resolution=0.0,
        zero=True,
    )


def _resolution(floor: np.ndarray, scale: float) -> float:
    coarsest = float(np.max(floor, initial=0.0))
    if coarsest == 0.0 or not np.isfinite(coarsest):
        return 0.0 if coarsest == 0.0 else math.inf
    return coarsest / scale if scale > 0 else math.inf
