"""Single parameter entries moved by K copies: where each move enters the stacked pre-activations, by what.

Moving ``W_*[r, c]`` by d adds ``d * x_c(t)[c]`` to row r of gate *'s pre-activation at every step t (a bias
entry adds d). In the stacked layout (:mod:`.kernels`) that is row ``gi*H + r`` of ``z`` ``(4H, K)``, one row
per copy. Shared by the real path (:mod:`.entries`) and the tangent path (:mod:`.tangents`).
"""

from __future__ import annotations

import numpy as np

from ..model import WEIGHTS
from .kernels import gate_rows


class ParamEntries:
    """K copies, copy k moving entry ``flat_idx[k]`` of one block by ``deltas[k]``; every array is ``(K,)``.

    ``gi``: the block's gate; ``r``, ``c``: the entry's row and column (``c`` = -1 for a bias); ``row``: its
    row in the stacked ``(4H, K)`` layout; ``d_scaled``: the deltas times that row's activation pre-scaling;
    ``in_x``, ``in_h``: masks of the copies moving an input column and a recurrent column; ``cx``, ``ch``:
    those copies' columns within x and within h; ``kh``: the indices of the recurrent-column copies.
    """

    def __init__(self, unperturbed, name: str, flat_idx: np.ndarray, deltas: np.ndarray):
        H, X = unperturbed.H, unperturbed.X
        self.gi = gate_rows(name, H)[0]
        if name in WEIGHTS:
            self.r, self.c = flat_idx // (X + H), flat_idx % (X + H)
        else:
            self.r, self.c = flat_idx, np.full(flat_idx.shape, -1)
        self.row = self.gi * H + self.r
        self.d_scaled = deltas * unperturbed.gate_scale[self.row]
        self.in_x, self.in_h = (self.c >= 0) & (self.c < X), self.c >= X
        self.cx, self.ch = self.c[self.in_x], self.c[self.in_h] - X
        self.kh = np.flatnonzero(self.in_h)

    def coef(self, unperturbed, t: int, h_prev=None) -> np.ndarray:
        """What each copy's delta multiplies at step t, ``(K,)``: x(t)[c] (input column), h_k(t-1)[c - X]
        (recurrent column) or 1 (bias). ``h_prev`` ``(H, K)``: the copies' h(t-1), or None: the unperturbed
        h(t-1)."""
        out = np.ones(self.c.shape, unperturbed.dt if h_prev is None else h_prev.dtype)
        out[self.in_x] = unperturbed.xs[t, self.cx]
        out[self.in_h] = unperturbed.h_prev[t, self.ch] if h_prev is None else h_prev[self.ch, self.kh]
        return out

    def subset(self, sel: np.ndarray) -> ParamEntries:
        """The copies ``sel`` (a boolean mask ``(K,)``)."""
        out = object.__new__(ParamEntries)
        out.gi = self.gi
        for k in ("r", "c", "row", "d_scaled", "in_x", "in_h"):
            setattr(out, k, getattr(self, k)[sel])
        out.cx = self.c[sel & self.in_x]
        out.ch = self.ch[sel[self.in_h]]
        out.kh = np.flatnonzero(out.in_h)
        return out
