"""The command line (``gradcheck``, ``python -m gradcheck``): ``main(argv) -> int``."""

from .app import main

__all__ = ["main"]
