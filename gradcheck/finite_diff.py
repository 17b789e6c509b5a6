"""Numerical derivatives of the model's loss, one entry at a time, by three methods.

With L the loss, x an entry and h the step (error orders for a smooth L, eps the dtype's machine epsilon):

- ``central``:    (L(x+h) - L(x-h)) / 2h.                 truncation O(h^2), round-off O(eps/h);  2 evaluations.
- ``richardson``: (4 D(h/2) - D(h)) / 3 with D the central difference (the same as the 4-point stencil at h/2).
                                                          truncation O(h^4), round-off O(eps/h);  4 evaluations.
- ``complex``:    Im L(x + ih) / h (complex step).        truncation O(h^2), no cancellation, so h can be tiny
                                                          (1e-20) and the result is exact to rounding; 1 complex
                                                          evaluation. Only for models declaring "complex".

The default step balances truncation against round-off for the dtype: central eps^(1/3) (6.1e-6 in float64,
4.9e-3 in float32), richardson eps^(1/5) (7.4e-4, 4.1e-2), complex 1e-20 (there is no round-off to balance).
It is scaled to each entry's magnitude, ``h_j = step * max(1, |x_j|)``, and then rounded so that x_j + h_j is
exactly representable. A step that vanishes at x_j (x_j + h_j == x_j) is an error, never a silent zero.
"""

from __future__ import annotations

import numpy as np

from .errors import ProtocolError, StepError
from .options import AUTO, METHODS
from .protocol import as_scalar_loss, call_model

# (offsets c_k, weights w_k): derivative = sum_k w_k L(x + c_k h) / h
STENCILS = {
    "central": ((1.0, -1.0), (0.5, -0.5)),
    "richardson": ((0.5, -0.5, 1.0, -1.0), (4.0 / 3.0, -4.0 / 3.0, -1.0 / 6.0, 1.0 / 6.0)),
    "complex": ((1j,), (1.0,)),
}
EVALUATIONS = {m: len(STENCILS[m][0]) for m in METHODS}


def resolve_method(method: str, dtype, capabilities, mode: str = "full") -> str:
    """``"auto"``: complex step for a model that declares "complex" when it is float32 or when the check is a
    screen (``mode="screen"``); central differences otherwise.

    Why float32: a central difference is good to ~1e-4..1e-2 of a row's scale at best (round-off eps/h with
    eps = 1.2e-7), so rows whose gradient is small next to the loss cannot see even a 10% error; the complex
    step has no cancellation and reaches the float32 resolution of the analytic side.
    Why the screen: a screen row catches a single wrong entry e only above ~rtol * max_k |v_k^T g|, and the
    complex step's rtol is 1e-9 against central's 1e-6 (float64): the screen becomes ~1000x more sensitive
    (measured: ``python benchmarks/run.py``, docs/benchmarks.md), and it costs K evaluations per row, not 2K.
    A float64 full check keeps central differences, the method users expect and peers use.
    """
    if method != AUTO:
        return method
    if "complex" in capabilities and (np.dtype(dtype).itemsize < 8 or mode == "screen"):
        return "complex"
    return "central"


def default_step(method: str, dtype) -> float:
    """The base step for ``method`` at ``dtype`` (see the module docstring for why)."""
    eps = float(np.finfo(np.dtype(dtype)).eps)
    if method == "central":
        return eps ** (1.0 / 3.0)
    if method == "richardson":
        return eps ** (1.0 / 5.0)
    if method == "complex":
        return 1e-20
    raise ProtocolError(f"method: expected one of {list(METHODS)}, got {method!r}")


def entry_steps(x: np.ndarray, step: float, method: str, what: str) -> np.ndarray:
    """Per-entry steps ``h_j = step * max(1, |x_j|)``, made exactly representable; x flat, real."""
    h = (step * np.maximum(1.0, np.abs(x))).astype(x.dtype)
    if method == "complex":
        if np.any(h == 0):
            raise StepError(f"{what}: step {step:g} underflows to 0 in {x.dtype}; use a larger eps")
        return h
    h = (x + h) - x  # the step actually taken
    if np.any(h == 0):
        j = int(np.argmax(h == 0))
        raise StepError(
            f"{what}: step {step:g} is below the resolution of {x.dtype} at entry {j} (|x| = {abs(x[j]):.3g}): "
            f"x + eps == x, the difference would be exactly 0; use eps >= {np.finfo(x.dtype).eps * 4:.1g}"
        )
    return h


def round_off_noise(losses: np.ndarray, h: np.ndarray, method: str, dtype) -> np.ndarray:
    """An estimate of the round-off in each numerical derivative: eps * max|L| * sum|w_k| / h (zero for complex)."""
    if method == "complex":
        return np.zeros(h.shape)
    eps = float(np.finfo(np.dtype(dtype)).eps)
    weights = np.abs(np.asarray(STENCILS[method][1])).sum()
    return eps * np.max(np.abs(losses), axis=0) * weights / h


class SerialEvaluator:
    """Evaluates the model's loss at perturbed parameters or state taps, one ``loss`` call per perturbation.

    The evaluator interface (the chunked evaluator of :mod:`gradcheck.fast` has the same):

    - ``losses(kind, name, flat_idx, deltas) -> (n,)``: L with one entry moved per call: parameter ``name``'s
      ``flat[flat_idx[k]] += deltas[k]`` (kind "param", called with ``taps=None``), or the tap
      ``taps[name].flat[flat_idx[k]] = deltas[k]`` into the ``(T, *state_shape)`` tap (kind "state", every
      other tap zero);
    - ``direction_losses(kind, name, directions, deltas) -> (n,)``: L with the whole block or tap moved by
      ``deltas[k] * directions[k]`` (``directions`` ``(n, *shape)``).

    Works on its own copies: the perturbed block is changed in place, restored after each call, and every array
    handed to the model is read-only, so a model that writes into its arguments fails loudly.
    """

    def __init__(
        self,
        model,
        params: dict[str, np.ndarray],
        state_shapes: dict[str, tuple[int, ...]],
        *,
        complex_: bool = False,
        progress=None,
    ):
        self.model = model
        dt = np.result_type(*params.values())
        self.dtype = np.result_type(dt, np.complex64) if complex_ else dt
        self.complex = complex_
        # Writable flat copies are ours; the model sees read-only views of them.
        self._flat = {("param", k): np.array(v, dtype=self.dtype).reshape(-1) for k, v in params.items()}
        self._flat |= {
            ("state", k): np.zeros(int(np.prod(s, dtype=int)), self.dtype) for k, s in state_shapes.items()
        }
        self.params = {k: _readonly(self._flat["param", k], np.shape(v)) for k, v in params.items()}
        self.taps = {k: _readonly(self._flat["state", k], s) for k, s in state_shapes.items()}
        self.progress = progress
        self.calls = 0

    def _loss(self, kind: str, stage: str):
        taps = self.taps if kind == "state" else None
        value = as_scalar_loss(call_model(stage, self.model.loss, self.params, taps), stage)
        self.calls += 1
        if self.complex and not isinstance(value, complex):
            raise ProtocolError(
                f"{stage} returned a real number for complex parameters: the model declares the 'complex' "
                "capability, but its loss is not analytic in complex inputs (complex step would read 0)"
            )
        if self.progress is not None:
            self.progress(1)
        return value

    def losses(self, kind: str, name: str, flat_idx: np.ndarray, deltas: np.ndarray) -> np.ndarray:
        """L with entry ``flat_idx[k]`` of parameter (or tap) ``name`` moved by ``deltas[k]``, for each k."""
        flat = self._flat[kind, name]
        stage = _stage(kind, name, "perturbed")
        out = np.empty(len(flat_idx), dtype=np.complex128 if self.complex else np.float64)
        for k, (j, d) in enumerate(zip(flat_idx, deltas)):
            old = flat[j]
            flat[j] = old + d
            try:
                out[k] = self._loss(kind, stage)
            finally:
                flat[j] = old
        return out

    def direction_losses(
        self, kind: str, name: str, directions: np.ndarray, deltas: np.ndarray
    ) -> np.ndarray:
        """L with the whole block (kind "param") or tap (kind "state") moved by ``deltas[k] * directions[k]``.

        ``directions``: ``(n, *shape)`` with shape the block's or the tap's ``(T, *state_shape)``.
        """
        flat = self._flat[kind, name]
        stage = _stage(kind, name, "moved along a direction")
        out = np.empty(len(deltas), dtype=np.complex128 if self.complex else np.float64)
        old = flat.copy()
        for k, (v, d) in enumerate(zip(directions, deltas)):
            flat[:] = old + d * np.asarray(v).reshape(-1)
            try:
                out[k] = self._loss(kind, stage)
            finally:
                flat[:] = old
        return out


def _stage(kind: str, name: str, how: str) -> str:
    """What the checker was doing, for a model error: ``loss(params) with 'wi' perturbed``."""
    if kind == "param":
        return f"loss(params) with {name!r} {how}"
    return f"loss(params, taps) with the tap on state {name!r} {how}"


def _readonly(flat: np.ndarray, shape) -> np.ndarray:
    view = flat.reshape(shape)
    view.flags.writeable = False
    return view


def apply_stencil(losses: np.ndarray, h: np.ndarray, method: str) -> np.ndarray:
    """The derivative from the stencil's losses ``(S, n)`` (one row per offset of ``STENCILS[method]``) and the
    steps ``h`` ``(n,)``: sum_k w_k L(x + c_k h) / h, or Im L(x + ih) / h for the complex step."""
    if method == "complex":
        return losses[0].imag / h
    weights = STENCILS[method][1]
    return sum(w * L.real for w, L in zip(weights, losses)) / h


def derivatives(
    losses_at, x: np.ndarray, flat_idx: np.ndarray, method: str, step: float, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Numerical dL/dx_j for the entries ``flat_idx`` of the flat real array ``x``.

    ``losses_at(flat_idx, deltas)`` returns L with entry ``flat_idx[k]`` moved by ``deltas[k]``.
    Returns ``(derivative, round-off noise estimate)``, each shaped like ``flat_idx``.
    """
    h = entry_steps(x[flat_idx], step, method, what)
    losses = np.stack([losses_at(flat_idx, c * h) for c in STENCILS[method][0]])
    return apply_stencil(losses, h, method), round_off_noise(losses, h, method, x.dtype)
