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

Why these numbers (measured with ``python benchmarks/tolerance_margins.py``, which prints, for 1000 random
reference configurations, the largest error/tolerance ratio of correct gradients and the detection ratio of
planted errors; 2026-11-25):

- float64 central, rtol 1e-6: correct gradients reach at most 0.011 of the tolerance (0 false alarms in 1000);
  their errors are round-off, at most ~5x the eps*|L|/h estimate, hence NOISE_FACTOR 100. A planted 1e-5
  relative error on one block is caught in 1000 of 1000 with a smallest margin of 1.24x (median ~5x); a 0.1%
  error on a block's largest entry with a smallest margin of 42x.
- float64 richardson 1e-7 (its errors are ~1e-11) and complex 1e-9 (exact to rounding, ~1e-15).
- float32 central 1e-2, richardson 3e-3: float32 round-off in the loss is ~1e-7 |L|, so at the best step
  (4.9e-3) a central difference is good to ~1e-4 of a row's scale at best, and rows whose gradient is small next
  to the loss cannot see even a 10% error (missed in 287 of 1000 configurations). Such rows are named in the
  verdict (``resolution`` > ``INSENSITIVE``), and ``method="auto"`` uses complex step for float32 models that
  allow it.
- float32 complex 3e-4: no cancellation in the step, but the float32 rounding of both sides is amplified where a
  gradient is itself a cancellation (h(t) close to its target, a gate close to saturation: 1 - i loses digits).
  With the batched reference (tangents in float32) correct gradients reach 2.2x a 1e-4 tolerance in 1 of 1000
  configurations (4.5e-4 relative on a row whose gradient is 6.5e-6); at 3e-4 the largest ratio is 0.75 over
  2000 configurations (0 false alarms), and a 1e-3 block error is still caught in all of them (smallest margin
  1.64x): ``python benchmarks/tolerance_margins.py --dtype float32 --method complex [--seed 5 --max-hidden 20
  --max-steps 10 --max-x-dim 20]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NOISE_FACTOR = 100.0
# A row whose floor exceeds this fraction of its own scale cannot see an error of 1%: the report says so.
INSENSITIVE = 1e-2
TOP = 3

# dtype name -> method -> rtol
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
    ratio: float            # max over entries of error / tolerance (> 1 fails)
    max_abs_err: float
    max_rel_err: float      # max of |a - n| / max(|a|, |n|, floor): relative, with near-zero entries floored
    worst: int
    tolerance: float        # the tolerance at the worst entry
    nonfinite: bool
    top: np.ndarray         # flat indices of the entries furthest over tolerance, worst first (at most TOP)
    resolution: float       # the coarsest floor / the row's scale: relative errors below this may pass unseen


def compare(analytic: np.ndarray, numeric: np.ndarray, noise: np.ndarray, *, rtol: float,
            atol: float) -> Comparison:
    a = np.asarray(analytic).reshape(-1)
    n = np.asarray(numeric).reshape(-1)
    finite = np.isfinite(a) & np.isfinite(n)
    with np.errstate(invalid="ignore", over="ignore"):
        scale = float(np.max(np.abs(n[finite]), initial=0.0))
        floor = np.maximum(np.maximum(atol, NOISE_FACTOR * noise), rtol * scale)
        tol = floor + rtol * np.abs(n)
        err = np.abs(a - n)
        ratio = np.where(tol > 0, err / np.where(tol > 0, tol, 1.0), np.where(err > 0, np.inf, 0.0))
        rel = err / np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)
        rel = np.where(np.isnan(rel), 0.0, rel)         # 0/0: both sides exactly zero
    ratio = np.where(finite, ratio, np.inf)
    nonfinite = not bool(np.all(finite))
    worst = int(np.argmax(~finite)) if nonfinite else int(np.argmax(ratio))
    top = np.argsort(-ratio, kind="stable")[:TOP]
    err = np.where(finite, err, np.inf)
    rel = np.where(finite, rel, np.inf)
    return Comparison(
        passed=bool(np.all(ratio <= 1.0)), ratio=float(ratio[worst]), max_abs_err=float(err.max()),
        max_rel_err=float(rel.max()), worst=worst, tolerance=float(tol[worst]), nonfinite=nonfinite,
        top=top, resolution=_resolution(floor, scale),
    )


def compare_many(analytic: np.ndarray, numeric: np.ndarray, noise: np.ndarray, *, rtol: float,
                 atol: float) -> list[Comparison]:
    """:func:`compare` of each row of ``(R, K)`` arrays, in one vectorised pass (the screen's R rows of K
    directions each; R calls of :func:`compare` cost more than the screen's own arithmetic)."""
    a = np.asarray(analytic)
    n = np.asarray(numeric)
    noise = np.broadcast_to(np.asarray(noise, dtype=float), n.shape)
    if a.ndim != 2 or a.shape != n.shape or a.shape[1] == 0:
        return [compare(x, y, z, rtol=rtol, atol=atol) for x, y, z in zip(a, n, noise)]
    finite = np.isfinite(a) & np.isfinite(n)
    with np.errstate(invalid="ignore", over="ignore"):
        scale = np.max(np.where(finite, np.abs(n), 0.0), axis=1)               # (R,)
        floor = np.maximum(np.maximum(atol, NOISE_FACTOR * noise), rtol * scale[:, None])
        tol = floor + rtol * np.abs(n)
        err = np.abs(a - n)
        ratio = np.where(tol > 0, err / np.where(tol > 0, tol, 1.0), np.where(err > 0, np.inf, 0.0))
        rel = err / np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)
        rel = np.where(np.isnan(rel), 0.0, rel)
    ratio = np.where(finite, ratio, np.inf)
    nonfinite = ~np.all(finite, axis=1)
    worst = np.where(nonfinite, np.argmax(~finite, axis=1), np.argmax(ratio, axis=1))
    top = np.argsort(-ratio, axis=1, kind="stable")[:, :TOP]
    err = np.where(finite, err, np.inf)
    rel = np.where(finite, rel, np.inf)
    rows = np.arange(a.shape[0])
    passed = np.all(ratio <= 1.0, axis=1)
    r_worst, t_worst = ratio[rows, worst], tol[rows, worst]
    max_err, max_rel = err.max(axis=1), rel.max(axis=1)
    return [Comparison(passed=bool(passed[i]), ratio=float(r_worst[i]), max_abs_err=float(max_err[i]),
                       max_rel_err=float(max_rel[i]), worst=int(worst[i]), tolerance=float(t_worst[i]),
                       nonfinite=bool(nonfinite[i]), top=top[i], resolution=_resolution(floor[i], float(scale[i])))
            for i in rows]


def _resolution(floor: np.ndarray, scale: float) -> float:
    coarsest = float(np.max(floor, initial=0.0))
    if coarsest == 0.0 or not np.isfinite(coarsest):
        return 0.0 if coarsest == 0.0 else math.inf
    return coarsest / scale if scale > 0 else math.inf
