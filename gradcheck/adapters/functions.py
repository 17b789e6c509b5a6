"""Functions in, report out: check a ``loss`` function against a ``grads`` function at a point ``args``.

    def loss(x, W):                      # called with keyword arguments, one per entry of args
        return float(np.sum(np.tanh(x @ W)))

    def grads(x, W):                     # name -> gradient, same shape as the argument
        d = 1 - np.tanh(x @ W) ** 2
        return {"x": d @ W.T, "W": x.T @ d}

    report = gradcheck.check_function(loss, grads, {"x": x, "W": W}, time_axis={"x": 0})

``time_axis`` gives an argument one row per index along an axis (``x[t=3]``): a sequence backward that returns
``dx`` is localised in time from the outside. ``split`` reports a fused block as equal contiguous parts along
an axis (``Wx:i``, ``Wx:f``, ...). Both become the model's ``time_axes`` / ``splits`` attributes, which the
checker reads (see :mod:`gradcheck.protocol`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from ..checker import check
from ..protocol import ProtocolError, call_model
from . import validate as v


class FunctionModel:
    """``loss(**args) -> float`` and ``grads(**args) -> {name: gradient}`` as a model of the protocol.

    ``args``: name -> value, the point of the check. The checked arguments are ``wrt`` (default: every numpy
    array of a floating dtype in ``args``); they must be finite, non-empty, real floating arrays. Every other
    argument (int labels, Python numbers, dicts, ...) is held fixed. ``grads`` must return a dict with a
    gradient of the argument's shape for every checked name; gradients it returns for fixed arguments are
    ignored. Both functions are called with keyword arguments, on fresh copies at every call (a function that
    writes into its inputs cannot corrupt the check), and ``args`` is copied once here (later changes to the
    caller's arrays do not move the point).

    ``time_axis``: ``{name: axis}`` (checked arguments): one row per index along the axis, labelled
    ``x[t=3]``. ``split``: ``{name: (axis, [part names])}``: one row per equal contiguous part along the axis,
    ``Wx:i``. ``complex_step``: declare the "complex" capability: only if ``loss`` is analytic in complex
    inputs (no ``abs``, no ``np.real``, no ``float()`` of the result) and ``grads`` stays real at real points.

    Usage errors (:class:`gradcheck.ProtocolError`, each naming the argument): ``args`` not a dict of names, a
    ``wrt`` name that is not an argument or not a floating array, an axis out of range, parts that do not
    divide their axis, and (while checking) ``grads`` returning wrong names, missing names or wrong shapes,
    ``loss`` returning something other than a scalar. Exceptions raised by ``loss`` or ``grads`` themselves
    surface as :class:`gradcheck.ModelError` naming the function.
    """

    def __init__(
        self, loss, grads, args, *, wrt=None, time_axis=None, split=None, complex_step: bool = False
    ):
        for what, fn in (("loss", loss), ("grads", grads)):
            if not callable(fn):
                raise ProtocolError(f"{what}: expected a function, got {v.describe(fn)}")
        args = v.names_dict("args", args)
        self._checked = {n: v.float_array(f"args[{n!r}]", args[n]) for n in _wrt_names(wrt, args)}
        self._fixed = {n: v.fresh(a) for n, a in args.items() if n not in self._checked}
        self.time_axes = v.time_axes(time_axis, self._checked)
        self.splits = v.splits(split, self._checked)
        v.no_overlap(self.time_axes, self.splits)
        self.capabilities = frozenset({"complex"}) if complex_step else frozenset()
        self._loss, self._grads = loss, grads

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={val!r}" for k, val in (("time_axis", self.time_axes), ("split", self.splits)) if val
        )
        held = f", held fixed={list(self._fixed)}" if self._fixed else ""
        return (
            f"FunctionModel({v.fn_name(self._loss)}, {v.fn_name(self._grads)}, wrt={list(self._checked)}"
            f"{held}{extra})"
        )

    def parameters(self) -> dict:
        return {n: a.copy() for n, a in self._checked.items()}

    def loss(self, params, taps=None):
        if taps:
            raise ProtocolError(
                f"FunctionModel has no recurrent states, but taps were given for {list(taps)}"
            )
        kwargs = self._call_args(params)
        return v.scalar_loss("loss(**args)", call_model("loss(**args)", lambda: self._loss(**kwargs)))

    def gradients(self, params):
        kwargs = self._call_args(params)
        out = call_model("grads(**args)", lambda: self._grads(**kwargs))
        if not isinstance(out, Mapping):
            raise ProtocolError(
                f"grads(**args) must return a dict of name -> gradient, got {v.describe(out)}; e.g. "
                f"lambda **a: dict(zip({list(self._checked)!r}, backward(...)))"
            )
        _check_names(out, self._checked, [*self._fixed, *self._checked])
        return {
            n: v.gradient(f"grads(**args)[{n!r}]", out[n], a.shape, a.dtype) for n, a in self._checked.items()
        }, {}

    def _call_args(self, params) -> dict:
        """Fresh copies of every argument, the checked ones taken from ``params`` (the checker's point)."""
        missing = [n for n in self._checked if n not in params]
        if missing:
            raise ProtocolError(
                f"params has no {missing}; expected the names of parameters(): {list(self._checked)}"
            )
        return {
            **{n: v.fresh(a) for n, a in self._fixed.items()},
            **{n: params[n].copy() for n in self._checked},
        }


def check_function(
    loss, grads, args, *, wrt=None, time_axis=None, split=None, complex_step: bool = False, **options
):
    """Check ``grads`` against finite differences of ``loss`` at ``args``; return the Report.

    ``loss``, ``grads``, ``args``, ``wrt``, ``time_axis``, ``split``, ``complex_step``: see
    :class:`FunctionModel`. ``options``: every keyword :func:`gradcheck.check` takes (``method``, ``eps``,
    ``rtol``, ``atol``, ``mode``, ``seed``, ``workers``, ...); an unknown one is a ProtocolError naming it.
    """
    check_options("check_function", options)
    return check(
        FunctionModel(
            loss, grads, args, wrt=wrt, time_axis=time_axis, split=split, complex_step=complex_step
        ),
        **options,
    )


def check_options(caller: str, options: dict) -> None:
    """Options for :func:`gradcheck.check`: a name it cannot take is a ProtocolError naming it. When ``check``
    takes open keywords (``**speed``) it validates those itself, so only its named keywords are known here."""
    params = inspect.signature(check).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    named = [p for p in params if p != "model"]
    unknown = [k for k in options if k not in named]
    if unknown:
        raise ProtocolError(
            f"{caller}: unknown option(s) {unknown}; it passes these on to check(): {', '.join(named)}"
        )


def _wrt_names(wrt, args: dict) -> list[str]:
    """The checked names: wrt as given, or every floating numpy array of ``args`` in its order."""
    if wrt is None:
        names = [n for n, a in args.items() if v.is_float_array(a)]
        if not names:
            found = ", ".join(f"{n}: {v.describe(a)}" for n, a in args.items())
            raise ProtocolError(
                f"args: no floating-point numpy array to check ({found}); pass float arrays "
                f"or name the arguments to check in wrt"
            )
        return names
    names = [wrt] if isinstance(wrt, str) else wrt
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        raise ProtocolError(f"wrt: expected a non-empty list of argument names, got {wrt!r}")
    unknown = [n for n in names if n not in args]
    if unknown:
        raise ProtocolError(
            f"wrt: {unknown} {'is not an argument' if len(unknown) == 1 else 'are not arguments'}"
            f"; args has {list(args)}"
        )
    if len(set(names)) != len(names):
        raise ProtocolError(f"wrt: names repeat: {list(names)}")
    return list(names)


def _check_names(out: Mapping, checked: dict, arg_names: list[str]) -> None:
    """grads' keys: every checked name present; nothing that is not an argument (a typo or a ``d`` prefix)."""
    unknown = [k for k in out if k not in arg_names]
    if unknown:
        hints = [f"{k!r} -> {k[1:]!r}" for k in unknown if isinstance(k, str) and k[1:] in arg_names]
        raise ProtocolError(
            f"grads(**args) returned gradients named {unknown}, which are not arguments (args: {arg_names}); "
            f"key each gradient by its argument's name" + (f" ({', '.join(hints)})" if hints else "")
        )
    missing = [n for n in checked if n not in out]
    if missing:
        raise ProtocolError(
            f"grads(**args) returned no gradient for {missing} (it returned {list(out)}); return one for "
            f"every checked argument, or pass wrt= without {'it' if len(missing) == 1 else 'them'}"
        )
