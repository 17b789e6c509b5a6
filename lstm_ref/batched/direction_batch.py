"""The screen's batch layout: the copies of several direction requests as the columns of ONE batch.

A request ``(kind, name, V, d)`` holds K directions ``V`` and steps ``d`` ``(S, K)`` (validated by
:mod:`.directions`): S*K copies, copy (s, k) moving block ``name`` by ``d[s, k] V_k`` (kind "param") or
setting the tap ``taps[name] = d[s, k] V_k`` ``(T, H)`` (kind "state"). Columns: the parameter copies first,
grouped by gate (they move from step 0), then the tap copies of all state requests sorted by the first step
their tap touches (they equal the unperturbed pass before it and join the batch at that step; T: never).

A weight direction's term ``V_k [x(t), h(t-1)]`` is computed for all steps at the unperturbed h(t-1)
(``inputs`` ``(T, H, S*K)``) and corrected per copy by ``V_k[:, X:] (h_k(t-1) - h(t-1))`` (``recurrent``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..model import WEIGHTS
from .kernels import gate_rows
from .unperturbed import Unperturbed


class ParamColumns(NamedTuple):
    """The columns of one parameter request. n = S*K copies, s-major (column ``s*K + k`` is copy (s, k))."""

    gi: int  # the gate the block belongs to
    rows: slice  # that gate's rows in the stacked (4H, N) layout
    cols: slice  # the request's columns
    d_scaled: np.ndarray | None  # (1, n): steps times the gate's activation pre-scaling (None for tangents)
    inputs: np.ndarray | None  # weights: (T, H, n), V_k [x(t), h(t-1)] at the unperturbed h(t-1)
    recurrent: (
        Callable[[np.ndarray], np.ndarray] | None
    )  # weights, real path: dh (H, n) -> V_k[:, X:] dh_k (H, n)
    bias_dir: np.ndarray | None  # biases: (H, n), V_k


class DirectionBatch:
    """The columns of several direction requests (see the module docstring). N columns, P parameter columns.

    ``n_copies`` = N; ``n_param`` = P; ``first_step`` ``(N,)``: the first step each column differs at;
    ``running[t]``: the columns running at step t are the first ``running[t]``; ``param_columns``: one
    :class:`ParamColumns` per parameter request, in column order; ``injections`` (tangents only): per gate,
    ``(rows, cols, inputs (T, H, n))`` with every parameter column of that gate; ``taps`` ``(N - P, T, H)``:
    the tap values (``d_k V_k``, or ``V_k`` for tangents) in column order, ``is_s`` ``(N - P,)``: tap on s
    (else on h).
    """

    def __init__(self, u: Unperturbed, requests, *, tangent: bool):
        self.sizes = [d.size for _, _, _, d in requests]  # d: (S, K), copies s-major
        params = [n for n, r in enumerate(requests) if r[0] == "param"]
        params.sort(key=lambda n: gate_rows(requests[n][1], u.H)[0])  # one column range per gate
        taps = [n for n, r in enumerate(requests) if r[0] != "param"]
        self.columns = {}  # request n -> the columns of its copies
        self.param_columns, start = [], 0
        for n in params:
            self.param_columns.append(self._param_columns(u, requests[n], start, tangent))
            self.columns[n] = np.arange(start, start + self.sizes[n])
            start += self.sizes[n]
        self.n_param = start
        if tangent:
            self.injections = _injections(self.param_columns, u.T, u.H)
        perm, tap_first = self._tap_columns(u, [requests[n] for n in taps], tangent)
        self.first_step = np.concatenate([np.zeros(self.n_param, np.intp), tap_first])
        self.running = np.searchsorted(self.first_step, np.arange(u.T), side="right")
        self.n_copies = self.first_step.size
        tap_pos = np.empty(perm.size, np.intp)
        tap_pos[perm] = np.arange(perm.size) + self.n_param
        start = 0
        for n in taps:
            self.columns[n] = tap_pos[start : start + self.sizes[n]]
            start += self.sizes[n]

    @staticmethod
    def _param_columns(u: Unperturbed, request, start: int, tangent: bool) -> ParamColumns:
        """The columns ``start ..`` of one parameter request."""
        X, dt = u.X, u.dt
        _, name, V, d = request
        gi, rows = gate_rows(name, u.H)
        S = d.shape[0]
        cols = slice(start, start + d.size)
        d_scaled = None if tangent else (d * u.gate_scale[rows.start]).reshape(1, -1)  # scaled like the rows
        if isinstance(V, tuple):  # rank-1: V_k x = A_k (B_k . x)
            A, B = V
            inputs = A.T[None, :, :] * (B @ u.x_c.T.astype(dt, copy=False)).T[:, None, :]  # (T, H, K)
            recurrent = None if tangent else RankOneRecurrent(A, B[:, X:], S)
        elif name in WEIGHTS:  # inputs[t] (H, S*K): column (s, k) is V_k [x(t), h(t-1)], unperturbed h
            inputs = np.ascontiguousarray(_xc_products(u, V, dt).transpose(0, 2, 1))
            recurrent = None if tangent else DenseRecurrent(V[:, :, X:])
        else:  # a bias: its direction, the same at every step
            bias_dir = np.tile(V.T, (1, S)) if S > 1 else V.T
            return ParamColumns(gi, rows, cols, d_scaled, None, None, bias_dir)
        if S > 1:
            inputs = np.tile(inputs, (1, 1, S))
        return ParamColumns(gi, rows, cols, d_scaled, inputs, recurrent, None)

    def _tap_columns(self, u: Unperturbed, requests, tangent: bool):
        """Sets ``taps`` and ``is_s`` for the state requests (in request order, then sorted by first step);
        returns ``(perm, first steps in column order)``, perm: column order -> request order."""
        T, H, dt = u.T, u.H, u.dt
        if not requests:
            self.taps, self.is_s = np.empty((0, T, H), dt), np.empty(0, bool)
            return np.empty(0, np.intp), np.empty(0, np.intp)
        taps = np.concatenate(
            [V if tangent else (d[:, :, None, None] * V).reshape(-1, T, H) for _, _, V, d in requests]
        ).astype(dt, copy=False)
        is_s = np.concatenate([np.full(d.size, name == "s") for _, name, _, d in requests])
        first = _first_steps(taps)
        perm = np.argsort(first, kind="stable")
        self.taps, self.is_s = taps[perm], is_s[perm]
        return perm, first[perm]

    def split(self, values: np.ndarray) -> list[np.ndarray]:
        """Per request, its copies' values from the batch's ``(N,)`` array."""
        return [values[self.columns[n]] for n in range(len(self.sizes))]

    def tap_rows(self, t: int, n1: int):
        """The taps at step t of the running tap columns, ``(H, m)`` for s and for h (None: none there)."""
        m = n1 - self.n_param
        if m <= 0:
            return None, None
        v = self.taps[:m, t].T
        s = self.is_s[:m]
        return (v * s if s.any() else None), (v * ~s if not s.all() else None)


def _injections(param_columns, T: int, H: int):
    """Per gate: ``(rows, cols, inputs (T, H, n))``, the tangent every parameter column of that gate receives
    at each step (biases: their direction, at every step)."""
    groups = []
    for pc in param_columns:
        inputs = pc.inputs if pc.inputs is not None else np.broadcast_to(pc.bias_dir, (T, *pc.bias_dir.shape))
        if groups and groups[-1][0] == pc.rows.start:
            groups[-1][2].append(inputs)
        else:
            groups.append((pc.rows.start, pc.cols.start, [inputs]))
    return [
        (slice(r0, r0 + H), slice(c0, c0 + sum(p.shape[2] for p in parts)), np.concatenate(parts, axis=2))
        for r0, c0, parts in groups
    ]


class DenseRecurrent:
    """``dh -> V_k[:, X:] dh_k`` for each column (s, k) of ``dh`` ``(H, S*K)``; ``w_h_dirs`` ``(K, H, H)``."""

    def __init__(self, w_h_dirs: np.ndarray):
        self.w_h_dirs = w_h_dirs

    def __call__(self, dh: np.ndarray) -> np.ndarray:
        K = self.w_h_dirs.shape[0]  # (S matvec stacks; a contiguous right operand: BLAS)
        return np.concatenate(
            [
                np.matmul(self.w_h_dirs, np.ascontiguousarray(dh[:, j : j + K].T)[:, :, None])[:, :, 0].T
                for j in range(0, dh.shape[1], K)
            ],
            axis=1,
        )


class RankOneRecurrent:
    """The same for rank-1 directions ``V_k = outer(A_k, B_k)``: ``A_k (B_k[X:] . dh_k)``."""

    def __init__(self, A: np.ndarray, B_h: np.ndarray, S: int):
        self.A_t = np.tile(A.T, (1, S))  # (H, S*K)
        self.B_h_t = np.tile(B_h.T, (1, S))  # (H, S*K)

    def __call__(self, dh: np.ndarray) -> np.ndarray:
        return self.A_t * np.einsum("hj,hj->j", self.B_h_t, dh)


def _first_steps(taps: np.ndarray) -> np.ndarray:
    """For tap values ``(K, T, ...)``: the first step each copy touches, ``(K,)`` (T when it touches none)."""
    K, T = taps.shape[0], taps.shape[1]
    touched = np.any(taps.reshape(K, T, -1) != 0, axis=2)
    return np.where(touched.any(axis=1), touched.argmax(axis=1), T)


def _xc_products(u: Unperturbed, V: np.ndarray, dt) -> np.ndarray:
    """``U[t, k] = V_k [x(t), h(t-1)]`` with the unperturbed h(t-1): ``(T, K, H)``, one GEMM per direction."""
    x_c = u.x_c if dt == u.dt else u.x_c.astype(dt)
    return np.moveaxis(np.matmul(V, x_c.T), 2, 0)  # K GEMMs (H, X+H) @ (X+H, T): 3x faster than one skinny
