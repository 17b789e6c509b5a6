"""Direction perturbations, the screen's batch: L for copies moving a whole block (or tap) along a direction.

Copy k of a request: ``params[name] + d[k] * V_k`` (kind "param", ``V`` ``(K, *block_shape)``, or for a weight
block rank-1 factors ``(A (K, H), B (K, X+H))``, ``V_k = outer(A_k, B_k)``), or the tap
``taps[name] = d[k] * V_k`` (kind "state", ``V`` ``(K, T, H)``). ``d`` ``(K,)`` or ``(S, K)`` (a stencil: S
steps along each of the K directions); the result has the shape of ``d``. :func:`direction_losses_many` runs
the copies of all requests as the columns of ONE batch (:mod:`.direction_batch`): one shared-weight GEMM per
step for every block and state of a screen.

Real deltas run in real arithmetic; tiny imaginary deltas take the tangent path (:mod:`.tangents`); any other
complex delta runs the real-path code in complex arithmetic (slow, exact semantics).
"""

from __future__ import annotations

import numpy as np

from ..model import WEIGHTS
from .direction_batch import DirectionBatch
from .kernels import Recurrence, activate, activate_gate, cell, scratch, step_loss
from .tangents import direction_tangents, is_dual
from .unperturbed import Unperturbed, UnperturbedCache, unperturbed_pass


def direction_losses(
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
    directions,
    deltas,
    cache: UnperturbedCache | None = None,
) -> np.ndarray:
    """L with a whole block moved along a direction, for K copies, shape ``(K,)`` (or ``(S, K)``).

    kind "param": ``params[name] + deltas[n] * directions[n]``, directions ``(K, *params[name].shape)``;
    kind "state": the tap ``taps[name] = deltas[n] * directions[n]``, directions ``(K, T, H)``.
    The one-request case of :func:`direction_losses_many`.
    """
    return direction_losses_many(
        params,
        xs,
        ys,
        variant=variant,
        loss=loss,
        h0=h0,
        s0=s0,
        requests=[(kind, name, directions, deltas)],
        cache=cache,
    )[0]


def direction_losses_many(
    params,
    xs,
    ys,
    *,
    variant="simple",
    loss="full",
    h0=None,
    s0=None,
    requests,
    cache: UnperturbedCache | None = None,
) -> list[np.ndarray]:
    """``[direction_losses(..., kind=k, name=n, directions=V, deltas=d) for k, n, V, d in requests]``, with
    the copies of all requests in ONE batch (one GEMM per step for all blocks and states of a screen).

    ``params``: the eight blocks (the base point); ``xs`` ``(T, X)``; ``ys`` ``(T,)`` (seed) or ``(T, H)``
    (full); ``h0``, ``s0`` ``(H,)`` or None. ``deltas`` ``(K,)`` or ``(S, K)`` (a stencil: the result is then
    ``(S, K)``, and each direction is read once: the products ``V_k [x(t), h(t-1)]`` are shared by its S
    copies). A weight block's directions may be rank-1 factors ``(A (K, H), B (K, X+H))``,
    ``V_k = outer(A_k, B_k)``. Raises ValueError naming the bad request part. ``cache``: keeps the unperturbed
    pass between calls.

    Parameter copies: at step 0 only the moved gate's pre-activation differs from the unperturbed pass (no
    GEMM); a weight direction's term ``V_k [x(t), h(t-1)]`` is computed for all steps at the unperturbed
    h(t-1) (K small GEMMs, or ``A_k (B_k . x_c(t))`` for factors), plus ``V_k[:, X:] (h_k(t-1) - h(t-1))`` per
    copy. Tap copies are ordered by the first step their tap touches and join the batch at that step (they
    equal the unperturbed pass before it). Complex step: when every delta is a tiny imaginary step, tangents.
    """
    u = unperturbed_pass(cache, params, xs, ys, variant, loss, h0, s0)
    reqs = [_validated_request(u, params, *req) for req in requests]
    out = [None] * len(reqs)
    live = [n for n, (_, _, _, d) in enumerate(reqs) if d.size]
    for n, (_, _, _, d) in enumerate(reqs):
        if not d.size:
            out[n] = np.empty(0, np.result_type(u.dt, d.dtype))
    if not live:
        return _shaped(out, requests)
    if is_dual(np.concatenate([reqs[n][3].reshape(-1) for n in live])):  # one tangent per direction
        batch = DirectionBatch(
            u, [(k, nm, V, d[:1]) for k, nm, V, d in (reqs[n] for n in live)], tangent=True
        )
        derivatives = direction_tangents(u.tangents(), batch)
        for n, part in zip(live, batch.split(derivatives), strict=True):
            out[n] = u.L + 1j * (reqs[n][3].imag * part)
        return _shaped(out, requests)
    wdt = np.result_type(
        u.dt, *[reqs[n][3].dtype for n in live], *[f.dtype for n in live for f in _factors(reqs[n][2])]
    )
    if wdt != u.dt:  # general complex step: the real-path code in complex arithmetic
        u = unperturbed_pass(None, params, xs, ys, variant, loss, h0, s0, wdt)
    cast = [(k, nm, _cast(V, wdt), d.astype(wdt)) for k, nm, V, d in (reqs[n] for n in live)]
    batch = DirectionBatch(u, cast, tangent=False)
    for n, part in zip(live, batch.split(_batch_losses(u, batch)), strict=True):  # (S*K,) -> (S, K): _shaped
        out[n] = part
    return _shaped(out, requests)


def _factors(V):
    return V if isinstance(V, tuple) else (V,)


def _cast(V, dt):
    return tuple(f.astype(dt, copy=False) for f in V) if isinstance(V, tuple) else V.astype(dt, copy=False)


def _shaped(out, requests):
    """Each result in the shape of its request's deltas: ``(K,)`` or ``(S, K)``."""
    return [o.reshape(np.shape(req[3])) for o, req in zip(out, requests, strict=True)]


def _validated_request(u: Unperturbed, params, kind, name, directions, deltas):
    """Validate one request; returns ``(kind, name, V, d)`` with ``d`` ``(S, K)`` and ``V`` an array or, for a
    weight block, rank-1 factors ``(A (K, H), B (K, X+H))``. Raises ValueError naming the bad part."""
    H, T = u.H, u.T
    d = np.asarray(deltas)
    if isinstance(directions, tuple) and kind == "param" and name in WEIGHTS:
        A, B = (np.asarray(f) for f in directions)
        K = d.shape[-1] if d.ndim in (1, 2) else -1
        if (
            d.ndim not in (1, 2)
            or A.shape != (K, H)
            or B.shape != (K, u.X + H)
            or not _all_finite(d)
            or not _all_finite(A)
            or not _all_finite(B)
        ):
            raise ValueError(
                f"directions, deltas: expected finite rank-1 factors of shapes (K, {H}), "
                f"(K, {u.X + H}) and deltas (K,) or (S, K), got {A.shape}, {B.shape} and {d.shape}"
            )
        return kind, name, (A, B), _as_stencil(d)
    V = np.asarray(directions)
    if kind == "param":
        if name not in params:
            raise ValueError(f"name: {name!r} is not a parameter block; expected one of {sorted(params)}")
        shape = np.shape(params[name])
    elif kind == "state" and name in ("h", "s"):
        shape = (T, H)
    else:
        raise ValueError(
            f"kind, name: expected ('param', block) or ('state', 'h'|'s'), got {kind!r}, {name!r}"
        )
    if d.ndim not in (1, 2) or V.shape != (d.shape[-1], *shape) or not _all_finite(d) or not _all_finite(V):
        raise ValueError(
            f"directions, deltas: expected finite arrays of shapes (K, {shape}) and (K,) or (S, K), "
            f"got {V.shape} and {d.shape}"
        )
    return kind, name, V, _as_stencil(d)


def _as_stencil(d: np.ndarray) -> np.ndarray:
    """Deltas ``(K,)`` or ``(S, K)`` as ``(S, K)`` (``(1, K)`` for ``(K,)``; K may be 0)."""
    return d if d.ndim == 2 else d[None, :]


def _all_finite(a: np.ndarray) -> bool:
    """``np.all(np.isfinite(a))``, fast for the usual all-finite array: a finite sum of squares has no inf or
    NaN term (an overflowing one falls back to the entry-wise test)."""
    if a.size < 4096 or a.dtype.kind not in "fc":  # small: the plain test is cheaper
        return bool(np.isfinite(a).all())
    flat = np.ascontiguousarray(a).reshape(-1)
    if flat.dtype.kind == "c":
        flat = flat.view(flat.real.dtype)
    with np.errstate(all="ignore"):
        if np.isfinite(np.dot(flat, flat)):
            return True
    return bool(np.all(np.isfinite(flat)))


def _start_param_columns(u: Unperturbed, batch: DirectionBatch, z, s) -> None:
    """Step 0 of the parameter columns, which start from h(-1), s(-1): only their gate moves (no GEMM). Leaves
    the activations in ``z[:, :P]`` and s(-1) in ``s[:, :P]``."""
    P = batch.n_param
    z[:, :P] = u.a[0][:, None]
    s[:, :P] = u.s_prev[0][:, None]
    for gi, rows, cols, d_scaled, inputs, _, bias_dir in batch.param_columns:
        block = z[rows, cols]
        np.multiply(bias_dir if inputs is None else inputs[0], d_scaled, out=block)
        block += u.z_scaled[0, rows][:, None]
        activate_gate(block, gi == 0)


def _step_running_columns(
    u: Unperturbed, batch: DirectionBatch, recurrence, t: int, n0: int, z, h, tmp
) -> None:
    """Step t > 0 of the first n0 columns (all running before t): their pre-activations from their h(t-1) plus
    each parameter column's own term, activated, in ``z[:, :n0]``."""
    recurrence(n0, z, t)
    for _, rows, cols, d_scaled, inputs, recurrent, bias_dir in batch.param_columns:
        if inputs is None:
            z[rows, cols] += bias_dir * d_scaled
        else:  # V_k [x(t), h_k(t-1)] = inputs[t, k] + V_k[:, X:] (h_k(t-1) - h(t-1))
            corr = recurrent(np.subtract(h[:, cols], u.h_prev[t][:, None], out=tmp[:, cols]))
            corr += inputs[t]
            corr *= d_scaled
            z[rows, cols] += corr
    activate(z[:, :n0], u.H)


def _batch_losses(u: Unperturbed, batch: DirectionBatch) -> np.ndarray:
    """Losses ``(N,)`` of the batch's columns (real or general complex arithmetic)."""
    H, T, dt = u.H, u.T, u.dt
    P = batch.n_param
    first = batch.first_step
    L = np.where(first >= T, u.L, u.loss_before[np.minimum(first, T)]).astype(dt)
    z, h, s, tmp = scratch(batch.n_copies, H, dt)
    recurrence = Recurrence(u, dt)
    n0 = 0  # columns running before step t
    for t in range(T):
        n1 = int(batch.running[t])
        if n1 == 0:
            continue
        if t == 0 and P:
            _start_param_columns(u, batch, z, s)
            n0 = P
        elif n0:  # a genuine step for every running column
            _step_running_columns(u, batch, recurrence, t, n0, z, h, tmp)
        if n1 > n0:  # tap columns joining at t: unperturbed until their tap
            z[:, n0:n1] = u.a[t][:, None]
            s[:, n0:n1] = u.s_prev[t][:, None]
        s_tap, h_tap = batch.tap_rows(t, n1)
        if s_tap is not None:  # the tap on s(t) enters before h(t) reads it
            s_tap = np.concatenate([np.zeros((H, P), dt), s_tap], axis=1)
        cell(z[:, :n1], h[:, :n1], s[:, :n1], tmp[:, :n1], u.variant, s_tap=s_tap)
        if h_tap is not None:
            h[:, P:n1] += h_tap
        L[:n1] += step_loss(h[:, :n1], u.ys[t], u.loss, tmp[:, :n1])
        n0 = n1
    return L
