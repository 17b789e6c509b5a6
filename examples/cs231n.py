"""The CS231n ``rnn_layers.py`` shape: batch-major ``x (N, T, D)``, fused gates ``Wx (D, 4H)``,
``Wh (H, 4H)``, ``b (4H,)`` with the 4H columns in the order i, f, o, g; step functions and sequence
functions.

Factories (keyword sizes and seed, e.g. ``gradcheck run --model examples.cs231n:buggy --hidden 4``):

- ``correct`` / ``buggy``: ``lstm_forward`` / ``lstm_backward`` through :func:`gradcheck.check_function`
  (loss ``sum(dout * h)`` with a fixed random ``dout``; rows per time step of ``x``, per gate of the weights);
- ``correct_steps`` / ``buggy_steps``: ``lstm_step_forward`` / ``lstm_step_backward`` through the step loop
  (:class:`gradcheck.StepModel`: rows dL/dh(t), dL/dc(t) at every step);
- ``make(bug=...)`` / ``make_steps(bug=...)`` for any bug of :data:`BUGS`.
"""

from __future__ import annotations

import functools

import numpy as np

from gradcheck.adapters.functions import FunctionModel
from gradcheck.adapters.steploop import StepModel

GATES = ["i", "f", "o", "g"]
BUGS = {
    "dropped_carry": "dnext_c = ... where dnext_c += ... belongs: the cell-state gradient from t+1 dropped",
    "wh_next_h": "dWh accumulated from next_h instead of prev_h",
    "tanh_prime": "the g gate's tanh' written as 1 - g instead of 1 - g**2",
}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One step: x (N, D), prev_h and prev_c (N, H) -> next_h, next_c (N, H), cache."""
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, next_h, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache, *, bug=None):
    """dnext_h, dnext_c (N, H) -> dx (N, D), dprev_h, dprev_c (N, H), dWx, dWh, db; adds into dnext_c."""
    x, prev_h, prev_c, next_h, Wx, Wh, i, f, o, g, tanh_c = cache
    if bug == "dropped_carry":
        dnext_c = dnext_h * o * (1 - tanh_c**2)
    else:
        dnext_c += dnext_h * o * (1 - tanh_c**2)
    dg = dnext_c * i * ((1 - g) if bug == "tanh_prime" else (1 - g**2))
    da = np.hstack(
        [dnext_c * g * i * (1 - i), dnext_c * prev_c * f * (1 - f), dnext_h * tanh_c * o * (1 - o), dg]
    )
    dWh = (next_h if bug == "wh_next_h" else prev_h).T @ da
    return da @ Wx.T, da @ Wh.T, dnext_c * f, x.T @ da, dWh, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    """x (N, T, D), h0 (N, H) -> h (N, T, H), cache. The cell state starts at 0."""
    h, prev_h, prev_c, caches = [], h0, np.zeros_like(h0), []
    for t in range(x.shape[1]):
        prev_h, prev_c, cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h.append(prev_h)
        caches.append(cache)
    return np.stack(h, axis=1), caches


def lstm_backward(dh, caches, *, bug=None):
    """dh (N, T, H): upstream gradient of every step's h -> dx (N, T, D), dh0 (N, H), dWx, dWh, db."""
    dx, dWx, dWh, db = [None] * len(caches), 0, 0, 0
    dprev_h, dprev_c = np.zeros_like(dh[:, 0]), np.zeros_like(dh[:, 0])
    for t in reversed(range(len(caches))):
        dx[t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t] + dprev_h, dprev_c, caches[t], bug=bug
        )
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return np.stack(dx, axis=1), dprev_h, dWx, dWh, db


def problem(*, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> dict:
    """A random point: x (batch, steps, x_dim), h0, Wx, Wh, b and the upstream gradient dout of h."""
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(batch, steps, x_dim)),
        "h0": rng.normal(scale=0.5, size=(batch, hidden)),
        "Wx": rng.normal(scale=1 / np.sqrt(x_dim), size=(x_dim, 4 * hidden)),
        "Wh": rng.normal(scale=1 / np.sqrt(hidden), size=(hidden, 4 * hidden)),
        "b": rng.normal(scale=0.5, size=4 * hidden),
        "dout": rng.normal(size=(batch, steps, hidden)),
    }


def sequence_loss(x, h0, Wx, Wh, b, dout):
    """L = sum(dout * h): its gradient with respect to h is dout."""
    h, _ = lstm_forward(x, h0, Wx, Wh, b)
    return np.sum(dout * h)


def sequence_grads(x, h0, Wx, Wh, b, dout, *, bug=None):
    _, caches = lstm_forward(x, h0, Wx, Wh, b)
    dx, dh0, dWx, dWh, db = lstm_backward(dout, caches, bug=bug)
    return {"x": dx, "h0": dh0, "Wx": dWx, "Wh": dWh, "b": db}


def gate_split(*names: str) -> dict:
    return {n: (0 if n == "b" else 1, GATES) for n in names}


def make(*, bug=None, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> FunctionModel:
    """lstm_forward / lstm_backward as a FunctionModel: x per time step, Wx, Wh, b per gate."""
    _known(bug)
    args = problem(x_dim=x_dim, hidden=hidden, steps=steps, batch=batch, seed=seed)
    return FunctionModel(
        sequence_loss,
        functools.partial(sequence_grads, bug=bug),
        args,
        wrt=["x", "h0", "Wx", "Wh", "b"],
        time_axis={"x": 1},
        split=gate_split("Wx", "Wh", "b"),
    )


def make_steps(*, bug=None, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> StepModel:
    """lstm_step_forward / lstm_step_backward in the step loop: states h and c, readout seeded by ``seed``."""
    _known(bug)
    p = problem(x_dim=x_dim, hidden=hidden, steps=steps, batch=batch, seed=seed)
    backward = lstm_step_backward if bug is None else functools.partial(lstm_step_backward, bug=bug)
    return StepModel(
        lstm_step_forward,
        backward,
        inputs=p["x"],
        time_axis=1,
        states={"h": p["h0"], "c": np.zeros_like(p["h0"])},
        params={"Wx": p["Wx"], "Wh": p["Wh"], "b": p["b"]},
        split=gate_split("Wx", "Wh", "b"),
        seed=seed,
    )


def correct(*, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> FunctionModel:
    return make(x_dim=x_dim, hidden=hidden, steps=steps, batch=batch, seed=seed)


def buggy(*, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> FunctionModel:
    """The classic: ``dnext_c = ...`` instead of ``+=`` in lstm_step_backward."""
    return make(bug="dropped_carry", x_dim=x_dim, hidden=hidden, steps=steps, batch=batch, seed=seed)


def correct_steps(*, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> StepModel:
    return make_steps(x_dim=x_dim, hidden=hidden, steps=steps, batch=batch, seed=seed)


def buggy_steps(*, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> StepModel:
    return make_steps(bug="dropped_carry", x_dim=x_dim, hidden=hidden, steps=steps, batch=batch, seed=seed)


def _known(bug) -> None:
    if bug is not None and bug not in BUGS:
        raise ValueError(f"bug: expected None or one of {list(BUGS)}, got {bug!r}")
