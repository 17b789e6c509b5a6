"""gradcheck: check hand-written gradients, including dL(t)/dh(t) and dL(t)/ds(t) at every time step.

    >>> import gradcheck
    >>> report = gradcheck.check(gradcheck.ReferenceLSTM(x_dim=3, hidden=2, steps=3))
    >>> report.passed
    True

The names below are imported on first use (PEP 562), so ``import gradcheck.pytest_plugin`` (loaded by every
pytest run once the package is installed) does not import numpy.
"""

import importlib

_LAZY = {
    "check": ".checker",
    "METHODS": ".options",
    "ModelError": ".errors",
    "ProtocolError": ".errors",
    "ReferenceLSTM": ".lstm.reference",
    "Report": ".report",
    "Row": ".report",
    "check_function": ".adapters.functions",
    "FunctionModel": ".adapters.functions",
    "StepModel": ".adapters.steploop",
    "check_steps": ".adapters.steploop",
}

__all__ = [
    "METHODS",
    "FunctionModel",
    "ModelError",
    "ProtocolError",
    "ReferenceLSTM",
    "Report",
    "Row",
    "StepModel",
    "check",
    "check_function",
    "check_steps",
]
__version__ = "0.1.0"


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
