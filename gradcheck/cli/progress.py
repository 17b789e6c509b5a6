"""The progress line of ``gradcheck run``: one line rewritten with ``\\r`` on stderr, only when stderr is a
terminal and ``--quiet`` is not given; erased before anything else is printed, so nothing of it reaches files or
pipes."""

from __future__ import annotations

import time

from ..output.text import is_terminal


def progress_enabled(stream, *, quiet: bool) -> bool:
    """Progress only on a terminal (never into a file or a pipe) and not with ``--quiet``."""
    return not quiet and is_terminal(stream)


class Progress:
    """``progress(n)`` callback for :func:`gradcheck.check`: counts loss evaluations, redraws at most 5x/s."""

    def __init__(self, stream, *, interval: float = 0.2, clock=time.monotonic):
        self.stream, self.interval, self.clock = stream, interval, clock
        self.count, self.start, self.last, self.shown = 0, clock(), clock(), False

    def __call__(self, n: int = 1) -> None:
        self.count += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            elapsed = now - self.start
            rate = self.count / elapsed if elapsed > 0 else 0.0
            self.stream.write(
                f"\r\033[Kgradcheck: {self.count:,} loss evaluations, {elapsed:.1f} s ({rate:,.0f}/s)"
            )
            self.stream.flush()
            self.shown = True

    def close(self) -> None:
        """Erase the line (so the table that follows starts clean)."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False
