"""The unperturbed pass at the base point, everything the perturbed copies reuse from it, and its cache.

T steps, H hidden, X inputs. :class:`Unperturbed` runs the model once at the base point with the gate matrices
stacked (see :mod:`.kernels`); :class:`TangentCoefficients` adds what the complex step's tangent propagation
(:mod:`.tangents`) needs, computed on first use; :class:`UnperturbedCache` (also importable as ``BaseCache``)
keeps the last pass for the chunks of one check; :func:`unperturbed_pass` validates the base point and builds
the pass (or takes it from a cache).
"""

from __future__ import annotations

import threading

import numpy as np

from ..model import BIASES, WEIGHTS, result_dtype, validate_params
from .kernels import activate, gate_scale, h_of, step_loss


class Unperturbed:
    """The unperturbed pass and what the copies reuse; ``(T, ...)`` arrays have the step as first axis.

    ``gate_scale`` ``(4H,)``: the activation pre-scaling (:mod:`.kernels`); ``w_h_scaled`` ``(4H, H)``: the
    recurrent columns of the stacked gates, scaled; ``zx_scaled`` ``(T, 4H)``: ``W_x x(t) + b``, scaled;
    ``z_scaled``, ``a`` ``(T, 4H)``: the scaled pre-activations and the activations ``[g, i, f, o]``; ``s``,
    ``h``, ``s_prev``, ``h_prev`` ``(T, H)`` (``*_prev[t]`` is the state at t-1); ``x_c`` ``(T, X+H)`` =
    ``[x(t), h(t-1)]``; ``l`` ``(T,)`` per-step losses; ``loss_before`` ``(T+1,)``: the sum of l before step
    t; ``L``: the total loss. ``xs`` ``(T, X)``, ``ys`` ``(T,)`` or ``(T, H)`` in ``dt``.
    """

    _tangent_lock = threading.Lock()  # the tangent coefficients are built once, whichever thread asks first

    def __init__(self, params, xs, ys, variant, loss, h0, s0, dt):
        self.variant, self.loss, self.dt = variant, loss, dt
        self.T, self.X = xs.shape
        self.H = params["bg"].shape[0]
        self.xs = np.asarray(xs, dt)
        self.ys = np.asarray(ys, dt)
        self.gate_scale = gate_scale(self.H, dt)
        self._stack_gates(params)
        self._run(h0, s0)
        self.x_c = np.concatenate([self.xs, self.h_prev], axis=1)  # x_c(t) = [x(t), h(t-1)], (T, X+H)
        self.loss_before = np.concatenate([[0.0], np.cumsum(self.l)]).astype(dt)
        self._tangents = None

    def _stack_gates(self, params) -> None:
        """``w_h_scaled`` and ``zx_scaled`` from the eight blocks."""
        H, X, T, dt = self.H, self.X, self.T, self.dt
        self.w_h_scaled = np.empty((4 * H, H), dt)  # the recurrent part, pre-scaled
        zx = np.empty((T, 4 * H), dt)  # W_x x(t) + b, for every step
        for q, (w, b) in enumerate(zip(WEIGHTS, BIASES, strict=True)):
            w_q = np.asarray(params[w], dt)
            self.w_h_scaled[q * H : (q + 1) * H] = w_q[:, X:]
            zx[:, q * H : (q + 1) * H] = self.xs @ w_q[:, :X].T + np.asarray(params[b], dt)
        self.w_h_scaled *= self.gate_scale[:, None]
        self.zx_scaled = zx * self.gate_scale

    def _run(self, h0, s0) -> None:
        """The forward pass, one step at a time, in the stacked layout."""
        H, T, dt = self.H, self.T, self.dt
        self.z_scaled = np.empty((T, 4 * H), dt)
        self.a = np.empty((T, 4 * H), dt)
        self.s, self.h = np.empty((T, H), dt), np.empty((T, H), dt)
        self.s_prev, self.h_prev = np.empty((T, H), dt), np.empty((T, H), dt)
        self.l = np.empty(T, dt)
        h_prev = np.zeros(H, dt) if h0 is None else np.asarray(h0, dt)
        s_prev = np.zeros(H, dt) if s0 is None else np.asarray(s0, dt)
        for t in range(T):
            self.h_prev[t], self.s_prev[t] = h_prev, s_prev
            self.z_scaled[t] = self.w_h_scaled @ h_prev + self.zx_scaled[t]
            a = activate(self.z_scaled[t][:, None].copy(), H)[:, 0]
            self.a[t] = a
            s = a[:H] * a[H : 2 * H] + s_prev * a[2 * H : 3 * H]  # s = g*i + s(t-1)*f
            h = h_of(s, a[3 * H :], self.variant)  # h = s*o | tanh(s)*o
            self.s[t], self.h[t] = s, h
            self.l[t] = step_loss(h[:, None], self.ys[t], self.loss)[0]
            h_prev, s_prev = h, s
        self.L = self.l.sum()

    def tangents(self) -> TangentCoefficients:
        """The tangent propagation's coefficients at this pass (built on first use, once)."""
        with self._tangent_lock:
            if self._tangents is None:
                self._tangents = TangentCoefficients(self)
        return self._tangents


class TangentCoefficients:
    """What first-order (dual-number) propagation around the unperturbed pass multiplies by. ``(T, ...)``.

    ``act_deriv`` ``(T, 4H)``: tanh'(z) (g) and sigmoid'(z) (i, f, o); ``cell_coef`` ``(T, 4H)``:
    ``act_deriv`` times ``[i, g, s(t-1), s | tanh(s)]``, the factors that turn the four gates' pre-activation
    tangents into their terms of ds(t) (g, i, f) and dh(t) (o) (see :func:`.tangents.tangent_cell`); ``dh_ds``
    ``(T, H)``: the partial dh(t)/ds(t) (``o``, or ``tanh'(s) o``); ``tanh_s`` ``(T, H)`` or None (variant
    "simple"); ``w_h`` ``(4H, H)``: the unscaled recurrent columns; ``dl_dh`` ``(T, H)``: dl(t)/dh(t); ``f``
    ``(T, H)``: the forget gate. ``unperturbed``: the pass these come from.
    """

    def __init__(self, u: Unperturbed):
        H, a = u.H, u.a
        self.unperturbed = u
        # Written without cancellation (1 - a loses all digits when a is near 1, which matters in float32):
        # z_scaled holds -z for i, f, o and -2z for g, see kernels.
        act_deriv = np.empty_like(a)
        with np.errstate(over="ignore"):  # cosh, exp -> inf: the exact limit 0
            act_deriv[:, :H] = 1.0 / np.cosh(0.5 * u.z_scaled[:, :H]) ** 2  # tanh'(z) = 1/cosh(z)^2
            act_deriv[:, H:] = a[:, H:] / (1.0 + np.exp(-u.z_scaled[:, H:]))  # sigmoid' = a * sigmoid(-z)
        dl_dh = np.zeros((u.T, H), u.dt)  # dl(t)/dh(t)
        if u.loss == "seed":
            dl_dh[:, 0] = 2.0 * (u.h[:, 0] - u.ys)
        else:
            dl_dh[:] = 2.0 * (u.h - u.ys)
        self.act_deriv = act_deriv
        self.tanh_s = np.tanh(u.s) if u.variant == "tanh" else None
        g, i, o = a[:, :H], a[:, H : 2 * H], a[:, 3 * H :]
        last = u.s if self.tanh_s is None else self.tanh_s
        self.cell_coef = act_deriv * np.concatenate([i, g, u.s_prev, last], axis=1)
        self.dh_ds = o if self.tanh_s is None else (1.0 - self.tanh_s**2) * o
        self.w_h = u.w_h_scaled / u.gate_scale[:, None]  # exact: the scale is -1 or -2
        self.f = a[:, 2 * H : 3 * H]
        self.dl_dh = dl_dh


class UnperturbedCache:
    """Remembers the last unperturbed pass, for params whose arrays are read-only and own their data (nobody
    can change them behind the cache's back) and are the same objects as last time. Pickles empty (worker
    processes build their own). Also importable as ``BaseCache`` (the same class)."""

    def __init__(self):
        self._entry = None
        self._lock = threading.Lock()  # threads asking at once build the pass once

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()

    def get(self, params, build):
        """The cached pass for ``params`` when it holds it, else ``build()`` (kept when params are frozen)."""
        frozen = all(
            isinstance(v, np.ndarray) and not v.flags.writeable and v.base is None for v in params.values()
        )
        key = tuple((k, id(v)) for k, v in params.items())
        if not frozen:
            return build()
        with self._lock:
            entry = self._entry
            if entry is not None and entry[0] == key and entry[1] is params:
                return entry[2]
            unperturbed = build()
            self._entry = (key, params, unperturbed)  # holds params: their ids cannot be reused meanwhile
            return unperturbed


BaseCache = UnperturbedCache


def _validated_base_point(params, xs, h0, s0):
    """Validate the base point; return ``(xs, dtype)``. Raises ValueError naming the bad block or input."""
    X, _ = validate_params(params)
    xs = np.asarray(xs)
    if xs.ndim != 2 or xs.shape[1] != X:
        raise ValueError(f"xs: expected shape (T, {X}), got {xs.shape}")
    return xs, result_dtype(*params.values(), xs, h0, s0)


def unperturbed_pass(
    cache: UnperturbedCache | None, params, xs, ys, variant, loss, h0, s0, dt=None
) -> Unperturbed:
    """The unperturbed pass at ``params`` (validated when built; from ``cache`` when it holds it). ``dt``: the
    dtype to run in (None: the inputs' :func:`lstm_ref.model.result_dtype`)."""

    def build():
        xs_, dt_ = _validated_base_point(params, xs, h0, s0)
        return Unperturbed(params, xs_, ys, variant, loss, h0, s0, dt_ if dt is None else dt)

    return build() if cache is None else cache.get(params, build)
