"""The model protocol: what the checker needs from a model, and how it reads a model before checking it.

A model is any object with

- ``parameters() -> dict[str, np.ndarray]``: the named real arrays at which gradients are checked.
- ``loss(params, taps=None) -> float``: the total loss L at ``params``. Parameter rows call it with
  ``taps=None``. For a recurrent model, state rows pass ``taps``: a dict mapping every state name to an array of
  shape ``(T, *state_shape)`` whose step-t slice is added to that state at step t right after it is computed
  (before anything reads it). A zero tap must change nothing.
- ``gradients(params) -> (param_grads, state_grads)``: dL/d(param) for every parameter (same keys and shapes)
  and, for every state name, an array ``(T, *state_shape)`` whose step-t slice is the TOTAL derivative
  dL/d(state at t): through the loss at step t and through every later step (what BPTT carries back, not the
  step's own loss term). No recurrent state: ``{}``.

Optional attributes, declared, never guessed:

- ``capabilities`` (a collection of strings):

  - ``"complex"``: ``loss`` accepts complex parameters and taps and is analytic in them (the complex-step
    method; a ``float()``, ``abs`` or ``np.real`` inside the loss breaks it: the loss must return the complex
    value);
  - ``"batched"``: the model evaluates many perturbations per call (the checker then uses it by default):

    - ``loss_batch(params, kind, name, flat_idx, deltas) -> array (K,)`` (required): for each n, L with ONE entry
      moved: ``params[name].flat[flat_idx[n]] += deltas[n]`` (``kind == "param"``), or, for ``kind ==
      "state"``, with the tap ``taps[name].flat[flat_idx[n]] = deltas[n]`` (flat index into the
      ``(T, *state_shape)`` tap, every other tap zero). ``deltas`` is complex for the complex step (``params``
      stay real): the result must then be complex. It must equal K calls of ``loss`` to rounding.
    - ``loss_directions_many(params, requests) -> list of arrays`` (optional, used by the screen): for each
      request ``(kind, name, directions, deltas)``, L with ``params[name] + deltas[s, n] * directions[n]`` (or
      the tap ``taps[name] = deltas[s, n] * directions[n]``), shaped like ``deltas`` ``(S, n)``. ``directions``
      is ``(n, *shape)`` (a tap's ``(n, T, *state_shape)``) or, for a 2-D parameter, a pair ``(A, B)`` of
      ``(n, rows)`` and ``(n, columns)`` arrays: rank-1 directions ``outer(A[k], B[k])``
      (:func:`dense_directions`). Without it the screen calls ``loss`` once per direction.

    ``params`` is read-only and the same at every call of one check. Chunks may run in worker processes
    (``workers``, ``scheduler``): the model must then be picklable and importable there.
  - ``"processes"`` (with "batched"): the model pickles, and its chunks run faster in worker processes than on
    the checker's chunk threads (its ``loss_batch`` holds the GIL for much of each evaluation, as a PyTorch
    module's Python code does). A full check estimated above ``gradcheck.fast.speed.PROCESSES_AFTER`` seconds
    then runs in one worker process per core where processes start by fork (Linux), unless the caller chose
    how to evaluate (``executor``, ``workers``, ``scheduler``, ``evaluator`` or ``batched=False``).

- ``time_axes`` (``{name: axis}``): that parameter gets one row per index along ``axis``, with ``Row.t`` the
  index (label ``x[t=3]``); such rows take part in locating the first bad step, like state rows.
- ``splits`` (``{name: (axis, part_names)}``): that parameter is reported as equal contiguous parts along
  ``axis``, one row each (label ``Wx:i``; every entry still checked).
- ``report_settings`` (a JSON-serialisable dict with string keys): copied into the report's ``settings`` (what
  the model did that the report should record, e.g. ``{"torch": {"promoted_from": "float32"}}``); the
  checker's own keys win over the model's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .errors import ModelError, ProtocolError

KNOWN_CAPABILITIES = frozenset({"complex", "batched", "processes"})
__all__ = ["KNOWN_CAPABILITIES", "ModelError", "ModelSpec", "ProtocolError", "inspect_model"]


def dense_directions(directions) -> np.ndarray:
    """``(K, *shape)`` directions from a direction array (returned as is) or rank-1 factors ``(A, B)``."""
    if isinstance(directions, tuple):
        A, B = directions
        return np.einsum("ki,kj->kij", A, B)
    return directions


@dataclass
class ModelSpec:
    """What the checker learned from a model before checking it (copies; the model's arrays are never touched).

    ``time_axes``: parameter -> axis (one row per index); ``splits``: parameter -> (axis, part names).
    """

    params: dict[str, np.ndarray]
    capabilities: frozenset[str]
    dtype: np.dtype
    time_axes: dict[str, int] = field(default_factory=dict)
    splits: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    report_settings: dict = field(default_factory=dict)


def call_model(stage: str, fn, *args, **kwargs):
    """Call into the model; anything it raises becomes a :class:`ModelError` labelled with ``stage``."""
    try:
        return fn(*args, **kwargs)
    except (ProtocolError, ModelError, KeyboardInterrupt):
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
    params = _parameters(call_model("parameters()", model.parameters))
    caps = _capabilities(getattr(model, "capabilities", frozenset()))
    dtype = np.result_type(*params.values())
    if dtype.kind == "c":
        raise ProtocolError(
            "parameters() must be real; complex values are the checker's to add (complex step)"
        )
    time_axes = _time_axes(getattr(model, "time_axes", None) or {}, params)
    splits = _splits(getattr(model, "splits", None) or {}, params)
    both = sorted(set(time_axes) & set(splits))
    if both:
        raise ProtocolError(f"{both}: a parameter has either a time axis or a split, not both")
    report_settings = _report_settings(getattr(model, "report_settings", None))
    return ModelSpec(params, caps, dtype, time_axes, splits, report_settings)


def _report_settings(declared) -> dict:
    """The model's ``report_settings``: a dict with string keys that JSON can write (a copy)."""
    if declared is None:
        return {}
    if not isinstance(declared, dict) or not all(isinstance(k, str) for k in declared):
        raise ProtocolError(f"report_settings must be a dict with string keys, got {type(declared).__name__}")
    try:
        return json.loads(json.dumps(declared))
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"report_settings must be JSON-serialisable: {exc}") from None


def _parameters(raw) -> dict[str, np.ndarray]:
    if not isinstance(raw, dict) or not raw:
        raise ProtocolError(
            f"parameters() must return a non-empty dict of name -> array, got {type(raw).__name__}"
        )
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
    return params


def _capabilities(caps) -> frozenset[str]:
    if isinstance(caps, str) or not all(isinstance(c, str) for c in caps):
        raise ProtocolError(f"capabilities must be a collection of strings, got {caps!r}")
    caps = frozenset(caps)
    unknown = caps - KNOWN_CAPABILITIES
    if unknown:
        raise ProtocolError(f"unknown capabilities {sorted(unknown)}; known: {sorted(KNOWN_CAPABILITIES)}")
    return caps


def _axis(what: str, axis, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer) or not -ndim <= axis < ndim:
        raise ProtocolError(f"{what}: axis {axis!r} is out of range for an array with {ndim} dimensions")
    return int(axis) % ndim


def _time_axes(declared, params) -> dict[str, int]:
    if not isinstance(declared, dict):
        raise ProtocolError(f"time_axes must be a dict name -> axis, got {type(declared).__name__}")
    out = {}
    for name, axis in declared.items():
        if name not in params:
            raise ProtocolError(f"time_axes[{name!r}]: no such parameter; parameters() has {list(params)}")
        out[name] = _axis(f"time_axes[{name!r}]", axis, params[name].ndim)
    return out


def _splits(declared, params) -> dict[str, tuple[int, tuple[str, ...]]]:
    if not isinstance(declared, dict):
        raise ProtocolError(
            f"splits must be a dict name -> (axis, part names), got {type(declared).__name__}"
        )
    out = {}
    for name, value in declared.items():
        what = f"splits[{name!r}]"
        if name not in params:
            raise ProtocolError(f"{what}: no such parameter; parameters() has {list(params)}")
        try:
            axis, parts = value
            parts = tuple(parts) if not isinstance(parts, str) else None
        except (TypeError, ValueError):
            parts = None
        if not parts or not all(isinstance(p, str) and p for p in parts) or len(set(parts)) != len(parts):
            raise ProtocolError(f"{what}: expected (axis, [distinct part names]), got {value!r}")
        axis = _axis(what, axis, params[name].ndim)
        size = params[name].shape[axis]
        if size % len(parts):
            raise ProtocolError(
                f"{what}: axis {axis} has length {size}, which {len(parts)} parts {list(parts)} cannot share equally"
            )
        out[name] = (axis, parts)
    return out


def as_scalar_loss(value, stage: str) -> complex | float:
    """The model's loss as a Python scalar; anything else is a protocol error naming what came back."""
    arr = np.asarray(value)
    if arr.shape not in ((), (1,)) or arr.dtype.kind not in "biufc":
        raise ProtocolError(
            f"{stage} must return a scalar number, got {type(value).__name__} shape {arr.shape}"
        )
    return arr.reshape(()).item()


def split_gradients(value) -> tuple[dict, dict]:
    """Validate the structure of ``gradients(params)``'s result (shapes are validated by the checker)."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ProtocolError("gradients(params) must return a pair (param_grads, state_grads)")
    pg, sg = value
    if not isinstance(pg, dict) or not isinstance(sg, dict):
        raise ProtocolError(
            f"gradients(params) must return two dicts, got ({type(pg).__name__}, {type(sg).__name__})"
        )
    return pg, sg
