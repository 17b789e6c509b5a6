"""A plain two-layer MLP, no time: ``x (N, D)``, integer labels ``y (N,)``, ``W1 (D, H)``, ``b1 (H,)``,
``W2 (H, C)``, ``b2 (C,)``; tanh hidden layer (smooth: ReLU's kink can make a central difference straddle it),
softmax cross-entropy averaged over the batch. ``mlp_loss`` returns ``(loss, grads)``, as course code often
does.

Factories (keyword sizes and seed): ``correct``, ``buggy`` (the gradient of the mean forgets the 1/N), and
``make(bug=...)`` for any bug of :data:`BUGS`. The labels ``y`` are integers, so they are held fixed without
being named; ``x`` is left out with ``wrt`` because ``mlp_loss`` returns no ``dx``.
"""

from __future__ import annotations

import functools

import numpy as np

from gradcheck.adapters.functions import FunctionModel

BUGS = {
    "missing_mean": "the gradient of the batch mean forgets to divide by N",
    "tanh_prime": "the hidden layer's tanh' written as 1 - h instead of 1 - h**2",
}


def mlp_loss(x, y, W1, b1, W2, b2, *, bug=None):
    """-> (mean cross-entropy, {"W1", "b1", "W2", "b2": gradients})."""
    N = x.shape[0]
    h = np.tanh(x @ W1 + b1)
    scores = h @ W2 + b2
    scores = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(N), y]))
    dscores = p.copy()
    dscores[np.arange(N), y] -= 1
    if bug != "missing_mean":
        dscores /= N
    dh = dscores @ W2.T
    dz = dh * ((1 - h) if bug == "tanh_prime" else (1 - h**2))
    return loss, {"W1": x.T @ dz, "b1": dz.sum(axis=0), "W2": h.T @ dscores, "b2": dscores.sum(axis=0)}


def loss_only(**args):
    return mlp_loss(**args)[0]


def grads_only(*, bug=None, **args):
    return mlp_loss(**args, bug=bug)[1]


def make(*, bug=None, x_dim=4, hidden=5, batch=3, classes=3, seed=0) -> FunctionModel:
    if bug is not None and bug not in BUGS:
        raise ValueError(f"bug: expected None or one of {list(BUGS)}, got {bug!r}")
    rng = np.random.default_rng(seed)
    args = {
        "x": rng.normal(size=(batch, x_dim)),
        "y": rng.integers(classes, size=batch),
        "W1": rng.normal(scale=1 / np.sqrt(x_dim), size=(x_dim, hidden)),
        "b1": rng.normal(size=hidden),
        "W2": rng.normal(scale=1 / np.sqrt(hidden), size=(hidden, classes)),
        "b2": rng.normal(size=classes),
    }
    return FunctionModel(
        loss_only, functools.partial(grads_only, bug=bug), args, wrt=["W1", "b1", "W2", "b2"]
    )


def correct(*, x_dim=4, hidden=5, seed=0) -> FunctionModel:
    return make(x_dim=x_dim, hidden=hidden, seed=seed)


def buggy(*, x_dim=4, hidden=5, seed=0) -> FunctionModel:
    """dscores not divided by N: every block's gradient N times too large."""
    return make(bug="missing_mean", x_dim=x_dim, hidden=hidden, seed=seed)


class TwoLayerNet:
    """The same MLP as a model object, the shape of course code's classifiers: the weights in ``self.params``
    (a dict), ``loss(x, y) -> (loss, grads)`` with ``grads`` keyed like ``params``."""

    def __init__(self, x_dim=4, hidden=5, classes=3, *, seed=0, bug=None):
        rng = np.random.default_rng(seed)
        self.params = {
            "W1": rng.normal(scale=1 / np.sqrt(x_dim), size=(x_dim, hidden)),
            "b1": rng.normal(size=hidden),
            "W2": rng.normal(scale=1 / np.sqrt(hidden), size=(hidden, classes)),
            "b2": rng.normal(size=classes),
        }
        self.bug = bug

    def loss(self, x, y):
        return mlp_loss(x, y, **self.params, bug=self.bug)
