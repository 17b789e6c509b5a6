"""The write-up's demo: train the reference LSTM on four inputs and targets with plain SGD.

100 memory cells, x_dim 50, T = 4, targets y = [-0.5, 0.2, 0.1, -0.5], loss (h(t)[0] - y(t))^2, learning rate
0.1. The original initialises every block from a freshly re-seeded legacy generator (``np.random.seed(0)``
before each block), so its four weight matrices are identical; ``init="writeup"`` reproduces that.
``init="independent"`` draws the blocks one after another from a single ``np.random.seed(seed)`` (no re-seed:
every block differs; this is the published "independent draws" run, iteration 99 loss 8.907e-07), and
``init="rng"`` uses :func:`lstm_ref.init_params` (``np.random.default_rng(seed)``). The inputs are
``np.random.random(50)`` four times from the legacy stream, continuing after the parameter draws (for
"writeup" and "rng": draws 100..299 of seed 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .model import PARAM_KEYS, WEIGHTS, forward, init_params, loss_and_grads

X_DIM, HIDDEN = 50, 100
TARGETS = (-0.5, 0.2, 0.1, -0.5)
LEARNING_RATE = 0.1
INITS = ("writeup", "independent", "rng")


def _shape(k: str, x_dim: int, hidden: int) -> tuple[int, ...]:
    return (hidden, x_dim + hidden) if k in WEIGHTS else (hidden,)


def writeup_params(
    x_dim: int = X_DIM, hidden: int = HIDDEN, *, reseed: bool = True, seed: int = 0
) -> tuple[dict[str, np.ndarray], np.random.RandomState]:
    """The original's initialisation: each block is ``np.random.seed(0); np.random.rand(*shape) * 0.2 - 0.1``.

    ``reseed=False``: one seed before the first block only, so the blocks are independent draws. Uses a
    private legacy ``RandomState`` (the same stream as ``np.random.seed``, without touching the global one)
    and returns it positioned just after the last draw: the demo's inputs continue from there.
    """
    params = {}
    rs = np.random.RandomState(seed)
    for k in PARAM_KEYS:
        if reseed:
            rs = np.random.RandomState(seed)
        params[k] = rs.rand(*_shape(k, x_dim, hidden)) * 0.2 - 0.1
    return params, rs


@dataclass
class Iteration:
    iteration: int
    predictions: np.ndarray  # (T,): h(t)[0] before this iteration's update
    loss: float

    def line(self) -> str:
        preds = ", ".join(f"{p: .5f}" for p in self.predictions)
        return f"iter {self.iteration:2d}: y_pred = [{preds}], loss: {self.loss:.3e}"


def train(
    *, iterations: int = 100, init: str = "writeup", variant: str = "simple", seed: int = 0, grad_fn=None
) -> Iterator[Iteration]:
    """Yield one :class:`Iteration` per SGD step, exactly as the write-up's demo loop prints them.

    ``grad_fn`` (default :func:`lstm_ref.loss_and_grads`) may be replaced to train with another backward pass
    (used to show that a wrong gradient can train to a lower loss).
    """
    if init not in INITS:
        raise ValueError(f"init: expected one of {list(INITS)}, got {init!r}")
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations: expected an integer >= 1, got {iterations!r}")
    grad_fn = loss_and_grads if grad_fn is None else grad_fn
    params, rs = writeup_params(seed=seed, reseed=(init != "independent"))
    if init == "rng":
        params = init_params(X_DIM, HIDDEN, seed=seed)  # rs stays where the write-up's inputs start
    xs = np.stack([rs.random_sample(X_DIM) for _ in TARGETS])
    ys = np.array(TARGETS)
    for it in range(iterations):
        L, grads, _, _ = grad_fn(params, xs, ys, variant=variant, loss="seed")
        preds = forward(params, xs, variant=variant).h[:, 0].copy()
        yield Iteration(it, preds, float(L))
        params = {k: params[k] - LEARNING_RATE * grads[k] for k in PARAM_KEYS}
