"""The "Simple LSTM" write-up's model: forward pass and analytic backpropagation through time.

Equations (see ``../shared/reference/simple-lstm.md``), one step t::

    x_c(t) = [x(t), h(t-1)]                      (x_dim + hidden,)
    g(t) = tanh   (W_g x_c(t) + b_g)              W_* : (hidden, x_dim + hidden), b_* : (hidden,)
    i(t) = sigmoid(W_i x_c(t) + b_i)
    f(t) = sigmoid(W_f x_c(t) + b_f)
    o(t) = sigmoid(W_o x_c(t) + b_o)
    s(t) = g(t)*i(t) + s(t-1)*f(t)
    h(t) = s(t)*o(t)            variant "simple" (the write-up's)
    h(t) = tanh(s(t))*o(t)      variant "tanh"

Losses: l(t) is step t's own loss term (``loss="seed"``: (h(t)[0] - y(t))^2; ``"full"``: ||h(t) - y(t)||^2);
L(t) = sum_{k>=t} l(k) is the loss from step t on, and L = L(0) the total loss. Notation used throughout:

- dl(t)/dh(t): the gradient of step t's own term only (:func:`step_loss_grads`).
- dL(t)/dh(t): the total derivative of L(t) with respect to h(t), through l(t) and through all later steps
  (h(t) feeds x_c(t+1)): dL(t)/dh(t) = dl(t)/dh(t) + dL(t+1)/dh(t). The earlier terms l(k < t) do not depend
  on h(t), so it equals dL/dh(t): the gradient the checker compares for state h at step t.
- dL(t)/ds(t): the same for s(t), which reaches the loss through h(t) and through s(t+1):
  dL(t)/ds(t) = dh(t)/ds(t) * dL(t)/dh(t) + dL(t+1)/ds(t), elementwise, with the partial dh(t)/ds(t) = o(t)
  (variant "tanh": tanh'(s(t)) o(t)).
- dL(t+1)/dh(t), dL(t+1)/ds(t): what step t+1 sends back to h(t) and s(t) (zero after the last step).
- dL(t)/dg(t), dL(t)/do(t), dL(t)/dpre_*(t), ...: total derivatives of L(t) with respect to step t's
  intermediates; pre_*(t) = W_* x_c(t) + b_* is gate *'s pre-activation.
- dL/dW_*, dL/db_*: the parameter gradients of the total loss L = L(0), summed over the steps.

The math path uses only operations that are analytic in every argument (no ``abs``, no ``np.real``), so the
same code runs on complex arrays for complex-step differentiation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GATES = ("g", "i", "f", "o")
WEIGHTS = ("wg", "wi", "wf", "wo")
BIASES = ("bg", "bi", "bf", "bo")
PARAM_KEYS = WEIGHTS + BIASES
VARIANTS = ("simple", "tanh")
LOSSES = ("seed", "full")


def sigmoid(z):
    """Logistic function written through tanh: no overflow in float32, and analytic for complex z."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


# --------------------------------------------------------------------------------------------- validation


def _shape(a) -> str:
    return str(tuple(np.shape(a)))


def _as_array(name: str, value, dtype=None) -> np.ndarray:
    try:
        arr = np.asarray(value) if dtype is None else np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot be read as a numeric array ({exc})") from None
    if arr.dtype.kind not in "biufc":
        raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    return arr


def _check_finite(name: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))
        where = tuple(int(k) for k in bad[0]) if bad.size else ()
        raise ValueError(f"{name}: contains NaN or inf (first at index {where}); inputs must be finite")


def _check_shape(name: str, arr: np.ndarray, expected: tuple[int, ...], meaning: str) -> None:
    if arr.shape != expected:
        raise ValueError(f"{name}: expected shape {expected} {meaning}, got {_shape(arr)}")


def validate_params(params) -> tuple[int, int]:
    """Check the eight blocks agree; return ``(x_dim, hidden)``. Raises ValueError naming the block."""
    if not isinstance(params, dict):
        raise ValueError(f"params: expected a dict with keys {list(PARAM_KEYS)}, got {type(params).__name__}")
    missing = [k for k in PARAM_KEYS if k not in params]
    extra = [k for k in params if k not in PARAM_KEYS]
    if missing or extra:
        raise ValueError(f"params: expected keys {list(PARAM_KEYS)}; missing {missing}, unexpected {extra}")
    bg = _as_array("params['bg']", params["bg"])
    if bg.ndim != 1 or bg.shape[0] < 1:
        raise ValueError(f"params['bg']: expected shape (hidden,) with hidden >= 1, got {_shape(bg)}")
    hidden = bg.shape[0]
    wg = _as_array("params['wg']", params["wg"])
    if wg.ndim != 2 or wg.shape[0] != hidden or wg.shape[1] <= hidden:
        raise ValueError(
            f"params['wg']: expected shape (hidden, x_dim + hidden) = ({hidden}, x_dim + {hidden}) "
            f"with x_dim >= 1, got {_shape(wg)}"
        )
    x_dim = wg.shape[1] - hidden
    for k in PARAM_KEYS:
        arr = _as_array(f"params[{k!r}]", params[k])
        expected = (hidden, x_dim + hidden) if k in WEIGHTS else (hidden,)
        _check_shape(f"params[{k!r}]", arr, expected, f"(x_dim={x_dim}, hidden={hidden})")
        _check_finite(f"params[{k!r}]", arr)
    return x_dim, hidden


def _validate_inputs(params, xs, variant, h0, s0, taps):
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    x_dim, hidden = validate_params(params)
    xs = _as_array("xs", xs)
    if xs.ndim != 2 or xs.shape[0] < 1:
        raise ValueError(f"xs: expected shape (T, x_dim) = (T, {x_dim}) with T >= 1, got {_shape(xs)}")
    _check_shape("xs", xs, (xs.shape[0], x_dim), f"(T, x_dim) with x_dim={x_dim}")
    _check_finite("xs", xs)
    T = xs.shape[0]
    state0 = {}
    for name, v in (("h0", h0), ("s0", s0)):
        if v is not None:
            v = _as_array(name, v)
            _check_shape(name, v, (hidden,), "(hidden,)")
            _check_finite(name, v)
        state0[name] = v
    if taps is not None:
        if not isinstance(taps, dict) or any(k not in ("h", "s") for k in taps):
            raise ValueError(f"taps: expected a dict with keys among ['h', 's'], got {taps!r:.80}")
        taps = {k: _as_array(f"taps[{k!r}]", v) for k, v in taps.items()}
        for k, v in taps.items():
            _check_shape(f"taps[{k!r}]", v, (T, hidden), "(T, hidden)")
            _check_finite(f"taps[{k!r}]", v)
    return x_dim, hidden, xs, state0["h0"], state0["s0"], taps


def result_dtype(*arrays) -> np.dtype:
    """float64 by default; float32 when every input is float32 or lower; complex when any input is complex."""
    dt = np.result_type(*[np.asarray(a).dtype for a in arrays if a is not None], np.float32)
    if dt.kind in "biu":
        dt = np.dtype(np.float64)
    return dt


# ------------------------------------------------------------------------------------------------ forward


@dataclass
class Trace:
    """Everything the forward pass computed. Every array has the time step as its first axis.

    h, s, g, i, f, o: ``(T, hidden)``; x_c: ``(T, x_dim + hidden)``; h0, s0: ``(hidden,)``, h(-1) and s(-1).
    """

    x_c: np.ndarray
    g: np.ndarray
    i: np.ndarray
    f: np.ndarray
    o: np.ndarray
    s: np.ndarray
    h: np.ndarray
    h0: np.ndarray
    s0: np.ndarray
    variant: str

    @property
    def T(self) -> int:
        return self.h.shape[0]


def forward(params, xs, *, variant="simple", h0=None, s0=None, taps=None) -> Trace:
    """Run the LSTM over ``xs`` of shape ``(T, x_dim)``; return the :class:`Trace`.

    ``taps``: optional ``{"h": (T, hidden), "s": (T, hidden)}``; ``taps["s"][t]`` is added to s(t) before h(t)
    is computed from it, ``taps["h"][t]`` to h(t) right after it is computed (before the loss and step t+1 use
    it). The derivative of the loss with respect to a tap entry is dL(t)/ds(t) or dL(t)/dh(t).
    """
    x_dim, hidden, xs, h0, s0, taps = _validate_inputs(params, xs, variant, h0, s0, taps)
    dt = result_dtype(*params.values(), xs, h0, s0, *(taps or {}).values())
    p = {k: np.asarray(v, dtype=dt) for k, v in params.items()}
    return _forward(p, np.asarray(xs, dtype=dt), variant, h0, s0, taps, dt)


def _forward(p, xs, variant, h0, s0, taps, dt) -> Trace:
    T, x_dim = xs.shape
    hidden = p["bg"].shape[0]
    wg, wi, wf, wo, bg, bi, bf, bo = (p[k] for k in PARAM_KEYS)
    h_prev = np.zeros(hidden, dt) if h0 is None else np.asarray(h0, dt)
    s_prev = np.zeros(hidden, dt) if s0 is None else np.asarray(s0, dt)
    # fmt: off
    tr = Trace(
        x_c=np.empty((T, x_dim + hidden), dt), g=np.empty((T, hidden), dt), i=np.empty((T, hidden), dt),
        f=np.empty((T, hidden), dt), o=np.empty((T, hidden), dt), s=np.empty((T, hidden), dt),
        h=np.empty((T, hidden), dt), h0=h_prev, s0=s_prev, variant=variant,
    )
    for t in range(T):
        x_c = np.concatenate([xs[t], h_prev])       # x_c(t) = [x(t), h(t-1)]
        g = np.tanh(wg @ x_c + bg)                  # g(t) = tanh(W_g x_c + b_g)
        i = sigmoid(wi @ x_c + bi)                  # i(t) = sigmoid(W_i x_c + b_i)
        f = sigmoid(wf @ x_c + bf)                  # f(t) = sigmoid(W_f x_c + b_f)
        o = sigmoid(wo @ x_c + bo)                  # o(t) = sigmoid(W_o x_c + b_o)
        s = g * i + s_prev * f                      # s(t) = g*i + s(t-1)*f
        if taps is not None and "s" in taps:
            s = s + taps["s"][t]                    # tap on s(t), before h(t) reads it
        h = s * o if variant == "simple" else np.tanh(s) * o   # h(t) = s*o  |  tanh(s)*o
        if taps is not None and "h" in taps:
            h = h + taps["h"][t]                    # tap on h(t), before l(t) and step t+1 read it
        tr.x_c[t], tr.g[t], tr.i[t], tr.f[t], tr.o[t], tr.s[t], tr.h[t] = x_c, g, i, f, o, s, h
        h_prev, s_prev = h, s
    # fmt: on
    return tr


# ------------------------------------------------------------------------------------------------- losses


def _validate_targets(ys, loss, T, hidden):
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {list(LOSSES)}, got {loss!r}")
    ys = _as_array("ys", ys)
    expected = (T,) if loss == "seed" else (T, hidden)
    meaning = "(T,) for loss='seed'" if loss == "seed" else "(T, hidden) for loss='full'"
    _check_shape("ys", ys, expected, meaning)
    _check_finite("ys", ys)
    return ys


def step_losses(h, ys, loss):
    """Per-step losses l(t), shape ``(T,)``. seed: (h(t)[0] - y(t))^2; full: ||h(t) - y(t)||^2 (no abs)."""
    if loss == "seed":
        return (h[:, 0] - ys) ** 2
    return ((h - ys) ** 2).sum(axis=1)


def step_loss_grads(h, ys, loss):
    """dl(t)/dh(t), shape ``(T, hidden)``: the gradient of each step's own loss term."""
    dl = np.zeros_like(h)
    # fmt: off
    if loss == "seed":
        dl[:, 0] = 2.0 * (h[:, 0] - ys)             # d/dh[0] (h[0] - y)^2
    else:
        dl[:] = 2.0 * (h - ys)                      # d/dh ||h - y||^2
    # fmt: on
    return dl


# ----------------------------------------------------------------------------------------------- backward


@dataclass
class BPTT:
    """What backpropagation through time computed.

    param_grads: dL/d(block) of the total loss L = L(0), the same keys and shapes as the parameters.
    dh, ds: ``(T, hidden)``; ``dh[t]`` = dL(t)/dh(t), ``ds[t]`` = dL(t)/ds(t) (total derivatives of the loss
    from step t on, see the module docstring; ``ds[t]`` is also the derivative with respect to a tap on s(t)).
    dpre: ``{"g","i","f","o"}`` -> ``(T, hidden)``; ``dpre[k][t]`` = dL(t)/dpre_k(t), the gradient of gate k's
    pre-activation pre_k(t) = W_k x_c(t) + b_k.
    dh0, ds0: ``(hidden,)``, dL(0)/dh(-1) and dL(0)/ds(-1) (the initial states).
    """

    param_grads: dict
    dh: np.ndarray
    ds: np.ndarray
    dpre: dict
    dh0: np.ndarray
    ds0: np.ndarray


def backward(params, trace: Trace, dl_dh) -> BPTT:
    """Analytic BPTT for the trace of :func:`forward` given ``dl_dh[t]`` = dl(t)/dh(t), shape ``(T, hidden)``.

    Each backward line sits beside (in this comment's order) the forward line it differentiates.
    """
    tr = trace
    T, hidden = tr.h.shape
    x_dim = tr.x_c.shape[1] - hidden
    dt = tr.h.dtype
    p = {k: np.asarray(v, dtype=dt) for k, v in params.items()}
    wg, wi, wf, wo = (p[k] for k in WEIGHTS)
    dh_all = np.empty((T, hidden), dt)
    ds_all = np.empty((T, hidden), dt)
    dpre = {k: np.empty((T, hidden), dt) for k in GATES}
    # In the loop, d<x> is dL(t)/d<x>(t): the total derivative of the loss from step t on with respect to x(t)
    # (see the module docstring); d<gate>_in is dL(t)/dpre_<gate>(t), for the gate's pre-activation.
    # fmt: off
    dh_next = np.zeros(hidden, dt)                  # dL(t+1)/dh(t): zero after the last step
    ds_next = np.zeros(hidden, dt)                  # dL(t+1)/ds(t)
    for t in reversed(range(T)):
        g, i, f, o, s = tr.g[t], tr.i[t], tr.f[t], tr.o[t], tr.s[t]
        s_prev = tr.s[t - 1] if t > 0 else tr.s0
        dh = dl_dh[t] + dh_next                     # dL(t)/dh(t) = dl(t)/dh(t) + dL(t+1)/dh(t)
        if tr.variant == "simple":
            ds = o * dh + ds_next                   # h = s*o:        ds = o*dh + dL(t+1)/ds(t)
            do = s * dh                             #                 do = s*dh
        else:
            tanh_s = np.tanh(s)
            ds = o * (1.0 - tanh_s**2) * dh + ds_next   # h = tanh(s)*o: ds = o*tanh'(s)*dh + dL(t+1)/ds(t)
            do = tanh_s * dh                        #                 do = tanh(s)*dh
        dg = i * ds                                 # s = g*i + s(t-1)*f:  dg = i*ds
        di = g * ds                                 #                      di = g*ds
        df = s_prev * ds                            #                      df = s(t-1)*ds
        dg_in = (1.0 - g**2) * dg                   # g = tanh(pre_g):     tanh'  = 1 - g^2
        di_in = i * (1.0 - i) * di                  # i = sigmoid(pre_i):  sigma' = i(1-i)
        df_in = f * (1.0 - f) * df                  # f = sigmoid(pre_f)
        do_in = o * (1.0 - o) * do                  # o = sigmoid(pre_o)
        dx_c = wg.T @ dg_in + wi.T @ di_in + wf.T @ df_in + wo.T @ do_in   # dx_c = sum_* W_*^T d*_in
        dh_next = dx_c[x_dim:]                      # x_c = [x, h(t-1)]:   dL(t)/dh(t-1), the h part
        ds_next = ds * f                            # s = ... + s(t-1)*f:  dL(t)/ds(t-1) = ds*f
        dh_all[t], ds_all[t] = dh, ds
        for k, d_in in zip(GATES, (dg_in, di_in, df_in, do_in), strict=True):
            dpre[k][t] = d_in
    grads = {}
    for w, b, k in zip(WEIGHTS, BIASES, GATES, strict=True):   # pre_*(t) = W_* x_c(t) + b_*, every step:
        grads[w] = dpre[k].T @ tr.x_c               # dL/dW_* = sum_t d*_in(t) x_c(t)^T (one product)
        grads[b] = dpre[k].sum(axis=0)              # dL/db_* = sum_t d*_in(t)
    # fmt: on
    grads = {k: grads[k] for k in PARAM_KEYS}
    return BPTT(param_grads=grads, dh=dh_all, ds=ds_all, dpre=dpre, dh0=dh_next, ds0=ds_next)


def loss_and_grads(params, xs, ys, *, variant="simple", loss="seed", h0=None, s0=None):
    """Loss and analytic gradients: ``(L, param_grads, dh, ds)``.

    ``xs``: ``(T, x_dim)``; ``ys``: ``(T,)`` for ``loss="seed"`` (L = sum_t (h(t)[0] - y(t))^2) or
    ``(T, hidden)`` for ``loss="full"`` (L = sum_t ||h(t) - y(t)||^2). ``dh``, ``ds``: ``(T, hidden)`` with
    ``dh[t]`` = dL(t)/dh(t) and ``ds[t]`` = dL(t)/ds(t). ``L`` is a Python float (complex for complex inputs).
    """
    L, bp = loss_and_bptt(params, xs, ys, variant=variant, loss=loss, h0=h0, s0=s0)
    return L, bp.param_grads, bp.dh, bp.ds


def loss_and_bptt(params, xs, ys, *, variant="simple", loss="seed", h0=None, s0=None) -> tuple[object, BPTT]:
    """Like :func:`loss_and_grads` but returns the whole :class:`BPTT` (gate pre-activation gradients too)."""
    tr = forward(params, xs, variant=variant, h0=h0, s0=s0)
    ys = _validate_targets(ys, loss, tr.T, tr.h.shape[1])
    dt = result_dtype(tr.h, ys)
    ys = np.asarray(ys, dtype=dt)
    L = step_losses(tr.h, ys, loss).sum().item()
    return L, backward(params, tr, step_loss_grads(tr.h, ys, loss))


def total_loss(params, xs, ys, *, variant="simple", loss="seed", h0=None, s0=None, taps=None):
    """L = sum_t l(t) after a forward pass with optional state taps (see :func:`forward`)."""
    tr = forward(params, xs, variant=variant, h0=h0, s0=s0, taps=taps)
    ys = _validate_targets(ys, loss, tr.T, tr.h.shape[1])
    return step_losses(tr.h, np.asarray(ys, dtype=result_dtype(tr.h, ys)), loss).sum().item()


def init_params(x_dim, hidden, *, seed=0, scale=0.1) -> dict[str, np.ndarray]:
    """Independent uniform(-scale, scale) draws per block from ``np.random.default_rng(seed)``.

    Weights ``wg, wi, wf, wo``: ``(hidden, x_dim + hidden)`` (x columns first, then h); biases: ``(hidden,)``.
    """
    for name, v in (("x_dim", x_dim), ("hidden", hidden)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale: expected a finite number > 0, got {scale!r}")
    rng = np.random.default_rng(seed)
    shapes = {k: (hidden, x_dim + hidden) for k in WEIGHTS} | {k: (hidden,) for k in BIASES}
    return {k: rng.uniform(-scale, scale, size=shapes[k]) for k in PARAM_KEYS}
