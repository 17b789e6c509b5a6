"""Custom ``torch.autograd.Function`` cells of our own, unrolled over time in Python, each bug beside its twin.

The LSTM cell is the CS231n step in torch: ``x (N, D)``, ``h, c (N, H)``, ``Wx (D, 4H)``, ``Wh (H, 4H)``,
``b (4H,)`` with the 4H columns in the gate order i, f, o, g; :func:`lstm_seq` runs it over ``x (T, N, D)`` and
returns every step's ``h`` stacked ``(T, N, H)`` (so the last step receives no cell-state gradient from
outside: a dropped carry first shows at ``x[t=T-2]``). The Elman cell (``tanh(x Wx + h Wh + b)``, ``Wh (H, H)``
square) carries the one bug that needs a square weight: a transposed gradient. ``bug=None`` is the correct
twin of every bug in :data:`BUGS`.

Factories for ``gradcheck run --model examples.torch_cells:FACTORY`` (keyword sizes and seed): ``correct``,
``buggy`` (the dropped carry), ``make(bug=...)``; :func:`problem` gives the inputs.
"""

from __future__ import annotations

import functools

import torch

GATES = ["i", "f", "o", "g"]
# bug -> (cell, what it does, the rows it must fail and where the error first shows; see tests/test_torch_bugs.py)
BUGS = {
    "dropped_carry": ("lstm", "dc = dh * o * tanh'(c) where dc = dc_next + ...: the carry from t+1 dropped"),
    "wrong_transpose": ("rnn", "dWh = da^T h, the transpose of h^T da (Wh is square, so the shape is right)"),
    "sign_entry": ("lstm", "dWx[0, 0] negated (what a wrong index in a hand-written loop does)"),
    "batch_reduction": ("lstm", "db = da[0]: written for one example, no sum over the batch"),
    "wrong_input": ("lstm", "the gradients for h_prev and c_prev returned in each other's place"),
    "scaled_block": ("lstm", "the o gate's block of dWh scaled by 1.01"),
    "saved_inplace": (
        "lstm",
        "the gates kept in a workspace the next step overwrites (saved as ctx.gates, so autograd's "
        "version counter never sees it)",
    ),
    "wrong_activation": ("lstm", "the g gate's tanh' written as 1 - g instead of 1 - g**2"),
}


class LSTMCell(torch.autograd.Function):
    """One LSTM step with a hand-written backward; ``bug`` (a name of :data:`BUGS` or None) and ``work`` (the
    shared workspace of the ``saved_inplace`` bug) are not tensors to differentiate."""

    @staticmethod
    def forward(ctx, x, h, c, Wx, Wh, b, bug=None, work=None):
        H = h.shape[1]
        a = x @ Wx + h @ Wh + b
        i, f, o = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H : 2 * H]), torch.sigmoid(a[:, 2 * H : 3 * H])
        g = torch.tanh(a[:, 3 * H :])
        c_next = f * c + i * g
        tanh_c = torch.tanh(c_next)
        gates = torch.cat([i, f, o, g], dim=1)
        if bug == "saved_inplace":
            work.copy_(gates)  # every step writes its gates into the same buffer ...
            gates = work  # ... and keeps that buffer, not its own gates
        ctx.bug, ctx.gates = bug, gates
        ctx.save_for_backward(x, h, c, Wx, Wh, tanh_c)
        return o * tanh_c, c_next

    @staticmethod
    def backward(ctx, dh_next, dc_next):
        x, h, c, Wx, Wh, tanh_c = ctx.saved_tensors
        bug, H = ctx.bug, h.shape[1]
        i, f, o, g = (ctx.gates[:, k * H : (k + 1) * H] for k in range(4))
        dc = dh_next * o * (1 - tanh_c**2)
        if bug != "dropped_carry":
            dc = dc + dc_next
        dg = dc * i * ((1 - g) if bug == "wrong_activation" else (1 - g**2))
        da = torch.cat([dc * g * i * (1 - i), dc * c * f * (1 - f), dh_next * tanh_c * o * (1 - o), dg], 1)
        dWx, dWh = x.T @ da, h.T @ da
        db = da[0] if bug == "batch_reduction" else da.sum(0)
        if bug == "sign_entry":
            dWx[0, 0] = -dWx[0, 0]
        if bug == "scaled_block":
            dWh[:, 2 * H : 3 * H] *= 1.01
        dh, dc_prev = da @ Wh.T, dc * f
        if bug == "wrong_input":
            dh, dc_prev = dc_prev, dh
        return da @ Wx.T, dh, dc_prev, dWx, dWh, db, None, None


class RNNCell(torch.autograd.Function):
    """One Elman step ``h_next = tanh(x Wx + h Wh + b)`` with a hand-written backward."""

    @staticmethod
    def forward(ctx, x, h, Wx, Wh, b, bug=None):
        h_next = torch.tanh(x @ Wx + h @ Wh + b)
        ctx.bug = bug
        ctx.save_for_backward(x, h, Wx, Wh, h_next)
        return h_next

    @staticmethod
    def backward(ctx, dh_next):
        x, h, Wx, Wh, h_next = ctx.saved_tensors
        da = dh_next * (1 - h_next**2)
        dWh = da.T @ h if ctx.bug == "wrong_transpose" else h.T @ da
        return da @ Wx.T, da @ Wh.T, x.T @ da, dWh, da.sum(0), None


def lstm_seq(x, h0, c0, Wx, Wh, b, bug=None):
    """The LSTM cell over ``x (T, N, D)`` from ``(h0, c0)``: every step's ``h``, stacked ``(T, N, H)``."""
    h, c, hs = h0, c0, []
    work = torch.empty(h0.shape[0], Wx.shape[1], dtype=x.dtype) if bug == "saved_inplace" else None
    for t in range(x.shape[0]):
        h, c = LSTMCell.apply(x[t], h, c, Wx, Wh, b, bug, work)
        hs.append(h)
    return torch.stack(hs)


def rnn_seq(x, h0, Wx, Wh, b, bug=None):
    """The Elman cell over ``x (T, N, D)`` from ``h0``: every step's ``h``, stacked ``(T, N, H)``."""
    h, hs = h0, []
    for t in range(x.shape[0]):
        h = RNNCell.apply(x[t], h, Wx, Wh, b, bug)
        hs.append(h)
    return torch.stack(hs)


def problem(cell="lstm", x_dim=3, hidden=4, steps=4, batch=2, seed=0, dtype=torch.float64) -> dict:
    """Inputs of :func:`lstm_seq` (``cell="lstm"``) or :func:`rnn_seq` (``"rnn"``), drawn from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    G = 4 if cell == "lstm" else 1

    def draw(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)

    out = {"x": draw(steps, batch, x_dim), "h0": draw(batch, hidden, scale=0.5)}
    if cell == "lstm":
        out["c0"] = draw(batch, hidden, scale=0.5)
    out |= {
        "Wx": draw(x_dim, G * hidden, scale=0.5),
        "Wh": draw(hidden, G * hidden, scale=0.5),
        "b": draw(G * hidden, scale=0.5),
    }
    return out


def function(bug=None):
    """The sequence function carrying ``bug`` (None: the correct LSTM)."""
    cell = BUGS[bug][0] if bug else "lstm"
    return functools.partial(lstm_seq if cell == "lstm" else rnn_seq, bug=bug)


def make(bug=None, x_dim=3, hidden=4, steps=4, seed=0):
    """A ``gradcheck.torch.Model`` of the sequence function with ``bug``: rows per step of ``x``, per gate of
    the LSTM's weights (``Wx:i``, ...)."""
    import gradcheck.torch as gt

    cell = BUGS[bug][0] if bug else "lstm"
    split = {"Wx": (1, GATES), "Wh": (1, GATES), "b": (0, GATES)} if cell == "lstm" else None
    inputs = problem(cell, x_dim, hidden, steps, seed=seed)
    return gt.Model(function(bug), inputs, time_axis={"x": 0}, split=split, seed=seed)


def correct(x_dim=3, hidden=4, steps=4, seed=0):
    return make(None, x_dim, hidden, steps, seed)


def buggy(x_dim=3, hidden=4, steps=4, seed=0):
    return make("dropped_carry", x_dim, hidden, steps, seed)
