"""Reference NumPy LSTM (the "Simple LSTM" write-up's model) with analytic backpropagation through time."""

from .model import (
    BPTT,
    PARAM_KEYS,
    Trace,
    backward,
    forward,
    init_params,
    loss_and_bptt,
    loss_and_grads,
    total_loss,
)

__all__ = [
    "BPTT",
    "PARAM_KEYS",
    "Trace",
    "backward",
    "forward",
    "init_params",
    "loss_and_bptt",
    "loss_and_grads",
    "total_loss",
]
