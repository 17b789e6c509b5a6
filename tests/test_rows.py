"""Rows beyond whole blocks: one row per index along a parameter's time axis, one row per part of a split block,
rows that are zero by construction, and rows with non-finite values."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import ProtocolError, check


class TinyRNN:
    """h(t) = tanh(W h(t-1) + x(t)), L = sum_t ||h(t)||^2 / 2; x is a parameter with a time axis.

    ``bug="no_carry"`` drops dL/dh(t) carried back from step t+1 (the classic dropped carry): dL/dx(T-1) stays
    right, dL/dx(t < T-1) is wrong. ``layout="batch_major"`` stores x as (N, T, D) with time on axis 1.
    """

    def __init__(self, T=4, D=3, N=2, bug=None, layout="time_major", split=False, seed=0):
        rng = np.random.default_rng(seed)
        self.T, self.D, self.N, self.bug, self.layout = T, D, N, bug, layout
        x = rng.normal(size=(T, N, D))
        self.x = x if layout == "time_major" else x.transpose(1, 0, 2).copy()
        self.W = rng.normal(scale=0.5, size=(D, D))
        self.time_axes = {"x": 0 if layout == "time_major" else 1}
        if split:
            self.splits = {"W": (0, ("a", "b", "c"))}

    def parameters(self):
        return {"x": self.x, "W": self.W}

    def _x(self, x):
        return x if self.layout == "time_major" else np.swapaxes(x, 0, 1)

    def loss(self, params, taps=None):
        x, W = self._x(params["x"]), params["W"]
        h = np.zeros((self.N, self.D), dtype=np.result_type(x, W))
        total = 0.0
        for t in range(self.T):
            h = np.tanh(h @ W.T + x[t])
            total = total + (h * h).sum() / 2
        return total

    def gradients(self, params):
        x, W = self._x(params["x"]), params["W"]
        hs, h = [], np.zeros((self.N, self.D))
        for t in range(self.T):
            h = np.tanh(h @ W.T + x[t])
            hs.append(h)
        dx, dW, carry = np.zeros_like(x), np.zeros_like(W), np.zeros((self.N, self.D))
        for t in reversed(range(self.T)):
            dh = hs[t] + (0.0 if self.bug == "no_carry" else carry)
            dz = dh * (1 - hs[t] ** 2)
            dx[t] = dz
            prev = hs[t - 1] if t > 0 else np.zeros((self.N, self.D))
            dW += dz.T @ prev
            carry = dz @ W
        return {"x": self._x(dx), "W": dW}, {}


@pytest.mark.parametrize("layout", ["time_major", "batch_major"])
def test_time_axis_rows_pass_for_a_correct_backward(layout):
    report = check(TinyRNN(layout=layout))
    assert report.passed
    labels = [r.label for r in report.rows]
    assert labels == ["x[t=0]", "x[t=1]", "x[t=2]", "x[t=3]", "W"]
    assert all(r.worst_index and len(r.worst_index) == 2 for r in report.rows[:4])  # (N, D) inside one step


@pytest.mark.parametrize("layout", ["time_major", "batch_major"])
def test_dropped_carry_is_localised_in_time_through_the_inputs(layout):
    report = check(TinyRNN(layout=layout, bug="no_carry"))
    rows = {r.label: r for r in report.rows}
    assert rows["x[t=3]"].passed and not rows["x[t=2]"].passed and not rows["x[t=0]"].passed
    assert report.first_bad_step == {"name": "x", "t": 2}
    assert "first divergence going back in time: x at t=2" in report.verdict()
    assert rows["x[t=2]"].diagnosis["verdict"] == "wrong gradient"


def test_split_block_rows_name_the_part_and_a_local_index():
    good = check(TinyRNN(split=True))
    assert [r.label for r in good.rows][-3:] == ["W:a", "W:b", "W:c"] and good.passed
    assert sum(r.checked for r in good.rows if r.name == "W") == 9

    class OneWrongEntry(TinyRNN):
        def gradients(self, params):
            pg, sg = super().gradients(params)
            pg["W"] = pg["W"].copy()
            pg["W"][2, 1] += 1e-3  # row 2 of W is part "c" (split along axis 0 in 3 parts of 1 row)
            return pg, sg

    bad = check(OneWrongEntry(split=True))
    rows = {r.label: r for r in bad.rows}
    assert rows["W:a"].passed and rows["W:b"].passed and not rows["W:c"].passed
    assert rows["W:c"].worst_index == [0, 1]  # row 0, column 1 inside the part
    assert "parameters: W:c" in bad.verdict()


def test_split_and_time_axis_in_the_screen_mode_too():
    report = check(TinyRNN(bug="no_carry", split=True), mode="screen")
    assert report.first_bad_step == {"name": "x", "t": 2}
    assert [r.label for r in report.rows][-3:] == ["W:a", "W:b", "W:c"]


@pytest.mark.parametrize(
    "declared, message",
    [
        ({"time_axes": {"x": 3}}, r"time_axes\['x'\]: axis 3 is out of range"),
        ({"time_axes": {"y": 0}}, r"time_axes\['y'\]: no such parameter"),
        ({"splits": {"W": (0, ["a", "b"])}}, r"splits\['W'\]: axis 0 has length 3, which 2 parts"),
        ({"splits": {"W": (0, ["a", "a", "b"])}}, r"distinct part names"),
        (
            {"splits": {"x": (0, ["a", "b", "c", "d"])}, "time_axes": {"x": 0}},
            "either a time axis or a split",
        ),
    ],
)
def test_bad_declarations_are_protocol_errors(declared, message):
    model = TinyRNN()
    for k, v in declared.items():
        setattr(model, k, v)
    with pytest.raises(ProtocolError, match=message):
        check(model)


class Masked:
    """L = sum(m * w^2): entries where the mask is 0 get a gradient of exactly 0 (zero by construction)."""

    def __init__(self, bug=False):
        self.w = np.array([0.3, -0.7, 1.1, 0.2])
        self.mask = np.array([1.0, 0.0, 1.0, 0.0])
        self.bug = bug

    def parameters(self):
        return {"w": self.w, "unused": np.array([0.5, -0.5])}

    def loss(self, params, taps=None):
        return float(self.mask @ params["w"] ** 2)

    def gradients(self, params):
        g = 2 * self.mask * params["w"]
        return {"w": g, "unused": np.full(2, 1e-3) if self.bug else np.zeros(2)}, {}


def test_a_row_zero_by_construction_passes_without_a_resolution_caveat():
    report = check(Masked())
    rows = {r.label: r for r in report.rows}
    assert report.passed and rows["unused"].zero and not rows["w"].zero
    assert "cannot resolve" not in report.verdict() and "1 zero by construction" in report.verdict()


def test_a_nonzero_gradient_where_the_loss_does_not_move_fails():
    report = check(Masked(bug=True))
    assert not {r.label: r for r in report.rows}["unused"].passed


class NonFinite:
    """A quadratic whose analytic gradient or loss can be made non-finite."""

    def __init__(self, where):
        self.where = where
        self.w = np.array([0.5, -1.0, 2.0])

    def parameters(self):
        return {"w": self.w}

    def loss(self, params, taps=None):
        w = params["w"]
        if self.where == "loss" or (self.where == "perturbed" and w[2] != self.w[2]):
            return float("nan")
        return float(w @ w)

    def gradients(self, params):
        g = 2 * params["w"]
        if self.where == "analytic":
            g = g.copy()
            g[1] = np.inf
        return {"w": g}, {}


@pytest.mark.parametrize(
    "where, words",
    [
        ("analytic", "the analytic gradient is inf at (1,)"),
        ("perturbed", "the numerical derivative is nan at (2,)"),
        ("loss", "the loss itself is nan"),
    ],
)
def test_non_finite_rows_fail_naming_the_side_and_the_place_with_no_step_advice(where, words):
    report = check(NonFinite(where))
    (row,) = report.rows
    assert not row.passed and row.note.startswith("non-finite") and words in row.note
    assert row.diagnosis is None
