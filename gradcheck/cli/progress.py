"""The progress line of ``gradcheck run``: one line rewritten with ``\\r`` on stderr, only when stderr is a
terminal and ``--quiet`` is not given; erased before anything else is printed, so nothing of it reaches files or
pipes.

The checker tells :meth:`Progress.start` what a full check will cost before it begins (its loss evaluations and
estimated seconds): the line then shows the share done and an estimate of the time left (without a total, when
screening, the count and the rate), and when the estimate exceeds the budget of ``--mode auto`` a note says so
up front and suggests the screen.
"""

from __future__ import annotations

import time

from ..output.text import is_terminal


def progress_enabled(stream, *, quiet: bool) -> bool:
    """Progress only on a terminal (never into a file or a pipe) and not with ``--quiet``."""
    return not quiet and is_terminal(stream)


class Progress:
    """``progress(n)`` callback for :func:`gradcheck.check`: counts loss evaluations, redraws at most 5x/s.

    ``total``: the evaluations expected (None: unknown); :meth:`start` sets it (the checker calls it).
    ``notes``: where the up-front note on a long full check goes (default: ``stream``).
    """

    def __init__(
        self, stream, *, total: int | None = None, interval: float = 0.2, clock=time.monotonic, notes=None
    ):
        self.stream, self.interval, self.clock = stream, interval, clock
        self.notes = stream if notes is None else notes
        self.total = total
        self.count, self.began, self.last, self.shown = 0, clock(), clock(), False
        self.first: tuple[float, int] | None = (
            None  # (time, count) at the first call: the rate is measured from it
        )

    def start(self, evaluations: int | None, seconds: float | None, budget: float) -> None:
        """Called by the checker once before the evaluations: a full check's total and estimated seconds (None
        when screening); a note up front when the estimate exceeds ``budget``."""
        self.total = evaluations
        if seconds is not None and seconds > budget:
            self.notes.write(
                f"gradcheck: this full check is {evaluations:,} loss evaluations, about {_duration(seconds)} "
                f"(more than the {_duration(budget)} budget of --mode auto); --mode screen checks every row in "
                "a few hundred evaluations and localises what fails\n"
            )
            self.notes.flush()

    def __call__(self, n: int = 1) -> None:
        self.count += n
        now = self.clock()
        if self.first is None:  # the evaluations start (reading the model came before)
            self.first = (now, self.count)
        if now - self.last >= self.interval:
            self.last = now
            self.stream.write(f"\r\033[K{self.line(now - self.began)}")
            self.stream.flush()
            self.shown = True

    def line(self, elapsed: float) -> str:
        """The text of the line after ``elapsed`` seconds."""
        done, total = self.count, self.total
        if not total or done > total:  # unknown, or past it (a failing row's diagnosis re-checks entries)
            rate = done / elapsed if elapsed > 0 else 0.0
            return f"gradcheck: {done:,} loss evaluations, {_duration(elapsed)} ({rate:,.0f}/s)"
        t0, n0 = self.first or (self.began, 0)
        took = self.began + elapsed - t0  # seconds since the evaluations started
        left = took * (total - done) / (done - n0) if done > n0 and took >= 1.0 else None
        eta = "" if left is None else f", about {_duration(left)} left"
        return (
            f"gradcheck: {done:,} of {total:,} loss evaluations ({100 * done / total:.0f}%), "
            f"{_duration(elapsed)}{eta}"
        )

    def close(self) -> None:
        """Erase the line (so the table that follows starts clean)."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
