"""The node-class shape of the "Simple LSTM" write-up: a parameter object holding ``wg, wi, wf, wo (H, X+H)``,
``bg, bi, bf, bo (H,)`` and their ``*_diff`` accumulators, and a node per step with
``bottom_data_is(x, s_prev, h_prev)`` (forward: ``xc = [x, h_prev]``, ``s = g*i + s_prev*f``, ``h = s*o``) and
``top_diff_is(top_diff_h, top_diff_s)`` (backward: into the accumulators and ``bottom_diff_x``,
``bottom_diff_s``, ``bottom_diff_h``). Our own code in that shape, not the write-up's.

The glue a user writes for the step loop is :func:`step_forward` / :func:`step_backward` below (a fresh
parameter object per step, so that each step's ``*_diff`` is that step's gradient). Factories (keyword sizes
and seed): ``correct_steps`` / ``buggy_steps`` (the famous wrong "fix": ``top_diff_s`` dropped from ``ds``),
and ``make_steps(bug=...)`` for any bug of :data:`BUGS`.
"""

from __future__ import annotations

import functools

import numpy as np

from gradcheck.adapters.steploop import StepModel

NAMES = ["wg", "wi", "wf", "wo", "bg", "bi", "bf", "bo"]
BUGS = {
    "dropped_ds": "ds = o * top_diff_h: the gradient from the step above (top_diff_s) dropped: the wrong fix",
    "forget_reads_s": "df = s * ds: the forget gate's gradient reads s(t) where s(t-1) belongs",
}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class LstmParam:
    """Weights ``(H, X+H)``, biases ``(H,)`` drawn uniform(-0.1, 0.1) from ``seed``, and zeroed ``*_diff``."""

    def __init__(self, mem_cell_ct, x_dim, seed=0):
        rng = np.random.default_rng(seed)
        self.mem_cell_ct, self.x_dim = mem_cell_ct, x_dim
        for n in NAMES:
            shape = (mem_cell_ct, x_dim + mem_cell_ct) if n[0] == "w" else (mem_cell_ct,)
            setattr(self, n, rng.uniform(-0.1, 0.1, shape))
            setattr(self, f"{n}_diff", np.zeros(shape))


class LstmState:
    def __init__(self, mem_cell_ct, x_dim):
        for n in ("g", "i", "f", "o", "s", "h", "bottom_diff_h", "bottom_diff_s"):
            setattr(self, n, np.zeros(mem_cell_ct))
        self.bottom_diff_x = np.zeros(x_dim)


class LstmNode:
    def __init__(self, param, state, *, bug=None):
        self.param, self.state, self.bug = param, state, bug

    def bottom_data_is(self, x, s_prev, h_prev):
        p, st = self.param, self.state
        self.s_prev, self.h_prev = s_prev, h_prev
        self.xc = np.hstack([x, h_prev])
        st.g = np.tanh(p.wg @ self.xc + p.bg)
        st.i = sigmoid(p.wi @ self.xc + p.bi)
        st.f = sigmoid(p.wf @ self.xc + p.bf)
        st.o = sigmoid(p.wo @ self.xc + p.bo)
        st.s = st.g * st.i + s_prev * st.f
        st.h = st.s * st.o

    def top_diff_is(self, top_diff_h, top_diff_s):
        p, st = self.param, self.state
        ds = st.o * top_diff_h if self.bug == "dropped_ds" else st.o * top_diff_h + top_diff_s
        do = st.s * top_diff_h
        di = st.g * ds
        dg = st.i * ds
        df = (st.s if self.bug == "forget_reads_s" else self.s_prev) * ds
        d_in = {
            "i": di * st.i * (1 - st.i),
            "f": df * st.f * (1 - st.f),
            "o": do * st.o * (1 - st.o),
            "g": dg * (1 - st.g**2),
        }
        dxc = np.zeros_like(self.xc)
        for gate, d in d_in.items():
            getattr(p, f"w{gate}_diff")[:] += np.outer(d, self.xc)
            getattr(p, f"b{gate}_diff")[:] += d
            dxc += getattr(p, f"w{gate}").T @ d
        st.bottom_diff_s = ds * st.f
        st.bottom_diff_x = dxc[: p.x_dim]
        st.bottom_diff_h = dxc[p.x_dim :]


# The glue: the step loop's convention around the node classes (states in the order s, h).
def step_forward(x, s_prev, h_prev, *arrays, bug=None):
    param = LstmParam(len(s_prev), len(x))
    for n, a in zip(NAMES, arrays):
        setattr(param, n, a)
    node = LstmNode(param, LstmState(len(s_prev), len(x)), bug=bug)
    node.bottom_data_is(x, s_prev, h_prev)
    return node.state.s, node.state.h, node


def step_backward(ds, dh, node):
    node.top_diff_is(dh, ds)
    st = node.state
    return (
        st.bottom_diff_x,
        st.bottom_diff_s,
        st.bottom_diff_h,
        *(getattr(node.param, f"{n}_diff") for n in NAMES),
    )


def make_steps(*, bug=None, x_dim=3, hidden=4, steps=5, seed=0) -> StepModel:
    """The node classes in the step loop: inputs (steps, x_dim), states s and h, eight parameter blocks."""
    if bug is not None and bug not in BUGS:
        raise ValueError(f"bug: expected None or one of {list(BUGS)}, got {bug!r}")
    rng = np.random.default_rng(seed)
    param = LstmParam(hidden, x_dim, seed=rng.integers(2**63))
    xs = rng.uniform(0.0, 1.0, size=(steps, x_dim))
    init = {"s": rng.uniform(-0.5, 0.5, hidden), "h": rng.uniform(-0.5, 0.5, hidden)}
    forward = step_forward if bug is None else functools.partial(step_forward, bug=bug)
    return StepModel(
        forward,
        step_backward,
        inputs=xs,
        states=init,
        params={n: getattr(param, n) for n in NAMES},
        seed=seed,
    )


def correct_steps(*, x_dim=3, hidden=4, steps=5, seed=0) -> StepModel:
    return make_steps(x_dim=x_dim, hidden=hidden, steps=steps, seed=seed)


def buggy_steps(*, x_dim=3, hidden=4, steps=5, seed=0) -> StepModel:
    """The famous wrong "fix": ds without top_diff_s."""
    return make_steps(bug="dropped_ds", x_dim=x_dim, hidden=hidden, steps=steps, seed=seed)
