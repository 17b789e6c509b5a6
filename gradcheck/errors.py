"""What can go wrong, as exception classes, and the exit code of each (the command line's contract).

- :class:`ProtocolError`: the object does not follow the model protocol, or a check option is bad (exit 2).
  :class:`StepError` is the one about a finite-difference step the dtype cannot resolve.
- :class:`ModelError`: the model raised while being checked (exit 3); ``stage`` says what the checker was doing.
- :class:`UsageError`: a bad command line, configuration value or report path (exit 2).

A failing row is not an exception: it is a :class:`gradcheck.Report` that did not pass (exit 1).
"""

from __future__ import annotations

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_MODEL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
INTERRUPTED = "gradcheck: interrupted"  # the one line of an interrupted command (exit 130)


class ProtocolError(ValueError):
    """The object does not follow the model protocol, or a check option is bad (a usage error: exit code 2)."""


class StepError(ProtocolError):
    """The finite-difference step cannot be used at this dtype and magnitude (a usage error: exit code 2)."""


class ModelError(RuntimeError):
    """The model raised while being checked (exit code 3). ``stage`` says what the checker was doing."""

    def __init__(self, stage: str, exc: BaseException):
        self.stage, self.exc = stage, exc
        super().__init__(f"the model raised during {stage}: {type(exc).__name__}: {exc}")


class UsageError(ValueError):
    """A bad command line, configuration value or report path: exit code 2, a one-line message, nothing
    written."""


def exit_code(exc: BaseException) -> int:
    """The command line's exit code for an exception that ended a command."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, ModelError):
        return EXIT_MODEL
    return EXIT_USAGE
