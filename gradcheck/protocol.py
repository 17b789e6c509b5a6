"""The model protocol, and the two ways a model can let a check down.

A model is any object with

- ``parameters() -> dict[str, np.ndarray]``: the named arrays at which gradients are checked;
- ``loss(params, taps=None) -> float``: the total loss L at ``params``; ``taps`` maps every state name to an array
  of shape ``(T, *state_shape)`` whose step-t slice is added to that state at step t right after it is computed;
- ``gradients(params) -> (param_grads, state_grads)``: dL/d(param) for every parameter (same keys and shapes) and,
  for every state name, the array whose step-t slice is dL/d(state at t). No recurrent state: ``{}``.

Optional capabilities are declared, never guessed, in an attribute ``capabilities`` (a collection of strings):

- ``"complex"``: ``loss`` accepts complex parameters and taps and is analytic in them (complex-step method);
- ``"batched"``: the model evaluates many perturbations in one call (the checker then uses it by default,
  in chunks of K, see :mod:`gradcheck.batched`):

  - ``loss_batch(params, kind, name, flat_idx, deltas) -> array (K,)`` (required): for each n, L with ONE entry
    moved: ``params[name].flat[flat_idx[n]] += deltas[n]`` (``kind == "param"``), or, for ``kind == "state"``,
    with the tap ``taps[name].flat[flat_idx[n]] = deltas[n]`` (flat index into the ``(T, *state_shape)`` tap,
    every other tap zero). ``deltas`` is complex for the complex step (``params`` stay real): the result must
    then be complex, ``L(x + deltas[n] e_j)``. It must equal K calls of ``loss`` to rounding.
  - ``loss_directions(params, kind, name, directions, deltas) -> array (K,)`` (optional, used by the screen):
    L with ``params[name] + deltas[n] * directions[n]`` (directions ``(K, *shape)``), or with the tap
    ``taps[name] = deltas[n] * directions[n]`` (directions ``(K, T, *state_shape)``). Without it the screen calls
    ``loss`` once per direction.
  - ``loss_directions_many(params, requests) -> list of arrays`` (optional, used by the screen): for a list of
    requests ``(kind, name, directions, deltas)``, what ``loss_directions`` returns for each, except that
    ``deltas`` may be ``(S, K)`` (S steps along each of the K directions; the result is then ``(S, K)``), and
    that for a 2-D parameter block ``directions`` may be a pair ``(A, B)`` of arrays ``(K, m)``, ``(K, n)``:
    rank-1 directions ``directions[k] = outer(A[k], B[k])`` (:func:`dense_directions`). The screen makes one
    such call for all its rows (up to a memory bound) instead of one call per row.

  ``params`` is read-only and the same at every call of one check. Chunks may run in worker processes
  (``--workers``, ``--scheduler``): the model must then be picklable and importable there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KNOWN_CAPABILITIES = frozenset({"complex", "batched"})


def dense_directions(directions) -> np.ndarray:
    """``(K, *shape)`` directions from a direction array (returned as is) or rank-1 factors ``(A, B)``."""
    if isinstance(directions, tuple):
        A, B = directions
        return np.einsum("ki,kj->kij", A, B)
    return directions


def request_by_calls(direction_losses, kind, name, directions, deltas) -> np.ndarray:
    """A ``loss_directions_many`` request with ``(S, n)`` deltas through one ``direction_losses(kind, name,
    directions, deltas)`` call (dense directions repeated S times, read-only: the caller computes v^T g from
    them); the result ``(S, n)``."""
    S = deltas.shape[0]
    V = dense_directions(directions)
    dirs = V if S == 1 else np.concatenate([V] * S)
    dirs.flags.writeable = False
    return np.asarray(direction_losses(kind, name, dirs, deltas.reshape(-1))).reshape(deltas.shape)


class ProtocolError(ValueError):
    """The object does not follow the model protocol (a usage error: exit code 2)."""


class ModelError(RuntimeError):
    """The model raised while being checked (exit code 3). ``stage`` says what the checker was doing."""

    def __init__(self, stage: str, exc: BaseException):
        self.stage, self.exc = stage, exc
        super().__init__(f"the model raised during {stage}: {type(exc).__name__}: {exc}")


@dataclass
class ModelSpec:
    """What the checker learned from a model before checking it (copies; the model's arrays are never touched)."""

    params: dict[str, np.ndarray]
    capabilities: frozenset[str]
    dtype: np.dtype


def call_model(stage: str, fn, *args, **kwargs):
    """Call into the model; anything it raises becomes a :class:`ModelError` labelled with ``stage``."""
    try:
        return fn(*args, **kwargs)
    except (ProtocolError, KeyboardInterrupt):
        raise
    except Exception as exc:  # the model's own failure, shown with its message
        raise ModelError(stage, exc) from exc


def inspect_model(model) -> ModelSpec:
    """Check that ``model`` follows the protocol and copy its parameters."""
    missing = [m for m in ("parameters", "loss", "gradients") if not callable(getattr(model, m, None))]
    if missing:
        raise ProtocolError(
            f"{type(model).__name__} object does not follow the model protocol: missing method(s) "
            f"{', '.join(missing)} (a model needs parameters(), loss(params, taps=None) and gradients(params))"
        )
    raw = call_model("parameters()", model.parameters)
    if not isinstance(raw, dict) or not raw:
        raise ProtocolError(f"parameters() must return a non-empty dict of name -> array, got {type(raw).__name__}")
    params = {}
    for name, value in raw.items():
        if not isinstance(name, str):
            raise ProtocolError(f"parameters(): names must be strings, got {name!r}")
        arr = np.array(value, copy=True)
        if arr.dtype.kind not in "fc" or arr.size == 0:
            raise ProtocolError(
                f"parameters()[{name!r}]: expected a non-empty float array, got dtype {arr.dtype} shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ProtocolError(f"parameters()[{name!r}]: contains NaN or inf")
        params[name] = arr
    caps = getattr(model, "capabilities", frozenset())
    if isinstance(caps, str) or not all(isinstance(c, str) for c in caps):
        raise ProtocolError(f"capabilities must be a collection of strings, got {caps!r}")
    caps = frozenset(caps)
    unknown = caps - KNOWN_CAPABILITIES
    if unknown:
        raise ProtocolError(f"unknown capabilities {sorted(unknown)}; known: {sorted(KNOWN_CAPABILITIES)}")
    dtype = np.result_type(*params.values())
    if dtype.kind == "c":
        raise ProtocolError("parameters() must be real; complex values are the checker's to add (complex step)")
    return ModelSpec(params=params, capabilities=caps, dtype=dtype)


def as_scalar_loss(value, stage: str) -> complex | float:
    """The model's loss as a Python scalar; anything else is a protocol error naming what came back."""
    arr = np.asarray(value)
    if arr.shape not in ((), (1,)) or arr.dtype.kind not in "biufc":
        raise ProtocolError(f"{stage} must return a scalar number, got {type(value).__name__} shape {arr.shape}")
    return arr.reshape(()).item()


def split_gradients(value) -> tuple[dict, dict]:
    """Validate the structure of ``gradients(params)``'s result (shapes are checked row by row later)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ProtocolError("gradients(params) must return a pair (param_grads, state_grads)")
    pg, sg = value
    if not isinstance(pg, dict) or not isinstance(sg, dict):
        raise ProtocolError(
            f"gradients(params) must return two dicts, got ({type(pg).__name__}, {type(sg).__name__})"
        )
    return pg, sg
