"""The reference LSTM (:mod:`lstm_ref`) as a model that follows the checker's protocol."""

from __future__ import annotations

import numpy as np

import lstm_ref
from lstm_ref import batched
from lstm_ref.model import LOSSES, VARIANTS, step_loss_grads

from ..errors import ProtocolError


class ReferenceLSTM:
    """The write-up's LSTM on one random problem, drawn from ``seed``.

    Parameters: independent uniform(-0.1, 0.1) draws per block (:func:`lstm_ref.init_params`); inputs ``xs``
    ``(steps, x_dim)`` uniform(0, 1) like the write-up's; targets uniform(-0.5, 0.5), ``(steps,)`` for
    ``loss="seed"`` or ``(steps, hidden)`` for ``loss="full"``; nonzero initial states h0, s0 ``(hidden,)``
    (``nonzero_init=False`` for zeros). All of it comes from ``np.random.default_rng(seed)``.
    States: ``"h"`` and ``"s"``, each ``(steps, hidden)``. Accepts complex parameters (complex step).
    Batched (:meth:`loss_batch`, :meth:`loss_directions_many`): K perturbed copies in one structured pass
    (:mod:`lstm_ref.batched`), equal to one-at-a-time :meth:`loss` calls to rounding.
    """

    capabilities = frozenset({"complex", "batched"})

    def __init__(
        self,
        x_dim: int = 50,
        hidden: int = 100,
        steps: int = 4,
        *,
        variant: str = "simple",
        loss: str = "full",
        seed: int = 0,
        dtype=np.float64,
        nonzero_init: bool = True,
        backward=None,
    ):
        for name, v in (("x_dim", x_dim), ("hidden", hidden), ("steps", steps)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ProtocolError(f"{name}: expected an integer >= 1, got {v!r}")
        if variant not in VARIANTS:
            raise ProtocolError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
        if loss not in LOSSES:
            raise ProtocolError(f"loss: expected one of {list(LOSSES)}, got {loss!r}")
        self.x_dim, self.hidden, self.steps = int(x_dim), int(hidden), int(steps)
        self.variant, self.loss_kind, self.seed = variant, loss, seed
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        params = lstm_ref.init_params(self.x_dim, self.hidden, seed=rng.integers(2**63))
        self._params = {k: v.astype(self.dtype) for k, v in params.items()}
        self.xs = rng.uniform(0.0, 1.0, size=(self.steps, self.x_dim)).astype(self.dtype)
        yshape = (self.steps,) if loss == "seed" else (self.steps, self.hidden)
        self.ys = rng.uniform(-0.5, 0.5, size=yshape).astype(self.dtype)
        h0 = rng.uniform(-0.5, 0.5, size=self.hidden).astype(self.dtype)
        s0 = rng.uniform(-0.5, 0.5, size=self.hidden).astype(self.dtype)
        self.h0, self.s0 = (h0, s0) if nonzero_init else (None, None)
        # ``backward``: a replacement for lstm_ref.backward with the same signature (the selftest's mutants).
        self._backward = lstm_ref.backward if backward is None else backward
        self._batch_cache = batched.BaseCache()  # the unperturbed pass, shared by the chunks of one check

    def __repr__(self) -> str:
        return (
            f"ReferenceLSTM(x_dim={self.x_dim}, hidden={self.hidden}, steps={self.steps}, "
            f"variant={self.variant!r}, loss={self.loss_kind!r}, seed={self.seed})"
        )

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._params.items()}

    def _problem(self) -> dict:
        """The problem's keywords of lstm_ref's losses: variant, loss, initial states."""
        return {"variant": self.variant, "loss": self.loss_kind, "h0": self.h0, "s0": self.s0}

    def loss(self, params, taps=None):
        return lstm_ref.total_loss(params, self.xs, self.ys, taps=taps, **self._problem())

    def gradients(self, params):
        tr = lstm_ref.forward(params, self.xs, variant=self.variant, h0=self.h0, s0=self.s0)
        dl_dh = step_loss_grads(tr.h, np.asarray(self.ys, dtype=tr.h.dtype), self.loss_kind)
        bp = self._backward(params, tr, dl_dh)
        return bp.param_grads, {"h": bp.dh, "s": bp.ds}

    def loss_batch(self, params, kind, name, flat_idx, deltas):
        """L for K single-entry perturbations (the "batched" capability, see :mod:`gradcheck.protocol`)."""
        return batched.entry_losses(
            params, self.xs, self.ys, kind=kind, name=name, flat_idx=flat_idx, deltas=deltas,
            cache=self._batch_cache, **self._problem(),
        )  # fmt: skip

    def loss_directions_many(self, params, requests):
        """The losses of every direction request in one batched pass (the whole screen in one call; see
        gradcheck.protocol)."""
        return batched.direction_losses_many(
            params, self.xs, self.ys, requests=requests, cache=self._batch_cache, **self._problem()
        )
