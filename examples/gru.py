"""A GRU in the CS231n step-function shape, with one state: ``x (N, T, D)``, fused ``Wx (D, 3H)``,
``Wh (H, 3H)``, ``b (3H,)`` with the 3H columns in the order z (update), r (reset), n (candidate)::

    z = sigmoid(x Wx_z + h Wh_z + b_z)     r = sigmoid(x Wx_r + h Wh_r + b_r)
    n = tanh(x Wx_n + (r * h) Wh_n + b_n)  next_h = (1 - z) * n + z * h

Factories (keyword sizes and seed): ``correct_steps`` / ``buggy_steps`` (the step loop, states ``h``), and
``make_steps(bug=...)`` for any bug of :data:`BUGS`.
"""

from __future__ import annotations

import functools

import numpy as np

from gradcheck.adapters.steploop import StepModel

GATES = ["z", "r", "n"]
BUGS = {
    "dropped_direct": "dprev_h misses the direct path z * dnext_h (only the paths through the gates remain)",
    "wh_n_no_reset": "dWh of the candidate n accumulated from prev_h instead of r * prev_h",
}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gru_step_forward(x, prev_h, Wx, Wh, b):
    """x (N, D), prev_h (N, H) -> next_h (N, H), cache."""
    H = prev_h.shape[1]
    ax = x @ Wx + b
    z = sigmoid(ax[:, :H] + prev_h @ Wh[:, :H])
    r = sigmoid(ax[:, H : 2 * H] + prev_h @ Wh[:, H : 2 * H])
    n = np.tanh(ax[:, 2 * H :] + (r * prev_h) @ Wh[:, 2 * H :])
    next_h = (1 - z) * n + z * prev_h
    return next_h, (x, prev_h, Wx, Wh, z, r, n)


def gru_step_backward(dnext_h, cache, *, bug=None):
    """dnext_h (N, H) -> dx (N, D), dprev_h (N, H), dWx, dWh, db."""
    x, prev_h, Wx, Wh, z, r, n = cache
    H = prev_h.shape[1]
    dan = dnext_h * (1 - z) * (1 - n**2)
    drh = dan @ Wh[:, 2 * H :].T
    daz = dnext_h * (prev_h - n) * z * (1 - z)
    dar = drh * prev_h * r * (1 - r)
    da = np.hstack([daz, dar, dan])
    dprev_h = drh * r + daz @ Wh[:, :H].T + dar @ Wh[:, H : 2 * H].T
    if bug != "dropped_direct":
        dprev_h = dprev_h + dnext_h * z
    h_n = prev_h if bug == "wh_n_no_reset" else r * prev_h
    dWh = np.hstack([prev_h.T @ daz, prev_h.T @ dar, h_n.T @ dan])
    return da @ Wx.T, dprev_h, x.T @ da, dWh, da.sum(axis=0)


def problem(*, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(batch, steps, x_dim)),
        "h0": rng.normal(scale=0.5, size=(batch, hidden)),
        "Wx": rng.normal(scale=1 / np.sqrt(x_dim), size=(x_dim, 3 * hidden)),
        "Wh": rng.normal(scale=1 / np.sqrt(hidden), size=(hidden, 3 * hidden)),
        "b": rng.normal(scale=0.5, size=3 * hidden),
    }


def make_steps(*, bug=None, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> StepModel:
    """gru_step_forward / gru_step_backward in the step loop: state h, Wx, Wh, b per gate."""
    if bug is not None and bug not in BUGS:
        raise ValueError(f"bug: expected None or one of {list(BUGS)}, got {bug!r}")
    p = problem(x_dim=x_dim, hidden=hidden, steps=steps, batch=batch, seed=seed)
    backward = gru_step_backward if bug is None else functools.partial(gru_step_backward, bug=bug)
    return StepModel(
        gru_step_forward,
        backward,
        inputs=p["x"],
        time_axis=1,
        states={"h": p["h0"]},
        params={"Wx": p["Wx"], "Wh": p["Wh"], "b": p["b"]},
        split={"Wx": (1, GATES), "Wh": (1, GATES), "b": (0, GATES)},
        seed=seed,
    )


def correct_steps(*, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> StepModel:
    return make_steps(x_dim=x_dim, hidden=hidden, steps=steps, batch=batch, seed=seed)


def buggy_steps(*, x_dim=3, hidden=4, steps=5, batch=2, seed=0) -> StepModel:
    """dprev_h without the direct path z * dnext_h."""
    return make_steps(bug="dropped_direct", x_dim=x_dim, hidden=hidden, steps=steps, batch=batch, seed=seed)
