"""What a user hands an adapter, checked before any of their code runs.

Every problem is a :class:`gradcheck.ProtocolError` (a usage error, exit code 2) whose message names the
argument, says what was found and what to do; nothing here lets numpy raise from deep inside a check.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping

import numpy as np

from ..protocol import ProtocolError


def describe(value) -> str:
    """``ndarray float64 (2, 3)``, ``int 0``, ``list of 3``: what a value is, for messages."""
    if isinstance(value, np.ndarray):
        return f"ndarray {value.dtype} {value.shape}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)}"
    if isinstance(value, (bool, int, float, complex, np.generic)):
        return f"{type(value).__name__} {value!r}"
    return type(value).__name__


def brief(value) -> str:
    """``repr`` when short, else :func:`describe`."""
    r = repr(value)
    return r if len(r) <= 60 else describe(value)


def names_dict(what: str, value, *, empty_ok: bool = False) -> dict:
    """A dict with string keys (a copy, order kept); ``what`` names the argument in messages."""
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{what}: expected a dict of name -> array, got {describe(value)}")
    bad = [k for k in value if not isinstance(k, str) or not k]
    if bad:
        raise ProtocolError(f"{what}: names must be non-empty strings, got {bad[0]!r}")
    if not value and not empty_ok:
        raise ProtocolError(f"{what}: is empty; give at least one name -> array")
    return dict(value)


def is_float_array(value) -> bool:
    """The default ``wrt`` rule: numpy arrays of a real floating dtype (Python numbers are held fixed)."""
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def float_array(what: str, value) -> np.ndarray:
    """A copy of ``value`` as a non-empty, finite, real floating array, or a ProtocolError saying why not."""
    try:
        arr = np.array(value, copy=True)
    except Exception as exc:  # noqa: BLE001  (ragged lists and the like: a usage error)
        raise ProtocolError(f"{what}: cannot be read as an array ({type(exc).__name__}: {exc})") from None
    if arr.dtype.kind in "iub":
        raise ProtocolError(
            f"{what}: has dtype {arr.dtype}, and gradients are checked on floating arrays; "
            f"pass it as float64 (np.asarray(value, dtype=float)) or leave it out of wrt"
        )
    if arr.dtype.kind == "c":
        raise ProtocolError(
            f"{what}: is complex; the checker checks real arrays (it adds the imaginary part "
            f"itself for the complex step)"
        )
    if arr.dtype.kind != "f":
        raise ProtocolError(f"{what}: expected a floating array, got {describe(value)}")
    if arr.size == 0:
        raise ProtocolError(f"{what}: is empty (shape {arr.shape}); there is nothing to check")
    if not np.all(np.isfinite(arr)):
        raise ProtocolError(f"{what}: contains NaN or inf; check the gradient at a finite point")
    return arr


def axis(what: str, value, ndim: int) -> int:
    """An axis of an ndim-array as a non-negative int (negative counts from the end)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ProtocolError(f"{what}: the axis must be an integer, got {describe(value)}")
    if not -ndim <= value < ndim:
        raise ProtocolError(f"{what}: axis {value} is out of range for an array with {ndim} dimension(s)")
    return int(value) % ndim


def time_axes(time_axis, arrays: dict[str, np.ndarray], *, arg: str = "time_axis") -> dict[str, int]:
    """``{name: axis}`` normalised; every name must be one of ``arrays`` (the checked ones)."""
    if time_axis is None:
        return {}
    spec = names_dict(arg, time_axis, empty_ok=True)
    out = {}
    for name, ax in spec.items():
        _known(arg, name, arrays)
        out[name] = axis(f"{arg}[{name!r}]", ax, arrays[name].ndim)
    return out


def splits(
    split, arrays: dict[str, np.ndarray], *, arg: str = "split"
) -> dict[str, tuple[int, tuple[str, ...]]]:
    """``{name: (axis, parts)}`` normalised to ``(int, tuple of str)``; the parts divide the axis equally."""
    if split is None:
        return {}
    spec = names_dict(arg, split, empty_ok=True)
    out = {}
    for name, value in spec.items():
        what = f"{arg}[{name!r}]"
        _known(arg, name, arrays)
        if (
            not isinstance(value, (tuple, list))
            or len(value) != 2
            or isinstance(value[0], (bool, str))
            or not isinstance(value[0], (int, np.integer))
        ):
            raise ProtocolError(
                f"{what}: expected (axis, [part names]), e.g. (1, ['i', 'f', 'o', 'g']), got {brief(value)}"
            )
        ax, parts = value
        if isinstance(parts, str):
            raise ProtocolError(
                f"{what}: the parts must be a list of names like {list(parts)!r}, got the string {parts!r}"
            )
        if (
            not isinstance(parts, (tuple, list))
            or not parts
            or not all(isinstance(p, str) and p for p in parts)
        ):
            raise ProtocolError(
                f"{what}: the parts must be a non-empty list of non-empty names, got {parts!r}"
            )
        if len(set(parts)) != len(parts):
            raise ProtocolError(f"{what}: the part names repeat: {list(parts)}")
        shape = arrays[name].shape
        ax = axis(what, ax, len(shape))
        if shape[ax] % len(parts):
            raise ProtocolError(
                f"{what}: {len(parts)} equal parts do not divide axis {ax} of length {shape[ax]} "
                f"(shape {shape})"
            )
        out[name] = (ax, tuple(parts))
    return out


def _known(arg: str, name: str, arrays: dict) -> None:
    if name not in arrays:
        raise ProtocolError(f"{arg}: {name!r} is not one of the checked arrays {list(arrays)}")


def no_overlap(time_axes_: dict, splits_: dict) -> None:
    both = [k for k in time_axes_ if k in splits_]
    if both:
        raise ProtocolError(f"{both[0]!r} is in both time_axis and split; give it one of the two")


def gradient(what: str, value, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A user's gradient as a real array of exactly ``shape`` (a copy, cast to ``dtype``)."""
    if value is None:
        raise ProtocolError(f"{what} is None; expected an array of shape {shape}")
    try:
        arr = np.array(value, copy=True)
    except Exception as exc:  # noqa: BLE001  (whatever numpy raises: a usage error naming it)
        raise ProtocolError(f"{what}: cannot be read as an array ({type(exc).__name__}: {exc})") from None
    if arr.dtype.kind not in "iuf":
        raise ProtocolError(f"{what}: expected a real numeric array of shape {shape}, got {describe(value)}")
    if arr.shape != tuple(shape):
        raise ProtocolError(
            f"{what} has shape {arr.shape}, expected {tuple(shape)} (the shape of the array "
            f"it is the gradient of)"
        )
    return arr.astype(dtype, copy=False)


def scalar_loss(what: str, value):
    """The user's loss as a Python float (complex under the complex step), or a ProtocolError naming it."""
    if isinstance(value, (tuple, list)):
        raise ProtocolError(
            f"{what} returned a {type(value).__name__} of {len(value)}; it must return the loss "
            f"alone (if your function returns (loss, grads), pass lambda **a: f(**a)[0])"
        )
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iufc":
        raise ProtocolError(f"{what} must return a scalar number, got {describe(value)}; sum or average it")
    out = arr.reshape(()).item()
    return out if isinstance(out, complex) else float(out)


def fn_name(fn) -> str:
    """A user function's name for reprs and messages (``partial(f, bug='x')`` for partials; a function defined
    inside another by its own name, without the ``outer.<locals>.`` path)."""
    if isinstance(fn, functools.partial):
        kw = ", ".join(f"{k}={val!r}" for k, val in fn.keywords.items())
        return f"partial({fn_name(fn.func)}{', ' + kw if kw else ''})"
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return name.rsplit("<locals>.", 1)[-1]


def fresh(value):
    """A copy user code may write into: arrays copied, other objects deep-copied (shared if they can't be)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001  (an object that cannot be copied is shared)
        return value
