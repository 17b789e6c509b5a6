"""Why a row failed: a wrong gradient, or the finite difference's own error (a step size at fault)?

:func:`diagnose` re-checks a failing row's worst entries at steps ``eps * (10, 1, 0.1, 0.01)`` and, when the
model allows it, by complex step (exact to rounding), and returns the verdict as a value (a dict that travels on
the row as ``Row.diagnosis``):

- complex step available: it decides. Far from the analytic value: "wrong gradient"; close: "finite-difference
  error".
- a passing row (the worst one is swept too, for comparison): "passes".
- else, a discrepancy that shrinks into tolerance at some step, or falls by 10x or more per 10x smaller step
  (truncation error converging like h^p), is "finite-difference error": the gradient is right and the step is at
  fault. One that stays within a factor 3 while the step changes 100x is a "wrong gradient". Anything else is
  "inconclusive".

Keys: ``verdict``, ``reason`` (words, naming no command-line flag), ``suggest`` (options to try, e.g.
``{"eps": 1e-07}``; formats spell them for the interface), ``entries`` (the re-checked entries, flat indices
inside the row), ``steps`` and ``max_errors`` (the sweep: the largest |analytic - numeric| over those entries at
each step), ``tolerance`` (the row's, for drawing), and ``complex_step_error`` when complex step was used.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import StepError

SWEEP = (10.0, 1.0, 0.1, 0.01)  # step multipliers of the re-check


def diagnose(
    row,
    analytic: np.ndarray,
    numeric_at: Callable[[float], np.ndarray],
    *,
    step: float,
    entries: list[int],
    complex_step: Callable[[], np.ndarray] | None = None,
) -> dict:
    """The step-size re-check of a failing row.

    ``analytic``: the model's gradient at the re-checked entries (real, ``(m,)``); ``numeric_at(step)``: the
    numerical derivatives of those entries at a base step (raises StepError when the dtype cannot take it);
    ``step``: the check's base step; ``entries``: the entries' flat indices inside the row (reported);
    ``complex_step()``: complex-step derivatives of the entries, or None when the model does not allow it.
    """
    sweep = []
    for mult in SWEEP:
        try:
            sweep.append((step * mult, numeric_at(step * mult)))
        except StepError:
            continue
    errors = [float(np.max(np.abs(analytic - n))) for _, n in sweep]
    out = {
        "entries": [int(j) for j in entries],
        "steps": [s for s, _ in sweep],
        "max_errors": errors,
        "tolerance": row.tolerance,
    }
    if row.passed:
        return out | {
            "verdict": "passes",
            "suggest": {},
            "reason": "within tolerance at the check's step; the sweep shows how the discrepancy moves with it",
        }
    if complex_step is not None:
        err = float(np.max(np.abs(analytic - complex_step())))
        return out | _by_complex_step(err, row.tolerance)
    return out | _by_sweep([s for s, _ in sweep], errors, row.tolerance)


def _by_complex_step(err: float, tol: float) -> dict:
    if err > tol:
        return {
            "complex_step_error": err,
            "verdict": "wrong gradient",
            "suggest": {},
            "reason": f"complex step (exact to rounding) differs from the analytic value by {err:.3e}",
        }
    return {
        "complex_step_error": err,
        "verdict": "finite-difference error",
        "suggest": {"method": "complex"},
        "reason": f"complex step agrees with the analytic value ({err:.3e}): the step size is at fault",
    }


def _by_sweep(steps: list[float], errors: list[float], tol: float) -> dict:
    if errors and min(errors) <= tol:
        k = int(np.argmin(errors))
        return {
            "verdict": "finite-difference error",
            "suggest": {"eps": float(f"{steps[k]:.1e}")},
            "reason": f"the discrepancy shrinks to {errors[k]:.3e} (within tolerance) at step {steps[k]:.1e}",
        }
    if len(errors) >= 3 and errors[-3] >= 10.0 * errors[-2] and errors[-2] >= 10.0 * errors[-1]:
        return {
            "verdict": "finite-difference error",
            "suggest": {"eps": float(f"{steps[-1]:.1e}"), "method": "richardson"},
            "reason": f"the discrepancy falls {errors[-3] / errors[-2]:.0f}x and {errors[-2] / errors[-1]:.0f}x "
            "per 10x smaller step (truncation error of a correct gradient): use a smaller step or "
            "a higher-order method",
        }
    if len(errors) >= 3 and max(errors[1:]) <= 3.0 * min(errors[1:]):
        return {
            "verdict": "wrong gradient",
            "suggest": {},
            "reason": f"the discrepancy stays at {min(errors[1:]):.3e}..{max(errors[1:]):.3e} while the step "
            f"changes {steps[1] / steps[-1]:.0f}x",
        }
    return {
        "verdict": "inconclusive",
        "suggest": {"method": "complex"},
        "reason": "the discrepancy changes with the step but neither settles nor falls within tolerance; "
        "complex step decides where the model supports it",
    }
