"""The complex step as dual numbers: first-order (tangent) propagation around the unperturbed pass.

When every delta is purely imaginary and tiny (``|Im d| <= DUAL_MAX_STEP``, :func:`is_dual`), complex
arithmetic through the network equals first-order propagation to rounding: the real part is the unperturbed
pass (the second-order terms, of size ``|d|^2``, vanish below rounding) and the imaginary part is ``Im d``
times the directional derivative. This module computes those derivatives with real tangents (no complex tanh,
one real GEMM ``w_h (4H, H) @ dh (H, K)`` per step); the callers return ``L + 1j * Im(d) * derivative``.

Tangents are held like the real path's states, one copy per column: ``dz`` ``(4H, K)`` pre-activation
tangents, ``ds``, ``dh`` ``(H, K)``. Here d<x> is the tangent of x (forward mode: how x moves along the
perturbation), not the backward pass's dL(t)/d<x>(t) of :mod:`lstm_ref.model`; ``dl`` accumulates the
tangent of L. Coefficients: :class:`.unperturbed.TangentCoefficients`.
"""

from __future__ import annotations

import numpy as np

from .kernels import scratch
from .param_entries import ParamEntries
from .unperturbed import TangentCoefficients, Unperturbed

DUAL_MAX_STEP = 1e-12  # largest |Im delta| for the dual-number complex-step path


def is_dual(d: np.ndarray) -> bool:
    """Whether the deltas ``d`` (any shape) are all purely imaginary with ``|Im d| <= DUAL_MAX_STEP``."""
    return (
        d.dtype.kind == "c"
        and not np.any(d.real)
        and float(np.max(np.abs(d.imag), initial=0.0)) <= DUAL_MAX_STEP
    )


def tangent_cell(tc: TangentCoefficients, t: int, dz: np.ndarray, ds: np.ndarray, dh: np.ndarray) -> None:
    """In place, one step: pre-activation tangents ``dz`` ``(4H, K)`` (overwritten) and ds(t-1) in ``ds``
    ``(H, K)`` -> ``ds`` = ds(t), ``dh`` ``(H, K)`` = dh(t).

    With the gate tangents dA = act'(z) dz: ds = dg*i + g*di + ds(t-1)*f + s(t-1)*df and dh = ds*o + s*do
    (tanh variant: tanh'(s)*o*ds + tanh(s)*do), the multipliers act'(z) * (i, g, s(t-1), s | tanh(s)) taken
    together in ``tc.cell_coef``."""
    H = ds.shape[0]
    dz *= tc.cell_coef[t][:, None]
    ds *= tc.f[t][:, None]  # ds(t-1)*f
    ds += dz[:H]
    ds += dz[H : 2 * H]
    ds += dz[2 * H : 3 * H]
    np.multiply(ds, tc.dh_ds[t][:, None], out=dh)
    dh += dz[3 * H :]


# ------------------------------------------------------------------------------------ single entries


def entry_tangents(u: Unperturbed, kind: str, name: str, idx: np.ndarray) -> np.ndarray:
    """dL/d(entry) for K single entries ``idx`` ``(K,)`` of a block or a tap (see :mod:`.entries`), ``(K,)``
    real: the complex step's imaginary part divided by the step."""
    tc = u.tangents()
    H = u.H
    out = np.empty(idx.size, u.dt)
    if kind == "param":
        out[:] = _propagate_from(tc, 0, *_param_entry_start(tc, name, idx))
        return out
    t0s = idx // H
    for t0 in np.unique(t0s):  # copies grouped by the step their tap sits at
        sel = t0s == t0
        r = idx[sel] - t0 * H
        k = r.size
        o = u.a[t0, 3 * H + r]
        if name == "s":
            ds_r = np.ones(k, u.dt)
            dh_r = o if u.variant == "simple" else (1.0 - tc.tanh_s[t0, r] ** 2) * o
        else:
            ds_r, dh_r = np.zeros(k, u.dt), np.ones(k, u.dt)
        out[sel] = _propagate_from(tc, int(t0), r, ds_r, dh_r, None)
    return out


def _param_entry_start(tc: TangentCoefficients, name: str, idx: np.ndarray):
    """The tangents of s(0) and h(0) in entry r_k of copies moving parameter entries ``idx`` (unit seeds):
    ``(r, ds_r, dh_r, entries)``, the first three ``(K,)``."""
    u = tc.unperturbed
    H = u.H
    K = idx.size
    pert = ParamEntries(u, name, idx, np.ones(K, u.dt))
    r, gi = pert.r, pert.gi
    da = tc.act_deriv[0, pert.row] * pert.coef(u, 0)
    g, i, f, o = (u.a[0, q * H + r] for q in range(4))
    ds_r = {0: da * i, 1: g * da, 2: u.s_prev[0, r] * da, 3: np.zeros(K, u.dt)}[gi]
    do = da if gi == 3 else np.zeros(K, u.dt)
    if u.variant == "simple":
        dh_r = ds_r * o + u.s[0, r] * do
    else:
        tanh_s = tc.tanh_s[0, r]
        dh_r = (1.0 - tanh_s**2) * o * ds_r + tanh_s * do
    return r, ds_r, dh_r, pert


def _propagate_from(tc: TangentCoefficients, t0: int, r, ds_r, dh_r, pert: ParamEntries | None) -> np.ndarray:
    """dL/d(seed) ``(K,)`` by propagation from step t0, where copy k's tangent is ``ds_r[k], dh_r[k]`` in
    entry ``r[k]`` of s and h; ``pert``: parameter entries whose unit move acts at every later step."""
    u = tc.unperturbed
    H, T, dt = u.H, u.T, u.dt
    K = r.size
    ar = np.arange(K)
    dl = tc.dl_dh[t0, r] * dh_r
    if t0 + 1 >= T:
        return dl
    dh = np.zeros((H, K), dt)
    ds = np.zeros((H, K), dt)
    dh[r, ar] = dh_r
    ds[r, ar] = ds_r
    dz = np.empty((4 * H, K), dt)
    for t in range(t0 + 1, T):
        if t == t0 + 1:  # dh(t-1) is nonzero in entry r only
            np.take(tc.w_h, r, axis=1, out=dz, mode="clip")
            dz *= dh_r
        else:
            np.matmul(tc.w_h, dh, out=dz)
        if pert is not None:  # d(coef * delta)/d delta at the unperturbed point
            dz[pert.row, ar] += pert.coef(u, t)
        tangent_cell(tc, t, dz, ds, dh)
        dl += tc.dl_dh[t] @ dh
    return dl


# --------------------------------------------------------------------------------------- direction batches


def direction_tangents(tc: TangentCoefficients, batch) -> np.ndarray:
    """Directional derivatives ``(N,)`` of L for the columns of a tangent
    :class:`.direction_batch.DirectionBatch` (unit seeds), by tangent propagation."""
    u = tc.unperturbed
    H, T, dt = u.H, u.T, u.dt
    P = batch.n_param
    dz, dh, ds, _ = scratch(batch.n_copies, H, dt)  # reused: a copy's columns are zeroed when it joins
    dl = np.zeros(batch.n_copies, dt)
    n0 = 0  # columns running before step t
    for t in range(T):
        n1 = int(batch.running[t])
        if n1 == 0:
            continue
        if n0:
            np.matmul(tc.w_h, dh[:, :n0], out=dz[:, :n0])
        if n1 > n0:  # copies joining at t: no tangent yet (z, s(t-1))
            dz[:, n0:n1] = 0.0
            ds[:, n0:n1] = 0.0
        for rows, cols, inputs in batch.injections:  # exact tangent: x_c at the unperturbed point
            dz[rows, cols] += inputs[t]
        tangent_cell(tc, t, dz[:, :n1], ds[:, :n1], dh[:, :n1])
        s_tap, h_tap = batch.tap_rows(t, n1)
        if s_tap is not None:  # the tap on s(t) enters before h(t) reads it
            ds[:, P:n1] += s_tap
            dh[:, P:n1] += s_tap * tc.dh_ds[t][:, None]
        if h_tap is not None:
            dh[:, P:n1] += h_tap
        dl[:n1] += tc.dl_dh[t] @ dh[:, :n1]
        n0 = n1
    return dl
