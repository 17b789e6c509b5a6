"""The progress line of ``gradcheck run``: one line rewritten with ``\\r`` on stderr, only when stderr is a
terminal and ``--quiet`` is not given; erased before anything else is printed, so nothing of it reaches files or
pipes.

With a total (the loss evaluations the check will make, see :func:`expected_evaluations`) the line shows the
share done and an estimate of the time left; without one, the count and the rate.
"""

from __future__ import annotations

import time

from ..output.text import is_terminal


def progress_enabled(stream, *, quiet: bool) -> bool:
    """Progress only on a terminal (never into a file or a pipe) and not with ``--quiet``."""
    return not quiet and is_terminal(stream)


class Progress:
    """``progress(n)`` callback for :func:`gradcheck.check`: counts loss evaluations, redraws at most 5x/s.

    ``total``: the evaluations expected (None: unknown); :meth:`expect` sets it later (a checker that knows it).
    """

    def __init__(self, stream, *, total: int | None = None, interval: float = 0.2, clock=time.monotonic):
        self.stream, self.interval, self.clock = stream, interval, clock
        self.total = total
        self.count, self.start, self.last, self.shown = 0, clock(), clock(), False
        self.first: tuple[float, int] | None = (
            None  # (time, count) at the first call: the rate is measured from it
        )

    def expect(self, total: int | None) -> None:
        self.total = total

    def __call__(self, n: int = 1) -> None:
        self.count += n
        now = self.clock()
        if self.first is None:  # the evaluations start (reading the model came before)
            self.first = (now, self.count)
        if now - self.last >= self.interval:
            self.last = now
            self.stream.write(f"\r\033[K{self.line(now - self.start)}")
            self.stream.flush()
            self.shown = True

    def line(self, elapsed: float) -> str:
        """The text of the line after ``elapsed`` seconds."""
        done, total = self.count, self.total
        if not total or done > total:  # unknown, or past it (a failing row's diagnosis re-checks entries)
            rate = done / elapsed if elapsed > 0 else 0.0
            return f"gradcheck: {done:,} loss evaluations, {_duration(elapsed)} ({rate:,.0f}/s)"
        t0, n0 = self.first or (self.start, 0)
        took = self.start + elapsed - t0  # seconds since the evaluations started
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


def expected_evaluations(model, *, method: str, mode: str, sample: int | None) -> int | None:
    """The loss evaluations of a full check's entry-by-entry pass (a failing row's diagnosis adds a few), when
    they are known before the check reads the model: for the reference LSTM (parameters and the states h and s,
    each ``(steps, hidden)``, one row per step). None for a screen (how many rows are re-checked in full is known
    only as it goes) and for other models (their states are known only from their gradients).
    """
    from ..finite_diff import EVALUATIONS, resolve_method
    from ..lstm.reference import ReferenceLSTM

    if mode != "full" or type(model) is not ReferenceLSTM:
        return None
    sizes = [p.size for p in model.parameters().values()] + [model.hidden] * (2 * model.steps)
    if sample is not None:
        sizes = [min(sample, n) for n in sizes]
    resolved = resolve_method(method, model.dtype, model.capabilities, mode)
    return sum(sizes) * EVALUATIONS[resolved]
