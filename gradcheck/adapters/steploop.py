"""A step loop the checker drives: rows dL/d(state)(t) for code that has a step forward and a step backward.

The user's two functions, in the CS231n convention (states and parameters in the order of the dicts given)::

    step_forward(x_t, *states, *params)   -> (*next_states, cache)
    step_backward(*dnext_states, cache)   -> (dx_t, *dprev_states, *dparams)

    model = StepModel(lstm_step_forward, lstm_step_backward, inputs=x, time_axis=1,
                      states={"h": h0, "c": c0}, params={"Wx": Wx, "Wh": Wh, "b": b})

The model runs the unrolled loop itself. The loss is a readout of every state at every step: by default a
random projection ``L = sum_s sum_t <P_s(t), s(t)>`` with ``P`` drawn from
``numpy.random.default_rng([seed, 23])``, so every state has a direct path to the loss and no row is zero by
construction. A state's tap (the checker's perturbation) is added to what ``step_forward`` returns, before the
readout and the next step see it. The backward runs ``step_backward`` from the last step to the first, handing
it the TOTAL gradient of each state (the readout's part plus what the step above returned as ``dprev``): that
total, at every t, is the state row.

So a state row ``c[t=2]`` is dL/d(next_c returned at t=2) with the step's other outputs held fixed: exactly
the ``dnext_c`` a CS231n ``step_backward`` receives. A failing ``c[t]`` beside a passing ``c[t+1]`` means
``step_backward`` at t+1 returned a wrong ``dprev_c``; a failing ``x[t]``, that it returned a wrong ``dx``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..checker import check
from ..protocol import ProtocolError, call_model
from . import validate as v
from .functions import check_options

READOUT_STREAM = 23  # the readout projection: numpy.random.default_rng([seed, READOUT_STREAM])


class StepModel:
    """The unrolled loop of ``step_forward`` / ``step_backward`` as a model of the checker's protocol.

    ``inputs``: the sequence, one slice per step along ``time_axis`` (``(N, T, D)`` with ``time_axis=1`` for
    CS231n, ``(n_x, m, T)`` with ``time_axis=2`` for deeplearning.ai, a list of T arrays with the default 0).
    ``states``: name -> initial value (e.g. ``{"h": h0, "c": c0}``), in the order ``step_forward`` takes them
    and ``step_backward`` returns their gradients; every step must return states of these shapes.
    ``params``: name -> array, in the order ``step_forward`` takes them and ``step_backward`` returns their
    gradients (this step's gradient: the model sums over steps). Passed read-only.

    Checked (rows): every parameter (split into parts by ``split={name: (axis, [parts])}``); the inputs as
    ``input_name`` (default ``"x"``) with one row per step (``time_axes``), unless ``check_inputs=False``
    (then ``step_backward`` may return None for dx); the initial states as parameters ``h0``, ``c0``, ...
    unless ``check_init=False``; and every state at every step (state rows, shape ``(T, *state_shape)``).

    ``readout``: None (the seeded random projection above; ``seed`` = the check's seed to record it) or a
    function ``readout(states) -> (loss, dstates)`` of the dict name -> ``(T, *state_shape)`` of every step's
    states, returning the loss and its direct gradient per state (a missing name: zero).
    ``complex_step``: declare the "complex" capability (only if both functions are analytic in complex
    inputs).

    Usage errors (:class:`gradcheck.ProtocolError`) name the argument or the step: non-float or empty arrays,
    an axis out of range, clashing names, and while checking a step returning the wrong number of values or a
    value of the wrong shape. Exceptions raised by the user's functions surface as
    :class:`gradcheck.ModelError` naming the function and the step (``step_forward at t=3``).
    """

    def __init__(
        self,
        step_forward,
        step_backward,
        *,
        inputs,
        states,
        params,
        time_axis=0,
        split=None,
        readout=None,
        seed: int = 0,
        input_name: str = "x",
        check_inputs: bool = True,
        check_init: bool = True,
        complex_step: bool = False,
    ):
        for what, fn in (("step_forward", step_forward), ("step_backward", step_backward)):
            if not callable(fn):
                raise ProtocolError(f"{what}: expected a function, got {v.describe(fn)}")
        if readout is not None and not callable(readout):
            raise ProtocolError(
                f"readout: expected None or a function readout(states) -> (loss, dstates), "
                f"got {v.describe(readout)}"
            )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ProtocolError(f"seed: expected an integer >= 0, got {seed!r}")
        self._fwd, self._bwd, self._readout, self.seed = step_forward, step_backward, readout, int(seed)
        self._states = {
            n: v.float_array(f"states[{n!r}]", a) for n, a in v.names_dict("states", states).items()
        }
        self._params = {
            n: v.float_array(f"params[{n!r}]", a) for n, a in v.names_dict("params", params).items()
        }
        self._inputs = v.float_array("inputs", inputs)
        if self._inputs.ndim == 0:
            raise ProtocolError("inputs: is a scalar; expected one slice per step along time_axis")
        self.time_axis = v.axis("time_axis", time_axis, self._inputs.ndim)
        self.steps = self._inputs.shape[self.time_axis]
        self.state_names = tuple(self._states)
        self.input_name, self.check_inputs, self.check_init = input_name, bool(check_inputs), bool(check_init)
        self._init_names = {s: f"{s}0" for s in self._states} if self.check_init else {}
        self._check_names()
        self.time_axes = {input_name: self.time_axis} if self.check_inputs else {}
        self.splits = v.splits(split, self._params)
        self.capabilities = frozenset({"complex"}) if complex_step else frozenset()
        rng = np.random.default_rng([self.seed, READOUT_STREAM])
        self._projection = {s: rng.standard_normal((self.steps, *a.shape)) for s, a in self._states.items()}

    def _check_names(self) -> None:
        if not isinstance(self.input_name, str) or not self.input_name:
            raise ProtocolError(f"input_name: expected a non-empty string, got {self.input_name!r}")
        taken: dict[str, str] = {}
        for kind, names in (
            ("parameter", self._params),
            ("state", self._states),
            ("input", [self.input_name] if self.check_inputs else []),
            ("initial state", self._init_names.values()),
        ):
            for n in names:
                if n in taken:
                    raise ProtocolError(
                        f"the name {n!r} is both a {taken[n]} and a{'n' if kind[0] in 'ai' else ''} {kind}; "
                        f"rows need distinct names (rename one, or pass input_name= / check_init=False)"
                    )
                taken[n] = kind

    def __repr__(self) -> str:
        readout = (
            f"random projection, seed {self.seed}" if self._readout is None else v.fn_name(self._readout)
        )
        return (
            f"StepModel({v.fn_name(self._fwd)}, {v.fn_name(self._bwd)}, states={list(self._states)}, "
            f"params={list(self._params)}, steps={self.steps}, readout={readout!r})"
        )

    def parameters(self) -> dict:
        out = {n: a.copy() for n, a in self._params.items()}
        if self.check_inputs:
            out[self.input_name] = self._inputs.copy()
        out |= {self._init_names[s]: a.copy() for s, a in self._states.items() if self.check_init}
        return out

    def loss(self, params, taps=None):
        states, _ = self._forward(params, taps, keep=False)
        if self._readout is None:
            return sum(np.sum(self._projection[s] * states[s]) for s in self._states).item()
        value = call_model("readout(states)", self._readout, {s: a.copy() for s, a in states.items()})
        return v.scalar_loss("readout(states)", self._readout_pair(value)[0])

    def gradients(self, params):
        """Run the loop, then ``step_backward`` from the last step down; return (param_grads, state_grads)."""
        states, caches = self._forward(params, None, keep=True)
        direct = self._direct(states)
        dtype = np.result_type(*self._params.values(), self._inputs, *self._states.values())
        carry = {s: np.zeros(a.shape, dtype) for s, a in self._states.items()}
        state_grads = {s: np.empty((self.steps, *a.shape), dtype) for s, a in self._states.items()}
        pgrads = {n: np.zeros(a.shape, dtype) for n, a in self._params.items()}
        dx = np.zeros(self._inputs.shape, dtype)
        for t in reversed(range(self.steps)):
            total = {s: direct[s][t] + carry[s] for s in self._states}
            for s in self._states:
                state_grads[s][t] = total[s]
            out = call_model(
                f"step_backward at t={t}", self._bwd, *(g.copy() for g in total.values()), caches[t]
            )
            dx_t, carry, dps = self._backward_values(out, t, dtype)
            if self.check_inputs:
                dx[_at(self.time_axis, t, dx.ndim)] = dx_t
            for n, g in dps.items():
                pgrads[n] += g
        if self.check_inputs:
            pgrads[self.input_name] = dx
        pgrads |= {self._init_names[s]: carry[s] for s in self._states if self.check_init}
        return pgrads, state_grads

    def _values(self, params):
        """(inputs, initial states, read-only parameter copies) at the checker's ``params``."""
        expected = [
            *self._params,
            *([self.input_name] if self.check_inputs else []),
            *self._init_names.values(),
        ]
        missing = [n for n in expected if n not in params]
        if missing:
            raise ProtocolError(f"params has no {missing}; expected the names of parameters(): {expected}")
        inputs = params[self.input_name] if self.check_inputs else self._inputs
        init = {s: params[self._init_names[s]] if self.check_init else a for s, a in self._states.items()}
        ps = []
        for n in self._params:
            a = np.array(params[n])
            a.flags.writeable = False
            ps.append(a)
        return inputs, init, ps

    def _forward(self, params, taps, *, keep: bool):
        """Every step's states (taps added), stacked ``(T, *state_shape)``, and the caches (``keep``)."""
        inputs, state, ps = self._values(params)
        taps = taps or {}
        seen = {s: [] for s in self._states}
        caches = []
        for t in range(self.steps):
            x_t = np.take(inputs, t, axis=self.time_axis)
            out = call_model(
                f"step_forward at t={t}", self._fwd, x_t, *(np.array(a) for a in state.values()), *ps
            )
            nexts, cache = self._forward_values(out, t)
            for s, value in nexts.items():
                tap = taps.get(s)
                state[s] = value if tap is None else value + tap[t]
                seen[s].append(state[s])
            if keep:
                caches.append(cache)
        return {s: np.stack(a) for s, a in seen.items()}, caches

    def _forward_values(self, out, t: int):
        names = list(self._states)
        if not isinstance(out, (tuple, list)) or len(out) != len(names) + 1:
            expected = ", ".join([*(f"next_{s}" for s in names), "cache"])
            raise ProtocolError(
                f"step_forward must return ({expected}): {len(names) + 1} values; at t={t} it "
                f"returned {v.describe(out)}"
            )
        nexts = {}
        for s, value in zip(names, out):
            arr = np.asarray(value)
            shape = self._states[s].shape
            if arr.dtype.kind not in "iufc" or arr.shape != shape:
                raise ProtocolError(
                    f"step_forward at t={t} returned next {s!r} as {v.describe(value)}; the state "
                    f"{s!r} has shape {shape} (its initial value's), every step must keep it"
                )
            nexts[s] = arr
        return nexts, out[-1]

    def _backward_values(self, out, t: int, dtype):
        """(dx_t or None, {state: dprev}, {param: dparam}) from what ``step_backward`` returned at step t."""
        names = ["dx", *(f"dprev_{s}" for s in self._states), *(f"d{p}" for p in self._params)]
        if not isinstance(out, (tuple, list)) or len(out) != len(names):
            raise ProtocolError(
                f"step_backward must return ({', '.join(names)}): {len(names)} values in that order "
                f"(dx, then one per state, then one per parameter); at t={t} it returned "
                f"{v.describe(out)}"
            )
        where = f"step_backward at t={t}: value {{k}} ({{name}})"
        dx_t = None
        if out[0] is not None or self.check_inputs:
            if out[0] is None:
                raise ProtocolError(
                    f"step_backward returned None for dx at t={t}; return dL/dx_t, or pass "
                    f"check_inputs=False to check the states and parameters only"
                )
            x_shape = tuple(int(n) for k, n in enumerate(self._inputs.shape) if k != self.time_axis)
            dx_t = v.gradient(where.format(k=0, name="dx"), out[0], x_shape, dtype)
        grads = [
            v.gradient(where.format(k=k, name=n), g, shape, dtype)
            for k, (n, g, shape) in enumerate(
                zip(names[1:], out[1:], [a.shape for a in (*self._states.values(), *self._params.values())]),
                start=1,
            )
        ]
        k = len(self._states)
        return dx_t, dict(zip(self._states, grads[:k])), dict(zip(self._params, grads[k:]))

    def _direct(self, states) -> dict:
        """dL/d(state)(t) through the readout alone, ``(T, *state_shape)`` per state."""
        if self._readout is None:
            return self._projection
        value = call_model("readout(states)", self._readout, {s: a.copy() for s, a in states.items()})
        _, dstates = self._readout_pair(value)
        if not isinstance(dstates, Mapping):
            raise ProtocolError(
                f"readout(states) must return (loss, dstates) with dstates a dict of state name "
                f"-> gradient, got {v.describe(dstates)}"
            )
        unknown = [k for k in dstates if k not in self._states]
        if unknown:
            raise ProtocolError(
                f"readout(states) returned gradients for {unknown}, which are not states "
                f"({list(self._states)})"
            )
        return {
            s: v.gradient(f"readout(states) gradient {s!r}", dstates[s], states[s].shape, states[s].dtype)
            if s in dstates
            else np.zeros(states[s].shape)
            for s in self._states
        }

    @staticmethod
    def _readout_pair(value):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise ProtocolError(f"readout(states) must return (loss, dstates), got {v.describe(value)}")
        return value


def check_steps(
    step_forward,
    step_backward,
    *,
    inputs,
    states,
    params,
    time_axis=0,
    split=None,
    readout=None,
    input_name: str = "x",
    check_inputs: bool = True,
    check_init: bool = True,
    complex_step: bool = False,
    **options,
):
    """Build a :class:`StepModel` and check it; return the :class:`gradcheck.Report`.

    ``options``: every keyword :func:`gradcheck.check` takes; its ``seed`` (default 0) also draws the readout
    projection, so the report's seed reproduces the whole check.
    """
    check_options("check_steps", options)
    model = StepModel(
        step_forward,
        step_backward,
        inputs=inputs,
        states=states,
        params=params,
        time_axis=time_axis,
        split=split,
        readout=readout,
        seed=options.get("seed", 0),
        input_name=input_name,
        check_inputs=check_inputs,
        check_init=check_init,
        complex_step=complex_step,
    )
    return check(model, **options)


def _at(axis: int, t: int, ndim: int) -> tuple:
    """The index of slice t along ``axis`` of an ndim-array."""
    return tuple(t if k == axis else slice(None) for k in range(ndim))
