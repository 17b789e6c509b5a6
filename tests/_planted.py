"""Planted wrong gradients for the speed tests (helpers, not tests): models written against the protocol."""

from __future__ import annotations

import numpy as np

import lstm_ref
from gradcheck.lstm.reference import ReferenceLSTM
from lstm_ref.model import BPTT, GATES, PARAM_KEYS, WEIGHTS


class Planted(ReferenceLSTM):
    """The reference with its analytic gradient changed by ``plant(param_grads, state_grads)`` (in place)."""

    def __init__(self, *args, plant=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.plant = plant

    def gradients(self, params):
        pg, sg = super().gradients(params)
        pg = {k: np.array(v, copy=True) for k, v in pg.items()}
        sg = {k: np.array(v, copy=True) for k, v in sg.items()}
        if self.plant is not None:
            self.plant(pg, sg)
        return pg, sg


class Counting(Planted):
    """The (planted) reference declaring only ``{"complex"}``, not its batched capability: every evaluation is
    one counted ``loss()`` call (``calls``)."""

    capabilities = frozenset({"complex"})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def loss(self, params, taps=None):
        self.calls += 1
        return super().loss(params, taps)


class entry_bug:  # noqa: N801 (a picklable closure: plants travel to worker processes)
    """Entry ``index`` of block ``name`` off by ``rel`` times the block's largest |gradient|."""

    def __init__(self, name, index, rel):
        self.name, self.index, self.rel = name, index, rel

    def __call__(self, pg, sg):
        pg[self.name][self.index] += self.rel * np.max(np.abs(pg[self.name]))


class block_bug:  # noqa: N801
    """Block ``name`` multiplied by ``factor``."""

    def __init__(self, name, factor):
        self.name, self.factor = name, factor

    def __call__(self, pg, sg):
        pg[self.name] *= self.factor


def backward_without_ds_next(params, trace, dl_dh):
    """BPTT that drops dL(t+1)/ds(t) from dL(t)/ds(t): the write-up's famous wrong "fix" (simple variant)."""
    tr = trace
    T, hidden = tr.h.shape
    x_dim = tr.x_c.shape[1] - hidden
    p = {k: np.asarray(v, dtype=tr.h.dtype) for k, v in params.items()}
    grads = {k: np.zeros_like(p[k]) for k in PARAM_KEYS}
    dh_all, ds_all = np.empty((T, hidden)), np.empty((T, hidden))
    dh_next = np.zeros(hidden)
    for t in reversed(range(T)):
        g, i, f, o, s = tr.g[t], tr.i[t], tr.f[t], tr.o[t], tr.s[t]
        s_prev = tr.s[t - 1] if t > 0 else tr.s0
        dh = dl_dh[t] + dh_next
        ds = o * dh  # BUG: + dL(t+1)/ds(t) dropped
        d_in = {
            "g": (1 - g**2) * i * ds,
            "i": i * (1 - i) * g * ds,
            "f": f * (1 - f) * s_prev * ds,
            "o": o * (1 - o) * s * dh,
        }
        dx_c = 0
        for k, w, b in zip(GATES, WEIGHTS, ("bg", "bi", "bf", "bo")):
            grads[w] += np.outer(d_in[k], tr.x_c[t])
            grads[b] += d_in[k]
            dx_c = dx_c + p[w].T @ d_in[k]
        dh_next = dx_c[x_dim:]
        dh_all[t], ds_all[t] = dh, ds
    return BPTT(param_grads=grads, dh=dh_all, ds=ds_all, dpre={}, dh0=dh_next, ds0=np.zeros(hidden))


def reference_backward():
    return lstm_ref.backward
