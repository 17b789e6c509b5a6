"""The analytic side: the model's gradients and loss at the point, validated before any row is computed.

Every shape mistake is a :class:`~gradcheck.errors.ProtocolError` here, naming the method, the key and the
expected and actual shapes, instead of a failure deep inside a later ``loss`` call or a failing row:

- every parameter has a gradient of its own shape (a missing one, an unknown one or a wrong shape is named);
- every state gradient is a numeric ``(T, *state_shape)`` array, and ``loss(params, taps)`` accepts zero taps of
  exactly those shapes and returns the same loss as ``loss(params)`` (a transposed state gradient, e.g.
  ``(N, T, H)`` for ``(T, N, H)``, fails here, with the loss's own message);
- and, once the rows are computed (:func:`ignored_taps`, no extra loss call), that a nonzero tap changed the loss
  (else ``loss()`` ignores ``taps[name]``, and every row of that state read a numerical derivative of exactly 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ProtocolError
from .protocol import ModelSpec, as_scalar_loss, call_model, split_gradients


@dataclass
class Analytic:
    """The model's side of the check. ``params``: name -> gradient (the parameter's shape); ``states``: name ->
    ``(T, *state_shape)`` total dL/d(state at t); ``loss``: L at the point (a Python scalar)."""

    params: dict[str, np.ndarray]
    states: dict[str, np.ndarray]
    loss: float

    @property
    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: v.shape for k, v in self.states.items()}


def read_analytic(model, spec: ModelSpec) -> Analytic:
    """Call ``gradients(params)`` and ``loss(params)`` once each and validate what came back (see module doc)."""
    pg, sg = split_gradients(call_model("gradients(params)", model.gradients, _copies(spec.params)))
    params = _param_grads(pg, spec.params)
    states = _state_grads(sg)
    loss = as_scalar_loss(call_model("loss(params)", model.loss, _copies(spec.params), None), "loss(params)")
    if states and np.isfinite(loss):  # a non-finite loss is reported by the rows
        _check_taps(model, spec, states, loss)
    return Analytic(params, states, loss)


def _param_grads(pg: dict, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    unknown = [k for k in pg if k not in params]
    if unknown:
        raise ProtocolError(
            f"gradients(params) returned gradients for unknown parameters {unknown}; "
            f"parameters() has {list(params)}"
        )
    missing = [k for k in params if k not in pg]
    if missing:
        raise ProtocolError(
            f"gradients(params) returned no gradient for {missing}; every parameter of "
            f"parameters() needs one ({list(params)})"
        )
    out = {}
    for name, x in params.items():
        g = np.asarray(pg[name])
        if g.dtype.kind not in "biufc":
            raise ProtocolError(
                f"gradients(params)[0][{name!r}]: expected a numeric array, got dtype {g.dtype}"
            )
        if g.shape != x.shape:
            raise ProtocolError(
                f"gradients(params)[0][{name!r}]: expected shape {x.shape} (the parameter's), got {g.shape}"
            )
        out[name] = g
    return out


def _state_grads(sg: dict) -> dict[str, np.ndarray]:
    out = {}
    for name, g in sg.items():
        arr = np.asarray(g)
        if not isinstance(name, str) or arr.ndim < 1 or arr.shape[0] < 1 or arr.dtype.kind not in "biufc":
            raise ProtocolError(
                f"gradients(params)[1][{name!r}]: a state gradient must be a numeric array of shape "
                f"(T, *state_shape) with T >= 1, got {type(g).__name__} dtype {arr.dtype} shape {arr.shape}"
            )
        out[name] = arr
    return out


def _check_taps(model, spec: ModelSpec, states: dict[str, np.ndarray], loss) -> None:
    """Zero taps shaped like the state gradients change nothing (one ``loss`` call)."""
    shapes = {k: v.shape for k, v in states.items()}
    zeros = {k: np.zeros(s, spec.dtype) for k, s in shapes.items()}
    stage = "loss(params, taps) with zero taps"
    try:
        zero_loss = as_scalar_loss(model.loss(_copies(spec.params), _readonly(zeros)), stage)
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(
            f"{stage} shaped like gradients(params)'s state gradients "
            f"({', '.join(f'{k}: {s}' for k, s in shapes.items())}) raised {type(exc).__name__}: {exc}. "
            "A state gradient must have the tap's shape (T, *state_shape), time first"
        ) from None
    scale = max(1.0, abs(loss))
    if not np.isfinite(zero_loss) or abs(zero_loss - loss) > 64 * np.finfo(spec.dtype).eps * scale:
        raise ProtocolError(
            f"{stage} returned {zero_loss!r} but loss(params) returned {loss!r}: a zero tap must "
            "change nothing (taps are added to the states right after they are computed)"
        )


def ignored_taps(rows, grads: Analytic) -> None:
    """Raise a ProtocolError when every row of a state read a numerical derivative of exactly 0 while its
    analytic gradient is not zero: ``loss()`` does not add ``taps[name]`` to the state (every row of it would
    otherwise fail, looking like a wrong backward pass). Checked on the rows as computed: no extra loss call."""
    for name, g in grads.states.items():
        own = [r for r in rows if r.kind == "state" and r.name == name]
        if own and all(not r.passed and r.numeric == 0.0 and r.note is None for r in own) and np.any(g != 0):
            raise ProtocolError(
                f"loss() ignores taps[{name!r}]: a nonzero tap leaves the loss exactly unchanged at every step "
                f"(every numerical derivative of {name!r} is 0) while gradients(params)[1][{name!r}] is not zero; "
                f"add taps[{name!r}][t] to the state at step t right after it is computed"
            )


def _readonly(arrays: dict) -> dict:
    for a in arrays.values():
        a.flags.writeable = False
    return arrays


def _copies(params):
    return {k: v.copy() for k, v in params.items()}


__all__ = ["Analytic", "ignored_taps", "read_analytic"]
