"""The plan of a check: every option validated and every default resolved, before the model is evaluated.

``method="auto"`` becomes a method (:func:`gradcheck.finite_diff.resolve_method`), ``eps=None`` the method's step
for the dtype, ``rtol=None`` the dtype's and method's tolerance (:mod:`gradcheck.tolerance`). The report records
the plan, so a check can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import finite_diff as fd
from .errors import ProtocolError
from .options import AUTO, BUDGET, METHODS, MODES, choice, count, number, optional
from .protocol import ModelSpec
from .tolerance import default_rtol

STEP_RULE = "h_j = eps * max(1, |x_j|)"
TOLERANCE_RULE = "|a - n| <= max(atol, 100 * roundoff_j, rtol * max|n|) + rtol * |n_j|"


@dataclass(frozen=True)
class Plan:
    """The resolved options of one check (``step`` is the base step eps; ``blocks`` None checks every row).

    ``mode`` is "auto" until :meth:`with_mode` resolves it ("full" or "screen"); until then ``method``, ``step``
    and ``rtol`` are those of a full check.
    """

    method: str
    method_requested: str
    step: float
    step_default: bool
    rtol: float
    rtol_default: bool
    atol: float
    seed: int
    mode: str
    mode_requested: str
    budget: float
    directions: int
    sample: int | None
    blocks: tuple[str, ...] | None
    dtype: np.dtype
    diagnose: bool
    capabilities: frozenset = frozenset()

    def with_mode(self, mode: str) -> Plan:
        """This plan for ``mode``, with the method, step and tolerance that are defaults re-resolved for it."""
        method = fd.resolve_method(self.method_requested, self.dtype, self.capabilities, mode)
        return dataclasses.replace(
            self,
            mode=mode,
            method=method,
            step=fd.default_step(method, self.dtype) if self.step_default else self.step,
            rtol=default_rtol(self.dtype, method) if self.rtol_default else self.rtol,
        )

    def settings(self) -> dict:
        """The report's view of the plan (``settings`` of the JSON)."""
        return {
            "method": self.method,
            "method_requested": self.method_requested,
            "dtype": self.dtype.name,
            "eps": self.step,
            "eps_default": self.step_default,
            "rtol": self.rtol,
            "atol": self.atol,
            "step_rule": STEP_RULE,
            "tolerance_rule": TOLERANCE_RULE,
            "mode": self.mode,
            "mode_requested": self.mode_requested,
            "budget": self.budget,
        }


def make_plan(
    spec: ModelSpec, method, eps, rtol, atol, seed, mode, budget, directions, sample, blocks, diagnose
) -> Plan:
    """Validate the options of :func:`gradcheck.check` against the model and resolve the defaults."""
    choice("method", method, (AUTO, *METHODS))
    choice("mode", mode, MODES)
    count("seed", seed, lowest=0)
    resolved = fd.resolve_method(method, spec.dtype, spec.capabilities, "full" if mode == AUTO else mode)
    if resolved == "complex" and "complex" not in spec.capabilities:
        raise ProtocolError(
            "method 'complex' needs a model that accepts complex parameters; this one does not declare the "
            "'complex' capability (add capabilities = {'complex'} if its loss is analytic, or use central)"
        )
    eps = optional(number, "eps", eps)
    rtol = optional(number, "rtol", rtol)
    if blocks is not None:
        blocks = (blocks,) if isinstance(blocks, str) else tuple(blocks)
    return Plan(
        method=resolved,
        method_requested=method,
        step=eps if eps is not None else fd.default_step(resolved, spec.dtype),
        step_default=eps is None,
        rtol=rtol if rtol is not None else default_rtol(spec.dtype, resolved),
        rtol_default=rtol is None,
        atol=optional(number, "atol", atol, allow_zero=True) or 0.0,
        seed=int(seed),
        mode=mode,
        mode_requested=mode,
        budget=BUDGET if budget is None else number("budget", budget),
        directions=count("directions", directions),
        sample=optional(count, "sample", sample),
        blocks=blocks,
        dtype=np.dtype(spec.dtype),
        diagnose=bool(diagnose),
        capabilities=spec.capabilities,
    )
