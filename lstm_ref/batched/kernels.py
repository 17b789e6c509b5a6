"""The cell and activation kernels every batch shares, on arrays that hold one perturbed copy per COLUMN.

Layout: pre-activations and activations ``(4H, K)``, rows stacked by gate in the order g, i, f, o (H rows
each, ``gate_rows``); states ``(H, K)``. Every gate is a contiguous block of rows, so the cell's elementwise
work runs on contiguous memory (2.5x faster than on the column slices of ``(K, 4H)``).

Scaled pre-activations: the stacked rows are multiplied by ``gate_scale`` (-2 for g, -1 for i, f, o; exact in
binary), so ``z_scaled = -2z`` (g) or ``-z`` (i, f, o) and one ``exp`` over all 4H rows gives
``R = 1/(1 + exp(z_scaled))``: ``sigmoid(z)`` for i, f, o and ``sigmoid(2z)`` for g, whence
``tanh(z) = 2 R - 1``.

Scratch: :func:`scratch` hands each thread reused ``(4H, K)`` and ``(H, K)`` arrays (fresh large allocations
page-fault); :class:`Recurrence` adds ``W_h h(t-1)`` and ``W_x x(t) + b`` for all copies in one GEMM.
"""

from __future__ import annotations

import threading

import numpy as np

from ..model import BIASES, WEIGHTS

AUG_MAX_BYTES = 4 * 2**20  # the per-thread copy [W_h, zx(t)] is kept up to this size (then: GEMM, then add)

_THREAD = threading.local()  # per-thread scratch (``bufs``) and augmented recurrent matrix (``aug``)


def gate_scale(H: int, dt) -> np.ndarray:
    """The activation pre-scaling of the stacked rows, ``(4H,)``: -2 for g's rows, -1 for i's, f's and o's."""
    scale = np.full(4 * H, -1.0, dt)
    scale[:H] = -2.0
    return scale


def gate_rows(name: str, H: int) -> tuple[int, slice]:
    """``(gate index, its rows in the stacked (4H, ...) layout)`` of a weight or bias block name."""
    gi = (WEIGHTS if name in WEIGHTS else BIASES).index(name)
    return gi, slice(gi * H, (gi + 1) * H)


def _logistic(z_scaled: np.ndarray) -> None:
    """In place, real: ``R = 1/(1 + exp(z_scaled))``."""
    with np.errstate(over="ignore"):  # exp(+large) = inf -> R = 0: the exact limit
        np.exp(z_scaled, out=z_scaled)
    z_scaled += 1.0
    np.divide(1.0, z_scaled, out=z_scaled)  # (np.reciprocal is ~2x slower here)


def _tanh_of_half(z_scaled: np.ndarray) -> None:
    """In place, complex: ``tanh(-z_scaled/2)`` (exp would overflow to inf+nan*j): tanh(z) for g's rows and
    tanh(z/2) = 2 sigmoid(z) - 1 for i's, f's and o's."""
    np.multiply(z_scaled, -0.5, out=z_scaled)
    np.tanh(z_scaled, out=z_scaled)


def activate(z_scaled: np.ndarray, H: int) -> np.ndarray:
    """In place: scaled pre-activations ``(4H, K)`` -> activations ``[g, i, f, o]`` ``(4H, K)``."""
    if z_scaled.dtype.kind == "c":
        _tanh_of_half(z_scaled)
        z_scaled[H:] += 1.0
        z_scaled[H:] *= 0.5
        return z_scaled
    _logistic(z_scaled)
    g = z_scaled[:H]
    g *= 2.0
    g -= 1.0
    return z_scaled


def activate_gate(z_scaled: np.ndarray, is_g: bool) -> np.ndarray:
    """In place: one gate's scaled pre-activations (any shape) -> its activation (g: tanh, else sigmoid)."""
    if z_scaled.dtype.kind == "c":
        _tanh_of_half(z_scaled)
        if not is_g:
            z_scaled += 1.0
            z_scaled *= 0.5
        return z_scaled
    _logistic(z_scaled)
    if is_g:
        z_scaled *= 2.0
        z_scaled -= 1.0
    return z_scaled


def h_of(s, o, variant: str):
    """h(t) from s(t) and o(t): ``s*o`` (variant "simple") or ``tanh(s)*o`` ("tanh"), any shapes."""
    return s * o if variant == "simple" else np.tanh(s) * o


def cell(acts: np.ndarray, h: np.ndarray, s: np.ndarray, tmp: np.ndarray, variant: str, s_tap=None) -> None:
    """In place, one step of every copy: from the activations ``acts`` ``(4H, K)`` (overwritten) and s(t-1) in
    ``s`` ``(H, K)``: ``s`` = s(t) (plus ``s_tap`` ``(H, K)`` when given), ``h`` ``(H, K)`` = h(t); ``tmp``:
    scratch ``(H, K)``."""
    H = h.shape[0]
    g, i, f, o = acts[:H], acts[H : 2 * H], acts[2 * H : 3 * H], acts[3 * H :]
    s *= f  # s = g*i + s(t-1)*f
    g *= i
    s += g
    if s_tap is not None:  # the tap on s(t) enters before h(t) reads it
        s += s_tap
    if variant == "simple":
        np.multiply(s, o, out=h)  # h = s*o
    else:
        np.tanh(s, out=tmp)
        np.multiply(tmp, o, out=h)  # h = tanh(s)*o


def step_loss(h: np.ndarray, y, loss: str, tmp=None) -> np.ndarray:
    """l(t) of each copy, ``(K,)``: ``h`` ``(H, K)``, ``y`` ``(H,)`` (loss "full") or a scalar ("seed");
    ``tmp``: scratch like ``h``."""
    if loss == "seed":
        return (h[0] - y) ** 2
    e = np.subtract(h, np.asarray(y)[:, None], out=tmp)
    return np.einsum("ij,ij->j", e, e)


def scratch(K: int, H: int, dt):
    """This thread's reused arrays ``(z (4H, K), h, s, tmp (H, K))`` (their contents are left over).

    ``h`` is the first H rows of a ``(H+1, K)`` array whose last row is 1, for :class:`Recurrence`."""
    key = (K, H, np.dtype(dt))
    cached = getattr(_THREAD, "bufs", None)
    if cached is None or cached[0] != key:
        h_ones = np.empty((H + 1, K), dt)
        h_ones[H] = 1.0
        arrays = (np.empty((4 * H, K), dt), h_ones[:H], np.empty((H, K), dt), np.empty((H, K), dt))
        cached = (key, arrays, h_ones)
        _THREAD.bufs = cached
    return cached[1]


class Recurrence:
    """``z_scaled = W_h h(t-1) + (W_x x(t) + b)`` (scaled) for every copy, as ONE GEMM when W_h is small: a
    last column holding ``zx_scaled[t]`` times the ones row under :func:`scratch`'s ``h`` adds the input part
    inside the product (a separate add costs ~10% of a step at hidden 128). The ``(4H, H+1)`` copy is per
    thread.

    ``w_h_scaled`` ``(4H, H)``: the unperturbed pass's scaled recurrent part, in the batch's dtype."""

    def __init__(self, unperturbed, dt):
        self.unperturbed, self.H = unperturbed, unperturbed.H
        self.w_h_scaled = unperturbed.w_h_scaled.astype(dt, copy=False)
        if self.w_h_scaled.nbytes > AUG_MAX_BYTES:
            self.w_aug = None
            return
        cached = getattr(_THREAD, "aug", None)
        if cached is None or cached[0] is not unperturbed or cached[1].dtype != dt:
            w_aug = np.empty((4 * self.H, self.H + 1), dt)
            w_aug[:, :-1] = self.w_h_scaled
            cached = (unperturbed, w_aug)
            _THREAD.aug = cached
        self.w_aug = cached[1]

    def __call__(self, n: int, z: np.ndarray, t: int) -> None:
        """``z[:, :n]`` for the first n copies, whose h(t-1) is in the first n columns of this thread's
        :func:`scratch` ``h``."""
        h_ones = _THREAD.bufs[2]
        if self.w_aug is None:
            np.matmul(self.w_h_scaled, h_ones[: self.H, :n], out=z[:, :n])
            z[:, :n] += self.unperturbed.zx_scaled[t][:, None]
            return
        self.w_aug[:, -1] = self.unperturbed.zx_scaled[t]
        np.matmul(self.w_aug, h_ones[:, :n], out=z[:, :n])
