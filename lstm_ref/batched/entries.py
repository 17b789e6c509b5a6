"""Single-entry perturbations: L for K copies that each move ONE parameter entry or set ONE state tap entry.

Copy k: ``params[name].flat[flat_idx[k]] += deltas[k]`` (kind "param"), or the tap
``taps[name].flat[flat_idx[k]] = deltas[k]`` (kind "state"; taps are ``(T, H)``, see
:func:`lstm_ref.model.forward`). Result ``(K,)``.

A copy differs from the unperturbed pass first at one step t0 (0 for a parameter, the tap's step for a state),
and there in ONE entry r of s and h, computed per copy as scalars. At step t0+1 the change of h(t0) is one
entry, so the pre-activations change by a rank-1 term (column r of W_h times the change); from t0+2 on the K
copies run as one shared-weight GEMM per step (:class:`.kernels.Recurrence`). A parameter copy whose step-0
change is exactly zero (a recurrent column while h(-1) = 0, the forget gate while s(-1) = 0: 3/4 of the
weights with the default zero initial state) equals the unperturbed pass at step 0 and starts at step 1,
saving one dense step of T-1.

Real deltas run in real arithmetic; tiny imaginary deltas take the tangent path (:mod:`.tangents`); any other
complex delta runs this module's code in complex arithmetic (slow, exact semantics).
"""

from __future__ import annotations

import numpy as np

from ..model import LOSSES, VARIANTS
from .kernels import Recurrence, activate, cell, h_of, scratch, step_loss
from .param_entries import ParamEntries
from .tangents import entry_tangents, is_dual
from .unperturbed import Unperturbed, UnperturbedCache, unperturbed_pass


def entry_losses(
    params,
    xs,
    ys,
    *,
    variant="simple",
    loss="full",
    h0=None,
    s0=None,
    kind,
    name,
    flat_idx,
    deltas,
    cache: UnperturbedCache | None = None,
) -> np.ndarray:
    """L at K single-entry perturbations (see the module docstring), shape ``(K,)``.

    ``params``: the eight blocks (the base point); ``xs`` ``(T, X)``; ``ys`` ``(T,)`` (seed) or ``(T, H)``
    (full); ``h0``, ``s0`` ``(H,)`` or None. ``flat_idx`` ``(K,)`` ints; ``deltas`` ``(K,)`` real or complex.
    The result is complex when ``deltas`` is. ``cache``: keeps the unperturbed pass between calls.
    """
    u = unperturbed_pass(cache, params, xs, ys, variant, loss, h0, s0)
    H, dt = u.H, u.dt
    idx, d = _validated_request(params, variant, loss, kind, name, flat_idx, deltas, u.T, H)
    K = idx.size
    if K == 0:
        return np.empty(0, np.result_type(dt, d.dtype))
    if is_dual(d):
        return u.L + 1j * (d.imag * entry_tangents(u, kind, name, idx))
    wdt = np.result_type(dt, d.dtype)
    if wdt != dt:  # general complex step: the real-path code in complex arithmetic
        u = unperturbed_pass(None, params, xs, ys, variant, loss, h0, s0, wdt)
        d = d.astype(wdt)
    else:
        d = d.astype(dt)
    out = np.empty(K, wdt)
    if kind == "param":
        out[:] = _param_losses(u, ParamEntries(u, name, idx, d), 0)
    else:
        t0s = idx // H
        for t0 in np.unique(t0s):  # copies grouped by the step their tap sits at
            sel = t0s == t0
            out[sel] = _tap_losses(u, name, int(t0), idx[sel] - t0 * H, d[sel])
    return out


def _validated_request(params, variant, loss, kind, name, flat_idx, deltas, T, H):
    """``(flat_idx as intp, deltas)``, both ``(K,)``; raises ValueError naming the bad argument."""
    if variant not in VARIANTS or loss not in LOSSES:
        raise ValueError(
            f"variant/loss: expected {list(VARIANTS)} / {list(LOSSES)}, got {variant!r} / {loss!r}"
        )
    if kind == "param":
        if name not in params:
            raise ValueError(f"name: {name!r} is not a parameter block; expected one of {sorted(params)}")
        size = np.size(params[name])
    elif kind == "state":
        if name not in ("h", "s"):
            raise ValueError(f"name: expected state 'h' or 's', got {name!r}")
        size = T * H
    else:
        raise ValueError(f"kind: expected 'param' or 'state', got {kind!r}")
    idx = np.asarray(flat_idx)
    d = np.asarray(deltas)
    if idx.ndim != 1 or idx.dtype.kind not in "iu" or d.shape != idx.shape:
        raise ValueError(
            f"flat_idx, deltas: expected integer and numeric arrays of one shape (K,), got "
            f"{idx.dtype} {idx.shape} and {d.dtype} {d.shape}"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise ValueError(f"flat_idx: entries must lie in [0, {size}) for {kind} {name!r}")
    if not np.all(np.isfinite(d)):
        raise ValueError("deltas: contains NaN or inf")
    return idx.astype(np.intp), d


def _param_step(u: Unperturbed, pert: ParamEntries, t0: int):
    """s and h in entry r_k at step t0 of copies equal to the unperturbed pass before t0: only gate gi's
    pre-activation in row r_k moves (scalars, no GEMM). Returns ``(s_r, h_r)``, each ``(K,)``."""
    H, dt = u.H, u.dt
    r, gi = pert.r, pert.gi
    z = u.z_scaled[t0, pert.row] + pert.d_scaled * pert.coef(u, t0)
    gates = u.a[t0][np.arange(4)[:, None] * H + r[None, :]].astype(dt)  # (4, K): g, i, f, o at row r
    if gi == 0:
        gates[gi] = activate(z[None, :].copy(), 1)[0]
    else:
        gates[gi] = activate(np.vstack([np.zeros_like(z), z]), 1)[1]
    s_r = gates[0] * gates[1] + u.s_prev[t0][r] * gates[2]  # s = g*i + s(t-1)*f
    return s_r, h_of(s_r, gates[3], u.variant)


def _param_losses(u: Unperturbed, pert: ParamEntries, t0: int) -> np.ndarray:
    """Losses ``(K,)`` of parameter copies equal to the unperturbed pass before step t0. Copies whose change
    at t0 is exactly zero are run from t0+1 instead (one dense step less)."""
    s_r, h_r = _param_step(u, pert, t0)
    same = (s_r == u.s[t0, pert.r]) & (h_r == u.h[t0, pert.r])
    if same.any() and t0 + 1 < u.T:
        out = np.empty(s_r.size, np.result_type(u.dt, h_r.dtype))
        out[same] = _param_losses(u, pert.subset(same), t0 + 1)
        moved = ~same
        if moved.any():
            out[moved] = _param_losses(u, pert.subset(moved), t0)
        return out
    return _losses_from(u, t0, pert.r, s_r, h_r, pert)


def _tap_losses(u: Unperturbed, name: str, t0: int, r: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Losses ``(K,)`` of copies whose tap ``taps[name][t0, r_k] = d_k``."""
    o = u.a[t0, 3 * u.H + r]
    if name == "s":
        s_r = u.s[t0, r] + d
        h_r = h_of(s_r, o, u.variant)
    else:
        s_r = u.s[t0, r].astype(u.dt)
        h_r = u.h[t0, r] + d
    return _losses_from(u, t0, r, s_r, h_r, None)


def _losses_from(u: Unperturbed, t0: int, r, s_r, h_r, pert: ParamEntries | None) -> np.ndarray:
    """Losses ``(K,)`` of copies equal to the unperturbed pass before step t0 and at t0 except in entry
    ``r_k`` of s and h (``s_r``, ``h_r``, each ``(K,)``); ``pert``: the parameter entries that keep acting at
    every later step (None for taps)."""
    H, T, dt = u.H, u.T, u.dt
    K = r.size
    ar = np.arange(K)
    y = u.ys[t0]  # the loss up to and including step t0
    h_r_unperturbed = u.h[t0, r]
    if u.loss == "seed":
        l_t0 = np.where(r == 0, u.l[t0] - (h_r_unperturbed - y) ** 2 + (h_r - y) ** 2, u.l[t0])
    else:
        l_t0 = u.l[t0] - (h_r_unperturbed - y[r]) ** 2 + (h_r - y[r]) ** 2
    L = u.loss_before[t0] + l_t0
    if t0 + 1 >= T:
        return L
    z, h, s, tmp = scratch(K, H, dt)
    h[:] = u.h[t0][:, None]
    s[:] = u.s[t0][:, None]
    h[r, ar] = h_r
    s[r, ar] = s_r
    recurrence = Recurrence(u, dt)
    for t in range(t0 + 1, T):
        if t == t0 + 1:  # h(t-1) differs in entry r only: a rank-1 update
            np.take(recurrence.w_h_scaled, r, axis=1, out=z, mode="clip")
            z *= h_r - h_r_unperturbed
            z += u.z_scaled[t][:, None]
        else:
            recurrence(K, z, t)
        if pert is not None:
            z[pert.row, ar] += pert.d_scaled * pert.coef(u, t, h)
        activate(z, H)
        cell(z, h, s, tmp, u.variant)  # s = g*i + s(t-1)*f, h = s*o | tanh(s)*o
        L = L + step_loss(h, u.ys[t], u.loss, tmp)
    return L
