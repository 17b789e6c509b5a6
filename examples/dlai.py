"""The deeplearning.ai "RNN step by step" shape: feature-major ``x (n_x, m, T_x)``, ``a0 (n_a, m)``, separate
gates ``Wf, Wi, Wc, Wo (n_a, n_a + n_x)`` and biases ``(n_a, 1)`` acting on ``concat = [a_prev; x_t]``, a
``parameters`` dict, a softmax readout ``Wy, by`` that the hidden-state loss does not use, and backward
functions that return dicts of ``d``-prefixed names.

Factories (keyword sizes and seed): ``correct``, ``buggy`` (the sequence backward never carries ``da_prev``
and ``dc_prev`` to the step below, as in a published copy), ``make(bug=...)`` for any bug of :data:`BUGS`.
They check ``lstm_forward`` / ``lstm_backward`` through :class:`gradcheck.FunctionModel`, one row per time
step of ``x``.
"""

from __future__ import annotations

import functools

import numpy as np

from gradcheck.adapters.functions import FunctionModel

GATE_PARAMS = ["Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo"]
BUGS = {
    "no_carry": "the sequence backward never adds da_prev to the next step's da and never passes dc_prev on",
    "forget_prime": "the forget gate's sigmoid' left out of dft",
}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x):
    e = np.exp(x - np.max(x, axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def lstm_cell_forward(xt, a_prev, c_prev, parameters):
    """xt (n_x, m), a_prev and c_prev (n_a, m) -> a_next, c_next (n_a, m), yt_pred (n_y, m), cache."""
    p = parameters
    concat = np.concatenate([a_prev, xt], axis=0)
    ft = sigmoid(p["Wf"] @ concat + p["bf"])
    it = sigmoid(p["Wi"] @ concat + p["bi"])
    cct = np.tanh(p["Wc"] @ concat + p["bc"])
    c_next = ft * c_prev + it * cct
    ot = sigmoid(p["Wo"] @ concat + p["bo"])
    a_next = ot * np.tanh(c_next)
    yt_pred = softmax(p["Wy"] @ a_next + p["by"])
    return a_next, c_next, yt_pred, (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)


def lstm_cell_backward(da_next, dc_next, cache, *, bug=None):
    """-> dict with dxt (n_x, m), da_prev, dc_prev (n_a, m), dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo."""
    a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, p = cache
    n_a = a_next.shape[0]
    dc = dc_next + da_next * ot * (1 - np.tanh(c_next) ** 2)
    dot = da_next * np.tanh(c_next) * ot * (1 - ot)
    dcct = dc * it * (1 - cct**2)
    dit = dc * cct * it * (1 - it)
    dft = dc * c_prev * (1 if bug == "forget_prime" else ft * (1 - ft))
    concat = np.concatenate([a_prev, xt], axis=0)
    grads = {
        "dWf": dft @ concat.T,
        "dWi": dit @ concat.T,
        "dWc": dcct @ concat.T,
        "dWo": dot @ concat.T,
        "dbf": dft.sum(axis=1, keepdims=True),
        "dbi": dit.sum(axis=1, keepdims=True),
        "dbc": dcct.sum(axis=1, keepdims=True),
        "dbo": dot.sum(axis=1, keepdims=True),
    }
    dconcat = p["Wf"].T @ dft + p["Wi"].T @ dit + p["Wc"].T @ dcct + p["Wo"].T @ dot
    grads |= {"da_prev": dconcat[:n_a], "dxt": dconcat[n_a:], "dc_prev": dc * ft}
    return grads


def lstm_forward(x, a0, parameters):
    """x (n_x, m, T_x), a0 (n_a, m) -> a (n_a, m, T_x), y (n_y, m, T_x), c (n_a, m, T_x), caches."""
    a_next, c_next = a0, np.zeros_like(a0)
    a, y, c, caches = [], [], [], []
    for t in range(x.shape[2]):
        a_next, c_next, yt, cache = lstm_cell_forward(x[:, :, t], a_next, c_next, parameters)
        a.append(a_next)
        y.append(yt)
        c.append(c_next)
        caches.append(cache)
    return np.stack(a, axis=2), np.stack(y, axis=2), np.stack(c, axis=2), caches


def lstm_backward(da, caches, *, bug=None):
    """da (n_a, m, T_x): upstream gradient of every step's a -> dict dx (n_x, m, T_x), da0, dWf, dbf, ..."""
    T = da.shape[2]
    n_x = caches[0][8].shape[0]
    dx = np.zeros((n_x, *da.shape[1:]))
    da_prev, dc_prev = np.zeros_like(da[:, :, 0]), np.zeros_like(da[:, :, 0])
    totals = {f"d{n}": 0 for n in GATE_PARAMS}
    for t in reversed(range(T)):
        if bug == "no_carry":
            g = lstm_cell_backward(da[:, :, t], np.zeros_like(dc_prev), caches[t], bug=bug)
        else:
            g = lstm_cell_backward(da[:, :, t] + da_prev, dc_prev, caches[t], bug=bug)
        dx[:, :, t] = g["dxt"]
        da_prev, dc_prev = g["da_prev"], g["dc_prev"]
        totals = {k: totals[k] + g[k] for k in totals}
    return {"dx": dx, "da0": da_prev, **totals}


def problem(*, x_dim=3, hidden=4, steps=5, batch=2, seed=0, n_y=2) -> dict:
    """A random point: x (x_dim, batch, steps), a0, the gate parameters, Wy, by, the upstream gradient da."""
    rng = np.random.default_rng(seed)
    n_x, n_a, m = x_dim, hidden, batch
    out = {"x": rng.normal(size=(n_x, m, steps)), "a0": rng.normal(scale=0.5, size=(n_a, m))}
    for gate in "fico":
        out[f"W{gate}"] = rng.normal(scale=1 / np.sqrt(n_a + n_x), size=(n_a, n_a + n_x))
        out[f"b{gate}"] = rng.normal(scale=0.5, size=(n_a, 1))
    out["Wy"], out["by"] = rng.normal(size=(n_y, n_a)), rng.normal(size=(n_y, 1))
    out["da"] = rng.normal(size=(n_a, m, steps))
    return out


def sequence_loss(x, a0, da, **parameters):
    """L = sum(da * a): the hidden-state loss (the softmax readout Wy, by does not enter it)."""
    a, _, _, _ = lstm_forward(x, a0, parameters)
    return np.sum(da * a)


def sequence_grads(x, a0, da, *, bug=None, **parameters):
    _, _, _, caches = lstm_forward(x, a0, parameters)
    g = lstm_backward(da, caches, bug=bug)
    return {"x": g["dx"], "a0": g["da0"], **{n: g[f"d{n}"] for n in GATE_PARAMS}}


def make(*, bug=None, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> FunctionModel:
    """lstm_forward / lstm_backward as a FunctionModel: x per time step (axis 2), each gate; Wy, by fixed."""
    if bug is not None and bug not in BUGS:
        raise ValueError(f"bug: expected None or one of {list(BUGS)}, got {bug!r}")
    args = problem(x_dim=x_dim, hidden=hidden, steps=steps, batch=batch, seed=seed)
    return FunctionModel(
        sequence_loss,
        functools.partial(sequence_grads, bug=bug),
        args,
        wrt=["x", "a0", *GATE_PARAMS],
        time_axis={"x": 2},
    )


def correct(*, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> FunctionModel:
    return make(x_dim=x_dim, hidden=hidden, steps=steps, batch=batch, seed=seed)


def buggy(*, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> FunctionModel:
    """The published copy's sequence backward: no da_prev / dc_prev carried between steps."""
    return make(bug="no_carry", x_dim=x_dim, hidden=hidden, steps=steps, batch=batch, seed=seed)
