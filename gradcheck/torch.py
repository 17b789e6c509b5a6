"""Check PyTorch ``autograd.Function``s and ``nn.Module``s: ``import gradcheck.torch as gt``.

    gt.check_function(fn, inputs, *, time_axis=None, split=None, loss=None, **options) -> Report
    gt.check_module(module, inputs, *, loss=None, time_axis=None, split=None, **options) -> Report
    gt.Model(fn_or_module, inputs, ...)   # a protocol model: for `gradcheck run --model`, the pytest plugin

Rows per floating input (``x[t=3]`` along a ``time_axis``), per module parameter (``weight_ih_l0``, or its parts
with ``split``); analytic gradients from the function's own backward, numeric ones from finite differences of
its forward in float64. What exactly is compared: :mod:`gradcheck.adapters.torch_model`; a walk-through:
docs/torch.md. Needs PyTorch (``pip install 'gradcheck[torch]'``); ``import gradcheck`` never imports it.
"""

try:
    import torch as _torch  # noqa: F401  (absolute: the real PyTorch)
except ImportError as exc:  # a clear message instead of a failure deep inside the adapter
    raise ImportError(
        "gradcheck.torch needs PyTorch, which is not installed: pip install 'gradcheck[torch]' "
        "(torch==2.13.0, the CPU build)"
    ) from exc

from .adapters.torch_model import Model, check_function, check_module

__all__ = ["Model", "check_function", "check_module"]
