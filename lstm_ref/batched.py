"""Batched losses of the reference LSTM: K perturbed copies in one pass, sharing what the copies share.

Two kinds of batch, both returning ``L`` for each copy, shape ``(K,)``:

- :func:`entry_losses`: copy n moves ONE entry: ``params[name].flat[flat_idx[n]] += deltas[n]`` (kind "param"),
  or sets the tap ``taps[name].flat[flat_idx[n]] = deltas[n]`` (kind "state"; taps are ``(T, hidden)``).
- :func:`direction_losses`: copy n moves a whole block along a direction: ``params[name] += deltas[n] *
  directions[n]`` (directions ``(K, *block_shape)``), or sets ``taps[name] = deltas[n] * directions[n]``
  (directions ``(K, T, hidden)``).

Structure exploited (see ``../shared/reference/checkers.md``): the four gate matrices are stacked into one
``W (4H, X+H)``. Perturbing ``W_*[r, c]`` by d only adds ``d * x_c(t)[c]`` to row r of that gate's
pre-activation, so at the first step a copy differs from the unperturbed pass in ONE entry of s and h (computed
per copy as scalars); at the next step the change of h is one entry, a rank-1 update of the pre-activations
(``W_h[:, r] * dh``); from then on the K copies run as one shared-weight GEMM ``(4H, H) @ (H, K)`` with the x
part of the product (``W_x x(t) + b``) computed once for all copies and added inside the GEMM (a ones row). A
tap on a state at step t0 is the same with the copies identical before t0. A parameter copy that does not move
at step 0 at all (a recurrent column while h(-1) = 0, the forget gate while s(-1) = 0: 3/4 of the weights with
the default zero initial state) starts one step later, saving one dense step of T-1.

Layout: one copy per COLUMN (``Z (4H, K)``, states ``(H, K)``), so every gate is a contiguous block of rows and
the cell's elementwise work runs on contiguous memory (2.5x faster than on the column slices of ``(K, 4H)``).

Activations: the rows of W are pre-scaled by -2 (g) and -1 (i, f, o) (exact in binary), so one
``exp`` over all 4H pre-activations gives ``R = 1/(1 + exp(-z'))``: ``sigmoid = R`` and ``tanh(z) = 2 R(2z) - 1``.

Complex step: when every delta is purely imaginary and tiny (``|Im d| <= DUAL_MAX_STEP``), complex arithmetic
through the network equals first-order (dual-number) propagation to rounding: the real part is the unperturbed
pass (the h^2 terms vanish below rounding) and the imaginary part is d times the directional derivative. That
path propagates real tangents (no complex tanh, one real GEMM per step). Any other complex delta runs the same
code as the real path in complex arithmetic (slow, exact semantics).
"""

from __future__ import annotations

import threading

import numpy as np

from .model import BIASES, LOSSES, VARIANTS, WEIGHTS, result_dtype, validate_params

DUAL_MAX_STEP = 1e-12          # largest |Im delta| for the dual-number complex-step path


class _Base:
    """The unperturbed pass and everything the copies reuse. T steps, H hidden, X inputs.

    W ``(4H, X+H)`` stacked gates (g, i, f, o); ``Ws`` ``(4H, H)`` the recurrent part; ``zx`` ``(T, 4H)`` =
    ``W_x x(t) + b``; ``z``, ``a`` ``(T, 4H)`` pre-activations and activations; ``s``, ``h``,
    ``sprev``, ``hprev`` ``(T, H)`` (``*prev[t]`` is the state at t-1); ``l`` ``(T,)`` per-step losses.
    ``sc`` ``(4H,)`` the activation pre-scaling; ``*s`` suffix: scaled by ``sc``.
    """

    def __init__(self, params, xs, ys, variant, loss, h0, s0, dt):
        self.variant, self.loss, self.dt = variant, loss, dt
        self.T, self.X = xs.shape
        self.H = H = params["bg"].shape[0]
        self.xs = np.asarray(xs, dt)
        self.ys = np.asarray(ys, dt)
        X, T = self.X, self.T
        self.sc = np.full(4 * H, -1.0, dt)
        self.sc[:H] = -2.0
        self.Ws = np.empty((4 * H, H), dt)                   # the recurrent part, pre-scaled
        self.zx = np.empty((T, 4 * H), dt)                   # W_x x(t) + b, for every step
        for q, (w, b) in enumerate(zip(WEIGHTS, BIASES)):
            Wq = np.asarray(params[w], dt)
            self.Ws[q * H:(q + 1) * H] = Wq[:, X:]
            self.zx[:, q * H:(q + 1) * H] = self.xs @ Wq[:, :X].T + np.asarray(params[b], dt)
        self.Ws *= self.sc[:, None]
        self.zxs = self.zx * self.sc
        T = self.T
        self.zs = np.empty((T, 4 * H), dt)
        self.a = np.empty((T, 4 * H), dt)
        self.s, self.h = np.empty((T, H), dt), np.empty((T, H), dt)
        self.sprev, self.hprev = np.empty((T, H), dt), np.empty((T, H), dt)
        self.l = np.empty(T, dt)
        hp = np.zeros(H, dt) if h0 is None else np.asarray(h0, dt)
        sp = np.zeros(H, dt) if s0 is None else np.asarray(s0, dt)
        for t in range(T):
            self.hprev[t], self.sprev[t] = hp, sp
            self.zs[t] = self.Ws @ hp + self.zxs[t]
            a = _activate(self.zs[t][:, None].copy(), H)[:, 0]
            self.a[t] = a
            s = a[:H] * a[H:2 * H] + sp * a[2 * H:3 * H]
            h = _h_of(s, a[3 * H:], variant)
            self.s[t], self.h[t] = s, h
            self.l[t] = _step_loss(h[:, None], self.ys[t], loss)[0]
            hp, sp = h, s
        self.L = self.l.sum()
        self.xc = np.concatenate([self.xs, self.hprev], axis=1)        # x_c(t) = [x(t), h(t-1)], (T, X+H)
        self.lcum = np.concatenate([[0.0], np.cumsum(self.l)]).astype(dt)   # lcum[t] = sum of l before t

    # tangent-mode coefficients (dual path), computed on first use (once, whichever thread asks first)
    _tangent_lock = threading.Lock()

    def tangents(self):
        with self._tangent_lock:
            if "wl" not in self.__dict__:
                H, a = self.H, self.a
                # Written without cancellation (1 - a loses all digits when a is near 1, which matters in
                # float32): zs holds -z for i, f, o and -2z for g, see _activate.
                dact = np.empty_like(a)
                with np.errstate(over="ignore"):                       # cosh, exp -> inf: the exact limit 0
                    dact[:, :H] = 1.0 / np.cosh(0.5 * self.zs[:, :H]) ** 2          # tanh'(z) = 1/cosh(z)^2
                    dact[:, H:] = a[:, H:] / (1.0 + np.exp(-self.zs[:, H:]))        # sigmoid' = a * sigmoid(-z)
                wl = np.zeros((self.T, H), self.dt)                    # dl(t)/dh(t)
                if self.loss == "seed":
                    wl[:, 0] = 2.0 * (self.h[:, 0] - self.ys)
                else:
                    wl[:] = 2.0 * (self.h - self.ys)
                self.dact = dact
                self.ts = np.tanh(self.s) if self.variant == "tanh" else None
                # the cell's tangent as multipliers of the pre-activation tangents (see _dual_cell)
                g, i, o = a[:, :H], a[:, H:2 * H], a[:, 3 * H:]
                last = self.s if self.ts is None else self.ts
                self.dcoef = dact * np.concatenate([i, g, self.sprev, last], axis=1)
                self.ds_dh = o if self.ts is None else (1.0 - self.ts ** 2) * o
                self.Wh = self.Ws / self.sc[:, None]                   # exact: sc is -1 or -2
                self.wl = wl
        return self


def _activate(Zs, H):
    """In place: scaled pre-activations ``(4H, K)`` (one copy per column) -> activations ``[g, i, f, o]``."""
    if Zs.dtype.kind == "c":                    # complex: through tanh (exp overflows to inf+nan*j)
        np.multiply(Zs, -0.5, out=Zs)           # z_g = -Zs/2; z_ifo/2 = -Zs/2
        np.tanh(Zs, out=Zs)
        Zs[H:] += 1.0
        Zs[H:] *= 0.5
        return Zs
    with np.errstate(over="ignore"):            # exp(+large) = inf -> R = 0: the exact limit
        np.exp(Zs, out=Zs)
    Zs += 1.0
    np.divide(1.0, Zs, out=Zs)                  # (np.reciprocal is ~2x slower here)
    G = Zs[:H]
    G *= 2.0
    G -= 1.0
    return Zs


class BaseCache:
    """Remembers the last unperturbed pass, for params whose arrays are read-only and own their data (nobody can
    change them behind the cache's back) and are the same objects as last time. Pickles empty (worker processes
    build their own)."""

    def __init__(self):
        self._entry = None
        self._lock = threading.Lock()             # threads asking at once build the pass once

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()

    def get(self, params, build):
        frozen = all(isinstance(v, np.ndarray) and not v.flags.writeable and v.base is None
                     for v in params.values())
        key = tuple((k, id(v)) for k, v in params.items())
        if not frozen:
            return build()
        with self._lock:
            entry = self._entry
            if entry is not None and entry[0] == key and entry[1] is params:
                return entry[2]
            base = build()
            self._entry = (key, params, base)     # holds params: their ids cannot be reused meanwhile
            return base


_WORK = threading.local()


def _buffers(K, H, dt):
    """Reused scratch arrays ``Z (4H, K), hp, sp, tmp (H, K)``: one copy per COLUMN, so each gate is a contiguous
    block of rows for the cell's elementwise work (per thread; fresh large allocations page-fault).

    ``hp`` is the first H rows of a ``(H+1, K)`` array whose last row is 1, for :class:`_Recurrence`."""
    key = (K, H, np.dtype(dt))
    cached = getattr(_WORK, "bufs", None)
    if cached is None or cached[0] != key:
        hpa = np.empty((H + 1, K), dt)
        hpa[H] = 1.0
        cached = (key, (np.empty((4 * H, K), dt), hpa[:H], np.empty((H, K), dt), np.empty((H, K), dt)), hpa)
        _WORK.bufs = cached
    return cached[1]


AUG_MAX_BYTES = 4 * 2**20      # the per-thread copy [W_h, zx(t)] is kept up to this size (then: GEMM, then add)


class _Recurrence:
    """``Z = W_h h(t-1) + (W_x x(t) + b)`` (scaled) for every copy, as ONE GEMM when W_h is small: a last column
    holding ``zx(t)`` times the ones row of ``hp``'s buffer (see :func:`_buffers`) adds the input part inside the
    product (a separate add costs ~10% of a step at hidden 128). The ``(4H, H+1)`` copy is per thread."""

    def __init__(self, base, dt):
        self.base, self.H = base, base.H
        Ws = base.Ws.astype(dt, copy=False)
        self.Ws = Ws
        if Ws.nbytes > AUG_MAX_BYTES:
            self.Wa = None
            return
        cached = getattr(_WORK, "aug", None)
        if cached is None or cached[0] is not base or cached[1].dtype != dt:
            Wa = np.empty((4 * self.H, self.H + 1), dt)
            Wa[:, :-1] = Ws
            cached = (base, Wa)
            _WORK.aug = cached
        self.Wa = cached[1]

    def __call__(self, n, Z, t):
        """``Z[:, :n]`` for the first n copies, whose h(t-1) is in the first n columns of this thread's
        :func:`_buffers` ``hp``."""
        hpa = _WORK.bufs[2]
        if self.Wa is None:
            np.matmul(self.Ws, hpa[:self.H, :n], out=Z[:, :n])
            Z[:, :n] += self.base.zxs[t][:, None]
            return
        self.Wa[:, -1] = self.base.zxs[t]
        np.matmul(self.Wa, hpa[:, :n], out=Z[:, :n])


def _h_of(s, o, variant):
    return s * o if variant == "simple" else np.tanh(s) * o


def _step_loss(h, y, loss, e=None):
    """l for each copy: ``h`` ``(H, K)`` (copies in columns), ``y`` ``(H,)`` (full) or a scalar (seed); ``e``:
    scratch like h."""
    if loss == "seed":
        return (h[0] - y) ** 2
    e = np.subtract(h, np.asarray(y)[:, None], out=e)
    return np.einsum("ij,ij->j", e, e)


def _check_request(params, xs, ys, variant, loss, kind, name, flat_idx, deltas, T, H, X):
    if variant not in VARIANTS or loss not in LOSSES:
        raise ValueError(f"variant/loss: expected {list(VARIANTS)} / {list(LOSSES)}, got {variant!r} / {loss!r}")
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
        raise ValueError(f"flat_idx, deltas: expected integer and numeric arrays of one shape (K,), got "
                         f"{idx.dtype} {idx.shape} and {d.dtype} {d.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise ValueError(f"flat_idx: entries must lie in [0, {size}) for {kind} {name!r}")
    if not np.all(np.isfinite(d)):
        raise ValueError("deltas: contains NaN or inf")
    return idx.astype(np.intp), d


def _prepare(params, xs, h0, s0):
    """Validate the base point; return ``(X, H, xs, dt)``."""
    X, H = validate_params(params)
    xs = np.asarray(xs)
    if xs.ndim != 2 or xs.shape[1] != X:
        raise ValueError(f"xs: expected shape (T, {X}), got {xs.shape}")
    return X, H, xs, result_dtype(*params.values(), xs, h0, s0)


def _base(cache, params, xs, ys, variant, loss, h0, s0, dt=None) -> _Base:
    """The unperturbed pass at ``params`` (validated when built; from ``cache`` when it holds it)."""
    def build():
        X, H, xs_, dt_ = _prepare(params, xs, h0, s0)
        return _Base(params, xs_, ys, variant, loss, h0, s0, dt_ if dt is None else dt)
    return build() if cache is None else cache.get(params, build)


def _is_dual(d) -> bool:
    return d.dtype.kind == "c" and not np.any(d.real) and float(np.max(np.abs(d.imag), initial=0.0)) <= DUAL_MAX_STEP


# ------------------------------------------------------------------------------------------ entry batches


def entry_losses(params, xs, ys, *, variant="simple", loss="full", h0=None, s0=None, kind, name, flat_idx,
                 deltas, cache: BaseCache | None = None) -> np.ndarray:
    """L at K single-entry perturbations (see the module docstring), shape ``(K,)``.

    ``params``: the eight blocks (the base point); ``xs`` ``(T, X)``; ``ys`` ``(T,)`` (seed) or ``(T, H)``
    (full); ``h0``, ``s0`` ``(H,)`` or None. ``flat_idx`` ``(K,)`` ints; ``deltas`` ``(K,)`` real or complex.
    The result is complex when ``deltas`` is.
    """
    base = _base(cache, params, xs, ys, variant, loss, h0, s0)
    X, H, T, dt = base.X, base.H, base.T, base.dt
    idx, d = _check_request(params, xs, ys, variant, loss, kind, name, flat_idx, deltas, T, H, X)
    K = idx.size
    if K == 0:
        return np.empty(0, np.result_type(dt, d.dtype))
    if _is_dual(d):
        return base.L + 1j * (d.imag * _dual_entries(base.tangents(), kind, name, idx))
    wdt = np.result_type(dt, d.dtype)
    if wdt != dt:                                # general complex step: the real-path code in complex arithmetic
        base = _base(None, params, xs, ys, variant, loss, h0, s0, wdt)
        d = d.astype(wdt)
    else:
        d = d.astype(dt)
    out = np.empty(K, wdt)
    if kind == "param":
        out[:] = _real_entries(base, name, 0, idx, d, None)
    else:
        t0s = idx // H
        for t0 in np.unique(t0s):                 # copies grouped by the step their tap sits at
            sel = t0s == t0
            out[sel] = _real_entries(base, name, int(t0), idx[sel] - t0 * H, d[sel], "tap")
    return out


class _Pert:
    """A parameter perturbation that keeps acting at every step: ``Z[col_k, k] += dsc_k * coef_k(t)``."""

    def __init__(self, base, name, idx, d):
        H, X = base.H, base.X
        if name in WEIGHTS:
            gi = WEIGHTS.index(name)
            r, c = idx // (X + H), idx % (X + H)
        else:
            gi = BIASES.index(name)
            r, c = idx, np.full(idx.shape, -1)
        self.gi, self.r, self.c = gi, r, c
        self.col = gi * H + r
        self.dsc = d * base.sc[self.col]
        self.mx, self.mh = (c >= 0) & (c < X), c >= X
        self.cx, self.ch = c[self.mx], c[self.mh] - X
        self.kh = np.flatnonzero(self.mh)

    def coef(self, base, t, hp=None):
        """coef_k(t): x(t)[c] (input column), h_k(t-1)[c - X] (recurrent column) or 1 (bias); ``hp`` ``(H, K)``
        the copies' h(t-1), or None: the unperturbed h(t-1)."""
        out = np.ones(self.c.shape, base.dt if hp is None else hp.dtype)
        out[self.mx] = base.xs[t, self.cx]
        out[self.mh] = base.hprev[t, self.ch] if hp is None else hp[self.ch, self.kh]
        return out


def _param_start(base, pert, t0):
    """s and h in entry r_k at step t0 of copies equal to the unperturbed pass before t0: only gate gi's
    pre-activation in row r_k moves (scalars, no GEMM). Returns ``(s_r, h_r)``, each ``(K,)``."""
    H, dt = base.H, base.dt
    r, gi = pert.r, pert.gi
    z = base.zs[t0, pert.col] + pert.dsc * pert.coef(base, t0)
    gates = base.a[t0][np.arange(4)[:, None] * H + r[None, :]].astype(dt)      # (4, K): g, i, f, o at row r
    gates[gi] = _activate(z[None, :].copy(), 1)[0] if gi == 0 else \
        _activate(np.vstack([np.zeros_like(z), z]), 1)[1]
    s_r = gates[0] * gates[1] + base.sprev[t0][r] * gates[2]           # s = g*i + s(t-1)*f
    return s_r, _h_of(s_r, gates[3], base.variant)


def _real_entries(base, name, t0, r_or_idx, d, tap):
    """Losses ``(K,)`` for copies that first differ at step t0 (0 for parameters), in one entry r of s and h.

    A parameter copy whose step-0 change is exactly zero (a recurrent column while h(-1) = 0, the forget gate
    while s(-1) = 0) equals the unperturbed pass at step 0: it is run from step 1 instead (one dense step less)."""
    H, T, dt, variant = base.H, base.T, base.dt, base.variant
    K = d.size
    ar = np.arange(K)
    if tap is None:
        pert = r_or_idx if isinstance(r_or_idx, _Pert) else _Pert(base, name, r_or_idx, d)
        r = pert.r
        s_r, h_r = _param_start(base, pert, t0)
        same = (s_r == base.s[t0, r]) & (h_r == base.h[t0, r])
        if same.any() and t0 + 1 < T:
            out = np.empty(K, np.result_type(dt, h_r.dtype))
            out[same] = _real_entries(base, name, t0 + 1, _pert_subset(pert, same), d[same], None)
            moved = ~same
            if moved.any():
                out[moved] = _real_entries(base, name, t0, _pert_subset(pert, moved), d[moved], None)
            return out
    else:
        pert, r = None, r_or_idx
        o = base.a[t0, 3 * H + r]
        if name == "s":
            s_r = base.s[t0, r] + d
            h_r = _h_of(s_r, o, variant)
        else:
            s_r = base.s[t0, r].astype(dt)
            h_r = base.h[t0, r] + d
    # loss up to and including step t0
    y = base.ys[t0]
    hb = base.h[t0, r]
    if base.loss == "seed":
        l_t0 = np.where(r == 0, base.l[t0] - (hb - y) ** 2 + (h_r - y) ** 2, base.l[t0])
    else:
        l_t0 = base.l[t0] - (hb - y[r]) ** 2 + (h_r - y[r]) ** 2
    L = base.lcum[t0] + l_t0
    if t0 + 1 >= T:
        return L
    Z, hp, sp, tmp = _buffers(K, H, dt)
    hp[:] = base.h[t0][:, None]
    sp[:] = base.s[t0][:, None]
    hp[r, ar] = h_r
    sp[r, ar] = s_r
    rec = _Recurrence(base, dt)
    for t in range(t0 + 1, T):
        if t == t0 + 1:                           # h differs in entry r only: a rank-1 update
            np.take(rec.Ws, r, axis=1, out=Z, mode="clip")
            Z *= h_r - hb
            Z += base.zs[t][:, None]
        else:
            rec(K, Z, t)
        if pert is not None:
            Z[pert.col, ar] += pert.dsc * pert.coef(base, t, hp)
        _activate(Z, H)
        _cell(Z, hp, sp, tmp, variant)            # s = g*i + s(t-1)*f, h = s*o | tanh(s)*o
        L = L + _step_loss(hp, base.ys[t], base.loss, tmp)
    return L


def _pert_subset(pert, sel):
    """The perturbation of the copies ``sel`` (a boolean mask)."""
    out = object.__new__(_Pert)
    out.gi = pert.gi
    for k in ("r", "c", "col", "dsc", "mx", "mh"):
        setattr(out, k, getattr(pert, k)[sel])
    out.cx = pert.c[sel & pert.mx]
    out.ch = pert.ch[sel[pert.mh]]
    out.kh = np.flatnonzero(out.mh)
    return out


def _dual_entries(base, kind, name, idx):
    """dL/d(entry) for each copy (unit tangent seeds), ``(K,)`` real: the complex step's imaginary part / d."""
    H = base.H
    K = idx.size
    out = np.empty(K, base.dt)
    if kind == "param":
        out[:] = _dual_from(base, 0, *_dual_param_start(base, name, idx))
        return out
    t0s = idx // H
    for t0 in np.unique(t0s):
        sel = t0s == t0
        r = idx[sel] - t0 * H
        k = r.size
        o = base.a[t0, 3 * H + r]
        if name == "s":
            ds_r = np.ones(k, base.dt)
            dh_r = o if base.variant == "simple" else (1.0 - base.ts[t0, r] ** 2) * o
        else:
            ds_r, dh_r = np.zeros(k, base.dt), np.ones(k, base.dt)
        out[sel] = _dual_from(base, int(t0), r, ds_r, dh_r, None)
    return out


def _dual_param_start(base, name, idx):
    H = base.H
    K = idx.size
    pert = _Pert(base, name, idx, np.ones(K, base.dt))
    r, gi = pert.r, pert.gi
    da = base.dact[0, pert.col] * pert.coef(base, 0)
    g, i, f, o = (base.a[0, q * H + r] for q in range(4))
    ds_r = {0: da * i, 1: g * da, 2: base.sprev[0, r] * da, 3: np.zeros(K, base.dt)}[gi]
    do = da if gi == 3 else np.zeros(K, base.dt)
    if base.variant == "simple":
        dh_r = ds_r * o + base.s[0, r] * do
    else:
        ts = base.ts[0, r]
        dh_r = (1.0 - ts ** 2) * o * ds_r + ts * do
    return r, ds_r, dh_r, pert


def _dual_from(base, t0, r, ds_r, dh_r, pert):
    """Tangent propagation from step t0, where copy k's tangent is ``ds_r, dh_r`` in entry ``r_k`` (copies are
    columns, as in the real path)."""
    H, T, dt = base.H, base.T, base.dt
    K = r.size
    ar = np.arange(K)
    dl = base.wl[t0, r] * dh_r
    if t0 + 1 >= T:
        return dl
    dhp = np.zeros((H, K), dt)
    dsp = np.zeros((H, K), dt)
    dhp[r, ar] = dh_r
    dsp[r, ar] = ds_r
    dZ = np.empty((4 * H, K), dt)
    for t in range(t0 + 1, T):
        if t == t0 + 1:
            np.take(base.Wh, r, axis=1, out=dZ, mode="clip")
            dZ *= dh_r
        else:
            np.matmul(base.Wh, dhp, out=dZ)
        if pert is not None:                      # d(coef * delta)/d delta at the unperturbed point
            dZ[pert.col, ar] += pert.coef(base, t)
        _dual_cell(base, t, dZ, dsp, dhp)
        dl += base.wl[t] @ dhp
    return dl


def _dual_cell(base, t, dZ, dsp, dhp):
    """In place: pre-activation tangents ``dZ (4H, K)`` and ``dsp`` ``(H, K)`` (tangent of s(t-1)) -> ``dsp`` =
    ds(t), ``dhp`` = dh(t). With the gate tangents dA = act'(z) dZ:
    ds = dg*i + g*di + ds(t-1)*f + s(t-1)*df; dh = ds*o + s*do (tanh variant: tanh'(s)*o*ds + tanh(s)*do),
    the multipliers act'(z) * (i, g, s(t-1), s | tanh(s)) taken together in ``base.dcoef``."""
    H = base.H
    dZ *= base.dcoef[t][:, None]
    dsp *= base.a[t, 2 * H:3 * H, None]           # ds(t-1)*f
    dsp += dZ[:H]
    dsp += dZ[H:2 * H]
    dsp += dZ[2 * H:3 * H]
    np.multiply(dsp, base.ds_dh[t][:, None], out=dhp)
    dhp += dZ[3 * H:]


# -------------------------------------------------------------------------------------- direction batches


def direction_losses(params, xs, ys, *, variant="simple", loss="full", h0=None, s0=None, kind, name,
                     directions, deltas, cache: BaseCache | None = None) -> np.ndarray:
    """L with a whole block moved along a direction, for K copies, shape ``(K,)``.

    kind "param": ``params[name] + deltas[n] * directions[n]``, directions ``(K, *params[name].shape)``;
    kind "state": the tap ``taps[name] = deltas[n] * directions[n]``, directions ``(K, T, H)``.
    The one-request case of :func:`direction_losses_many`.
    """
    return direction_losses_many(params, xs, ys, variant=variant, loss=loss, h0=h0, s0=s0,
                                 requests=[(kind, name, directions, deltas)], cache=cache)[0]


def direction_losses_many(params, xs, ys, *, variant="simple", loss="full", h0=None, s0=None, requests,
                          cache: BaseCache | None = None) -> list[np.ndarray]:
    """``[direction_losses(..., kind=k, name=n, directions=V, deltas=d) for k, n, V, d in requests]``, with the
    copies of all requests in ONE batch (one GEMM per step for all blocks and states of a screen).

    ``deltas`` may also be ``(S, K)`` (a stencil: S steps along each of the K directions): the result is then
    ``(S, K)``, and each direction is read once (the products ``V_k [x(t), h(t-1)]`` are shared by its S copies).

    A weight block's directions may be rank-1 factors ``(A (K, H), B (K, X+H))``, ``V_k = outer(A_k, B_k)``.

    Parameter copies: at step 0 only the moved gate's pre-activation differs from the unperturbed pass (no GEMM);
    a weight direction's term ``V_k [x(t), h(t-1)]`` is computed for all steps at the unperturbed h(t-1) (K
    small GEMMs, or ``A_k (B_k . x_c(t))`` for factors), plus ``V_k[:, X:] (h_k(t-1) - h(t-1))`` per copy. Tap
    copies are ordered by the first step their tap touches and join the batch at that step (they equal the
    unperturbed pass before it).
    Complex step: when every delta is a tiny imaginary step, tangents (see the module docstring).
    """
    base = _base(cache, params, xs, ys, variant, loss, h0, s0)
    reqs = [_direction_request(base, params, *req) for req in requests]
    out = [None] * len(reqs)
    live = [n for n, (_, _, _, d) in enumerate(reqs) if d.size]
    for n, (_, _, _, d) in enumerate(reqs):
        if not d.size:
            out[n] = np.empty(0, np.result_type(base.dt, d.dtype))
    if not live:
        return out
    if _is_dual(np.concatenate([reqs[n][3].reshape(-1) for n in live])):  # one tangent per direction
        batch = _Batch(base, [(k, nm, V, d[:1]) for k, nm, V, d in (reqs[n] for n in live)], dual=True)
        dl = _dual_batch(base.tangents(), batch)
        for n, part in zip(live, batch.split(dl)):
            d = reqs[n][3]
            out[n] = base.L + 1j * (d.imag * part)
        return _shaped(out, requests)
    wdt = np.result_type(base.dt, *[reqs[n][3].dtype for n in live],
                         *[f.dtype for n in live for f in _factors(reqs[n][2])])
    if wdt != base.dt:                            # general complex step: the real-path code in complex arithmetic
        base = _base(None, params, xs, ys, variant, loss, h0, s0, wdt)
    batch = _Batch(base, [(k, nm, _cast(V, wdt), d.astype(wdt)) for k, nm, V, d in (reqs[n] for n in live)],
                   dual=False)
    for n, part in zip(live, batch.split(_real_batch(base, batch))):     # (S*K,) -> (S, K) in _shaped
        out[n] = part
    return _shaped(out, requests)


def _factors(V):
    return V if isinstance(V, tuple) else (V,)


def _cast(V, dt):
    return tuple(f.astype(dt, copy=False) for f in V) if isinstance(V, tuple) else V.astype(dt, copy=False)


def _shaped(out, requests):
    """Each result in the shape of its request's deltas: ``(K,)`` or ``(S, K)``."""
    return [o.reshape(np.shape(req[3])) for o, req in zip(out, requests)]


def _direction_request(base, params, kind, name, directions, deltas):
    """Validate one request; returns ``(kind, name, V, d)`` with ``d`` ``(S, K)`` and ``V`` an array or, for a
    weight block, rank-1 factors ``(A (K, H), B (K, X+H))``: ``V_k = outer(A_k, B_k)``."""
    H, T = base.H, base.T
    d = np.asarray(deltas)
    if isinstance(directions, tuple) and kind == "param" and name in WEIGHTS:
        A, B = (np.asarray(f) for f in directions)
        K = d.shape[-1] if d.ndim in (1, 2) else -1
        if (d.ndim not in (1, 2) or A.shape != (K, H) or B.shape != (K, base.X + H) or not _all_finite(d)
                or not _all_finite(A) or not _all_finite(B)):
            raise ValueError(f"directions, deltas: expected finite rank-1 factors of shapes (K, {H}), "
                             f"(K, {base.X + H}) and deltas (K,) or (S, K), got {A.shape}, {B.shape} and {d.shape}")
        return kind, name, (A, B), d.reshape(-1, K)
    V = np.asarray(directions)
    if kind == "param":
        if name not in params:
            raise ValueError(f"name: {name!r} is not a parameter block; expected one of {sorted(params)}")
        shape = np.shape(params[name])
    elif kind == "state" and name in ("h", "s"):
        shape = (T, H)
    else:
        raise ValueError(f"kind, name: expected ('param', block) or ('state', 'h'|'s'), got {kind!r}, {name!r}")
    if d.ndim not in (1, 2) or V.shape != (d.shape[-1], *shape) or not _all_finite(d) or not _all_finite(V):
        raise ValueError(f"directions, deltas: expected finite arrays of shapes (K, {shape}) and (K,) or (S, K), "
                         f"got {V.shape} and {d.shape}")
    return kind, name, V, d.reshape(-1, d.shape[-1])


class _Batch:
    """The copies of several direction requests as the columns of one batch: parameter requests first (they move
    from step 0), then the tap copies of all state requests sorted by the first step they touch (T: none).

    ``first`` ``(N,)``: first step of each column; ``joined[t]``: columns running at step t are the first
    ``joined[t]``; ``params``: per parameter request ``(gi, gate rows, columns, dsc, U, rec, Vt)``: the scaled
    steps ``dsc`` ``(1, S*K)``, ``U[t]`` ``(H, S*K)`` = ``V_k [x(t), h(t-1)]`` at the unperturbed h (weights),
    ``rec(dh)`` = ``V_k[:, X:] dh_k`` (weights), ``Vt`` ``(H, S*K)`` (biases); ``inj`` (tangents only): per gate,
    its column range and injections ``(T, H, n)``; ``taps`` ``(Ntap, T, H)`` tap values (d_k V_k, or V_k for
    tangents) in column order, ``is_s`` ``(Ntap,)``.
    """

    def __init__(self, base, reqs, *, dual: bool):
        H, T, X, dt = base.H, base.T, base.X, base.dt
        self.sizes = [d.size for _, _, _, d in reqs]      # d: (S, K), copies s-major
        params = [n for n, r in enumerate(reqs) if r[0] == "param"]
        params.sort(key=lambda n: _gate_slice(base, reqs[n][1])[0])      # one column range per gate
        order = params + [n for n, r in enumerate(reqs) if r[0] != "param"]
        self.params = []
        col = 0
        starts = {}
        for n in order:
            kind, name, V, d = reqs[n]
            starts[n] = col
            if kind != "param":
                continue
            gi, rows = _gate_slice(base, name)
            S = d.shape[0]
            cols = slice(col, col + d.size)
            dsc = None if dual else (d * base.sc[rows.start]).reshape(1, -1)    # pre-scaled like the gate's rows
            if isinstance(V, tuple):              # rank-1: V_k x = A_k (B_k . x)
                A, B = V
                U = A.T[None, :, :] * (B @ base.xc.T.astype(dt, copy=False)).T[:, None, :]    # (T, H, K)
                self.params.append((gi, rows, cols, dsc, np.tile(U, (1, 1, S)) if S > 1 else U,
                                    None if dual else _RankOneRecurrent(A, B[:, X:], S), None))
            elif name in WEIGHTS:                 # U[t] (H, S*K): column (s, k) is V_k [x(t), h(t-1)], unperturbed h
                U = np.ascontiguousarray(_xc_products(base, V, dt).transpose(0, 2, 1))
                self.params.append((gi, rows, cols, dsc, np.tile(U, (1, 1, S)) if S > 1 else U,
                                    None if dual else _DenseRecurrent(V[:, :, X:]), None))
            else:
                self.params.append((gi, rows, cols, dsc, None, None, np.tile(V.T, (1, S)) if S > 1 else V.T))
            col += d.size
        self.np = col
        if dual:                                  # per gate: its columns and their injections U[t] (T, H, n)
            self.inj = []
            for gi, rows, cols, dsc, U, Vh, Vt in self.params:
                Ut = U if U is not None else np.broadcast_to(Vt, (T, *Vt.shape))
                if self.inj and self.inj[-1][0] == rows.start:
                    r0, c0, parts = self.inj[-1]
                    parts.append(Ut)
                else:
                    self.inj.append((rows.start, cols.start, [Ut]))
            self.inj = [(slice(r0, r0 + H), slice(c0, c0 + sum(u.shape[2] for u in parts)),
                         np.concatenate(parts, axis=2)) for r0, c0, parts in self.inj]
        tap_reqs = [n for n in order if reqs[n][0] != "param"]
        if tap_reqs:
            taps = np.concatenate([reqs[n][2] if dual else
                                   (reqs[n][3][:, :, None, None] * reqs[n][2]).reshape(-1, T, H)
                                   for n in tap_reqs]).astype(dt, copy=False)
            is_s = np.concatenate([np.full(reqs[n][3].size, reqs[n][1] == "s") for n in tap_reqs])
            tfirst = _first_steps(taps)
            perm = np.argsort(tfirst, kind="stable")
            self.taps, self.is_s, tfirst = taps[perm], is_s[perm], tfirst[perm]
        else:
            perm = np.empty(0, np.intp)
            self.taps, self.is_s, tfirst = np.empty((0, T, H), dt), np.empty(0, bool), np.empty(0, np.intp)
        self.first = np.concatenate([np.zeros(self.np, np.intp), tfirst])
        self.joined = np.searchsorted(self.first, np.arange(T), side="right")
        self.N = self.first.size
        # position of request n's copy k in the batch
        self.where = {}
        tap_pos = np.empty(perm.size, np.intp)
        tap_pos[perm] = np.arange(perm.size) + self.np
        off = 0
        for n in order:
            if reqs[n][0] == "param":
                self.where[n] = np.arange(starts[n], starts[n] + self.sizes[n])
            else:
                self.where[n] = tap_pos[off:off + self.sizes[n]]
                off += self.sizes[n]
        self.n_reqs = len(reqs)

    def split(self, values):
        """Per request, its copies' values from the batch's ``(N,)`` array."""
        return [values[self.where[n]] for n in range(self.n_reqs)]

    def tap_rows(self, t, n1):
        """The taps at step t of the running tap columns, ``(H, m)`` for s and for h (None when there are none)."""
        m = n1 - self.np
        if m <= 0:
            return None, None
        v = self.taps[:m, t].T
        s = self.is_s[:m]
        return (v * s if s.any() else None), (v * ~s if not s.all() else None)


class _DenseRecurrent:
    """``dh -> V_k[:, X:] dh_k`` for every column (s, k) of ``dh`` ``(H, S*K)``; ``Vh`` ``(K, H, H)``."""

    def __init__(self, Vh):
        self.Vh = Vh

    def __call__(self, dh):
        K = self.Vh.shape[0]                      # (S matvec stacks; a contiguous right operand: BLAS)
        return np.concatenate([np.matmul(self.Vh, np.ascontiguousarray(dh[:, j:j + K].T)[:, :, None])[:, :, 0].T
                               for j in range(0, dh.shape[1], K)], axis=1)


class _RankOneRecurrent:
    """The same for rank-1 directions ``V_k = outer(A_k, B_k)``: ``A_k (B_k[X:] . dh_k)``."""

    def __init__(self, A, Bh, S):
        self.At = np.tile(A.T, (1, S))            # (H, S*K)
        self.Bht = np.tile(Bh.T, (1, S))          # (H, S*K)

    def __call__(self, dh):
        return self.At * np.einsum("hj,hj->j", self.Bht, dh)


def _real_batch(base, b: _Batch):
    """Losses ``(N,)`` of the batch's copies (real or general complex arithmetic)."""
    H, T, dt = base.H, base.T, base.dt
    N, P = b.N, b.np
    L = np.where(b.first >= T, base.L, base.lcum[np.minimum(b.first, T)]).astype(dt)
    Z, hp, sp, tmp = _buffers(N, H, dt)
    rec = _Recurrence(base, dt)
    n0 = 0                                        # columns running before step t
    for t in range(T):
        n1 = int(b.joined[t])
        if n1 == 0:
            continue
        if t == 0 and P:                          # parameter copies start from h(-1), s(-1): only gate gi moves
            Z[:, :P] = base.a[0][:, None]
            sp[:, :P] = base.sprev[0][:, None]
            for gi, rows, cols, dsc, U, Vh, Vt in b.params:
                blk = Z[rows, cols]
                np.multiply(Vt if U is None else U[0], dsc, out=blk)
                blk += base.zs[0, rows][:, None]
                _activate_gate(blk, gi == 0)
            n0 = P
        elif n0:                                  # a genuine step for every running copy
            rec(n0, Z, t)
            for gi, rows, cols, dsc, U, Vh, Vt in b.params:
                if U is None:
                    Z[rows, cols] += Vt * dsc
                else:                             # V_k [x(t), h_k(t-1)] = U[t, k] + V_k[:, X:] (h_k(t-1) - h(t-1))
                    corr = Vh(np.subtract(hp[:, cols], base.hprev[t][:, None], out=tmp[:, cols]))
                    corr += U[t]
                    corr *= dsc
                    Z[rows, cols] += corr
            _activate(Z[:, :n0], H)
        if n1 > n0:                               # tap copies joining at t: unperturbed until their tap
            Z[:, n0:n1] = base.a[t][:, None]
            sp[:, n0:n1] = base.sprev[t][:, None]
        s_tap, h_tap = b.tap_rows(t, n1)
        if s_tap is not None:                     # the tap on s(t) enters before h(t) reads it
            s_tap = np.concatenate([np.zeros((H, P), dt), s_tap], axis=1)
        _cell(Z[:, :n1], hp[:, :n1], sp[:, :n1], tmp[:, :n1], base.variant, s_tap=s_tap)
        if h_tap is not None:
            hp[:, P:n1] += h_tap
        L[:n1] += _step_loss(hp[:, :n1], base.ys[t], base.loss, tmp[:, :n1])
        n0 = n1
    return L


def _dual_batch(base, b: _Batch):
    """Directional derivatives ``(N,)`` of L for the batch's copies (unit seeds), by tangent propagation."""
    H, T, dt = base.H, base.T, base.dt
    N, P = b.N, b.np
    dZ, dhp, dsp, _ = _buffers(N, H, dt)          # reused scratch: a copy's columns are zeroed when it joins
    dl = np.zeros(N, dt)
    n0 = 0
    for t in range(T):
        n1 = int(b.joined[t])
        if n1 == 0:
            continue
        if n0:
            np.matmul(base.Wh, dhp[:, :n0], out=dZ[:, :n0])
        if n1 > n0:                               # copies joining at t: no tangent yet (z, s(t-1))
            dZ[:, n0:n1] = 0.0
            dsp[:, n0:n1] = 0.0
        for rows, cols, U in b.inj:               # exact tangent: x_c at the unperturbed point
            dZ[rows, cols] += U[t]
        _dual_cell(base, t, dZ[:, :n1], dsp[:, :n1], dhp[:, :n1])
        s_tap, h_tap = b.tap_rows(t, n1)
        if s_tap is not None:                     # the tap on s(t) enters before h(t) reads it
            dsp[:, P:n1] += s_tap
            dhp[:, P:n1] += s_tap * base.ds_dh[t][:, None]
        if h_tap is not None:
            dhp[:, P:n1] += h_tap
        dl[:n1] += base.wl[t] @ dhp[:, :n1]
        n0 = n1
    return dl


def _all_finite(a: np.ndarray) -> bool:
    """``np.all(np.isfinite(a))``, fast for the usual all-finite array: a finite sum of squares has no inf or NaN
    term (an overflowing one falls back to the entry-wise test)."""
    if a.size < 4096 or a.dtype.kind not in "fc":           # small: the plain test is cheaper
        return bool(np.isfinite(a).all())
    flat = np.ascontiguousarray(a).reshape(-1)
    if flat.dtype.kind == "c":
        flat = flat.view(flat.real.dtype)
    with np.errstate(all="ignore"):
        if np.isfinite(np.dot(flat, flat)):
            return True
    return bool(np.all(np.isfinite(flat)))


def _first_steps(V: np.ndarray) -> np.ndarray:
    """For tap directions ``(K, T, ...)``: the first step each copy touches (T when it touches none)."""
    K, T = V.shape[0], V.shape[1]
    touched = np.any(V.reshape(K, T, -1) != 0, axis=2)
    return np.where(touched.any(axis=1), touched.argmax(axis=1), T)


def _gate_slice(base, name):
    H = base.H
    gi = (WEIGHTS if name in WEIGHTS else BIASES).index(name)
    return gi, slice(gi * H, (gi + 1) * H)


def _xc_products(base, V, dt):
    """``U[t, k] = V_k [x(t), h(t-1)]`` with the unperturbed h(t-1): ``(T, K, H)``, one GEMM for all steps."""
    xc = base.xc if dt == base.dt else base.xc.astype(dt)
    return np.moveaxis(np.matmul(V, xc.T), 2, 0)       # K GEMMs (H, X+H) @ (X+H, T): 3x faster than one skinny


def _activate_gate(Zs, g: bool):
    """In place: one gate's scaled pre-activations -> its activation (tanh for g, else sigmoid)."""
    if Zs.dtype.kind == "c":
        np.multiply(Zs, -0.5, out=Zs)
        np.tanh(Zs, out=Zs)
        if not g:
            Zs += 1.0
            Zs *= 0.5
        return Zs
    with np.errstate(over="ignore"):
        np.exp(Zs, out=Zs)
    Zs += 1.0
    np.divide(1.0, Zs, out=Zs)                  # (np.reciprocal is ~2x slower here)
    if g:
        Zs *= 2.0
        Zs -= 1.0
    return Zs


def _cell(Z, hp, sp, tmp, variant, s_tap=None):
    """In place, from activations ``Z (4H, K)`` and s(t-1) in ``sp`` ``(H, K)``: ``sp`` = s(t) (+ ``s_tap``),
    ``hp`` = h(t)."""
    H = hp.shape[0]
    G, I, F, O = Z[:H], Z[H:2 * H], Z[2 * H:3 * H], Z[3 * H:]
    sp *= F                                       # s = g*i + s(t-1)*f
    G *= I
    sp += G
    if s_tap is not None:                         # the tap on s(t) enters before h(t) reads it
        sp += s_tap
    if variant == "simple":
        np.multiply(sp, O, out=hp)                # h = s*o
    else:
        np.tanh(sp, out=tmp)
        np.multiply(tmp, O, out=hp)               # h = tanh(s)*o
