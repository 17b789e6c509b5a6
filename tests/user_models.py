"""Models written to the checker's protocol from the outside: no lstm_ref, no gradcheck internals.

``UserLSTM`` lays its parameters out differently from the reference (``Wx: (4, hidden, x_dim)``,
``Wh: (4, hidden, hidden)``, ``b: (4, hidden)``, gates in the order g, i, f, o), uses the tanh variant and the
full loss, and has switches that plant the bugs people really write. ``Linear`` has no recurrent state.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class UserLSTM:
    def __init__(self, x_dim=3, hidden=4, steps=5, seed=0, *, bug=None, block="Wh", entry=None, factor=1.0):
        rng = np.random.default_rng(seed)
        self.p = {
            "Wx": rng.uniform(-0.5, 0.5, (4, hidden, x_dim)),
            "Wh": rng.uniform(-0.5, 0.5, (4, hidden, hidden)),
            "b": rng.uniform(-0.5, 0.5, (4, hidden)),
        }
        self.xs = rng.normal(size=(steps, x_dim))
        self.ys = rng.uniform(-0.5, 0.5, (steps, hidden))
        self.h0 = rng.uniform(-0.5, 0.5, hidden)
        self.s0 = rng.uniform(-0.5, 0.5, hidden)
        self.bug, self.block, self.entry, self.factor = bug, block, entry, factor

    def parameters(self):
        return {k: v.copy() for k, v in self.p.items()}

    def _run(self, p, taps=None):
        T, hidden = self.ys.shape
        h, s = self.h0, self.s0
        cache = []
        for t in range(T):
            z = np.einsum("ghx,x->gh", p["Wx"], self.xs[t]) + np.einsum("ghk,k->gh", p["Wh"], h) + p["b"]
            g, i, f, o = np.tanh(z[0]), _sigmoid(z[1]), _sigmoid(z[2]), _sigmoid(z[3])
            s_prev, h_prev = s, h
            s = g * i + s_prev * f
            if taps is not None:
                s = s + taps["s"][t]
            h = np.tanh(s) * o
            if taps is not None:
                h = h + taps["h"][t]
            cache.append((h_prev, s_prev, g, i, f, o, s, h))
        return cache

    def loss(self, params, taps=None):
        cache = self._run(params, taps)
        return float(sum(((c[7] - y) ** 2).sum() for c, y in zip(cache, self.ys)))

    def gradients(self, params):
        cache = self._run(params)
        T, hidden = self.ys.shape
        grads = {k: np.zeros_like(v) for k, v in params.items()}
        dh_out, ds_out = np.zeros((T, hidden)), np.zeros((T, hidden))
        dh_next, ds_next = np.zeros(hidden), np.zeros(hidden)
        for t in reversed(range(T)):
            h_prev, s_prev, g, i, f, o, s, h = cache[t]
            dh = 2 * (h - self.ys[t]) + dh_next
            ds = o * (1 - np.tanh(s) ** 2) * dh
            if self.bug != "drop_ds_carry":
                ds = ds + ds_next
            dz = np.stack(
                [
                    i * ds * (1 - g**2),
                    g * ds * i * (1 - i),
                    s_prev * ds * f * (1 - f),
                    np.tanh(s) * dh * o * (1 - o),
                ]
            )
            grads["Wx"] += np.einsum("gh,x->ghx", dz, self.xs[t])
            grads["Wh"] += np.einsum("gh,k->ghk", dz, h_prev)
            grads["b"] += dz
            dh_next = np.einsum("ghk,gh->k", params["Wh"], dz)
            if self.bug == "drop_dh_carry":
                dh_next = np.zeros(hidden)
            ds_next = ds * f
            dh_out[t], ds_out[t] = dh, ds
        if self.bug == "scale_block":
            grads[self.block] = grads[self.block] * self.factor
        if self.bug == "wrong_entry":
            grads[self.block][self.entry] *= self.factor
        if self.bug == "wrong_shape":
            grads[self.block] = grads[self.block].reshape(-1)
        if self.bug == "missing":
            del grads[self.block]
        if self.bug == "nan":
            grads[self.block][self.entry] = np.nan
        return grads, {"h": dh_out, "s": ds_out}


class Linear:
    """L = ||A w - y||^2 + sum(c^2 * w): no recurrent state, so no state rows."""

    def __init__(self, n=5, m=3, seed=0, *, bug=None):
        rng = np.random.default_rng(seed)
        self.A = rng.normal(size=(m, n))
        self.y = rng.normal(size=m)
        self.w = rng.normal(size=n)
        self.c = rng.normal(size=2)
        self.bug = bug

    def parameters(self):
        return {"w": self.w.copy(), "c": self.c.copy()}

    def loss(self, params, taps=None):
        r = self.A @ params["w"] - self.y
        return float(r @ r + params["c"] @ params["c"] * params["w"].sum())

    def gradients(self, params):
        r = self.A @ params["w"] - self.y
        gw = 2 * self.A.T @ r + params["c"] @ params["c"]
        gc = 2 * params["c"] * params["w"].sum()
        if self.bug == "transpose":  # the classic: forgetting the factor 2 on one block
            gc = gc / 2
        return {"w": gw, "c": gc}, {}


class Raising:
    """Follows the protocol but its loss raises (exit code 3)."""

    def parameters(self):
        return {"w": np.ones(3)}

    def loss(self, params, taps=None):
        raise RuntimeError("boom: the user's loss failed")

    def gradients(self, params):
        return {"w": np.ones(3)}, {}


def correct_lstm():
    return UserLSTM()


def buggy_lstm():
    return UserLSTM(bug="drop_ds_carry")


def linear():
    return Linear()


def raising():
    return Raising()


def not_a_model():
    return object()
