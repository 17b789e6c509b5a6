"""gradcheck: check hand-written gradients, including dL(t)/dh(t) and dL(t)/ds(t) at every time step.

    >>> import gradcheck
    >>> report = gradcheck.check(gradcheck.ReferenceLSTM(x_dim=3, hidden=2, steps=3))
    >>> report.passed
    True
"""

from .check import check
from .finite_diff import METHODS
from .protocol import ModelError, ProtocolError
from .reference import ReferenceLSTM
from .report import Report, Row

__all__ = ["METHODS", "ModelError", "ProtocolError", "ReferenceLSTM", "Report", "Row", "check"]
__version__ = "0.1.0"
