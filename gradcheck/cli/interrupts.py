"""Ctrl-C and SIGTERM in the command line: the first stops the run, a second ends the process at once.

:func:`handled` is installed by :func:`gradcheck.cli.app.main` in the main thread (elsewhere it does nothing) and
restores the previous handlers and wakeup fd on exit, so ``main(argv)`` called from Python leaves nothing behind.

- The first SIGINT or SIGTERM raises KeyboardInterrupt in the main thread. The check unwinds without waiting for
  work in flight (queued chunks cancelled, worker processes killed, a dask client's futures cancelled; see
  :mod:`gradcheck.fast.executors`), no report is written (reports are written only after the check, and a
  temporary is removed on the way out), and ``main`` prints ``gradcheck: interrupted`` and exits 130.
- A watcher thread wakes on every signal (:func:`signal.set_wakeup_fd`), even while the main thread sits in a long
  numpy call that Python cannot interrupt. Every :data:`POKE` seconds until ``main`` has caught the
  KeyboardInterrupt it raises another (C code calling back into Python, an extension module being imported, can
  swallow one). At a second signal, or :data:`GRACE` seconds after the first if the main thread has not finished
  by then, it kills the worker processes and ends the process with ``os._exit(130)``.

Called as the program (``main()`` without ``argv``: the ``gradcheck`` command, ``python -m gradcheck``), an
interrupted run ends with ``os._exit(130)`` once the message is out, so no thread left computing a chunk can
delay the exit; ``main(argv)`` returns 130.
"""

from __future__ import annotations

import _thread
import logging
import os
import select
import signal
import sys
import threading
import time
from contextlib import contextmanager

from ..errors import EXIT_INTERRUPTED, INTERRUPTED
from ..fast import executors

SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE = 1.0  # seconds the main thread has, after the first signal, to stop by itself
POKE = 0.2  # seconds between two KeyboardInterrupts while it has not stopped
MESSAGE = INTERRUPTED
_STOP = b"\0"  # written to the wakeup pipe to end the watcher (0 is no signal)


class Interrupts:
    """The state of one :func:`handled` block. ``program``: end the process (``os._exit``) instead of returning
    once interrupted."""

    def __init__(self, *, program: bool, grace: float = GRACE):
        self.program, self.grace = program, grace
        self._raised = False  # the Python handler ran (and raised KeyboardInterrupt)
        self._stopping = False  # main caught it: no more KeyboardInterrupt
        self._seen = 0  # SIGINT/SIGTERM read from the wakeup fd by the watcher (its own pokes aside)
        self._poked = 0  # SIGINT bytes the watcher caused itself (interrupt_main), not read yet
        self._saying = threading.Lock()
        self._said = False
        self._rfd = self._wfd = -1
        self._watcher: threading.Thread | None = None
        self._old_unraisable = sys.unraisablehook

    @property
    def received(self) -> bool:
        """A SIGINT or SIGTERM arrived in this block."""
        return self._raised or self._seen > 0

    # ---- in the main thread
    def handler(self, signum, frame) -> None:
        """The Python-level handler: raises KeyboardInterrupt until ``main`` has caught one (C code that calls
        back into Python, an extension module being imported, may swallow it: the watcher then calls again).
        The program, once interrupted, says one line and nothing else: what libraries log or threads raise while
        the run comes apart (a dask client closed mid-fetch) is not shown."""
        if self._stopping:
            return
        if not self._raised:
            self._raised = True
            if self.program:
                logging.disable(logging.CRITICAL)
                threading.excepthook = _silent
        raise KeyboardInterrupt

    def interrupted(self) -> int:
        """Say so once; in the program, end the process now (nothing is pending: reports come after the check)."""
        self._stopping = True
        self._say()
        if self.program:
            self._end()
        return EXIT_INTERRUPTED

    def unraisable(self, info) -> None:
        """``sys.unraisablehook``: our KeyboardInterrupt raised where Python ignores exceptions (a weakref
        callback, ``__del__``) cannot stop the run; end it now, quietly. Anything else: the previous hook."""
        if isinstance(info.exc_value, KeyboardInterrupt) and self._raised:
            self._say()
            self._end()
        self._old_unraisable(info)

    def ending(self, signum, frame) -> None:
        """The program's handler once ``main`` is done: the process is ending anyway; end it now."""
        self.interrupted()

    # ---- the watcher thread
    def _watch(self) -> None:
        if hasattr(signal, "pthread_sigmask"):  # let the main thread receive the signals where it can
            signal.pthread_sigmask(signal.SIG_BLOCK, set(SIGNALS))
        deadline = poke = None
        while True:
            now = time.monotonic()
            timeout = None if deadline is None else max(0.0, min(deadline, poke) - now)
            ready, _, _ = select.select([self._rfd], [], [], timeout)
            now = time.monotonic()
            if not ready and now >= deadline:  # the grace is over: the main thread is stuck in a call
                self._say()
                self._end()
            if not ready:  # the KeyboardInterrupt may have been swallowed: raise another
                poke = now + POKE
                if not self._stopping:
                    self._poked += 1
                    _thread.interrupt_main(signal.SIGINT)
                continue
            data = os.read(self._rfd, 256)
            n = sum(b in SIGNALS for b in data)
            own = min(n, self._poked)
            self._poked -= own
            self._seen += n - own
            if not data or _STOP in data:
                return
            if self._seen >= 2:
                self._say()
                self._end()
            if deadline is None and self._seen:
                deadline, poke = now + self.grace, now + POKE

    # ---- either thread
    def _say(self) -> None:
        """The one line on stderr, written once: by the main thread through ``sys.stderr``; by the watcher with
        ``os.write`` (no lock that the stuck main thread may hold), erasing a progress line on a terminal."""
        main = threading.current_thread() is threading.main_thread()
        held = self._saying.acquire(timeout=-1 if main else 0.5)  # not forever for a stuck print
        try:
            if self._said:
                return
            self._said = True
            if main:
                print(MESSAGE, file=sys.stderr, flush=True)
            else:
                os.write(2, f"{chr(13) + chr(27) + '[K' if _isatty(2) else ''}{MESSAGE}\n".encode())
        except (OSError, ValueError):
            pass
        finally:
            if held:
                self._saying.release()

    def _end(self) -> None:
        """Kill our worker processes and children, then exit 130 without cleanup (nothing is pending)."""
        executors.kill_workers()
        for pid in _children():
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        for stream in (sys.stdout, sys.stderr):
            try:
                if threading.current_thread() is threading.main_thread():
                    stream.flush()
            except Exception:
                pass
        os._exit(EXIT_INTERRUPTED)


@contextmanager
def handled(*, program: bool = False, grace: float = GRACE):
    """Yield an :class:`Interrupts`; within the block SIGINT and SIGTERM behave as the module doc says. Outside
    the main thread (where handlers cannot be set) nothing is installed."""
    state = Interrupts(program=program, grace=grace)
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    watch = os.name == "posix"  # the watcher reads a pipe (a wakeup fd elsewhere must be a socket)
    if watch:
        state._rfd, state._wfd = os.pipe()
        os.set_blocking(state._wfd, False)
        old_fd = signal.set_wakeup_fd(state._wfd, warn_on_full_buffer=False)
    old = {}
    try:
        sys.unraisablehook = state.unraisable
        for sig in SIGNALS:
            old[sig] = signal.signal(sig, state.handler)
        if watch:
            state._watcher = threading.Thread(target=state._watch, name="gradcheck-signals", daemon=True)
            state._watcher.start()
        yield state
    finally:
        if program:  # the process ends now: a signal from here on ends it at once (no traceback)
            for sig in old:
                signal.signal(sig, state.ending)
        else:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            sys.unraisablehook = state._old_unraisable
            if watch:
                signal.set_wakeup_fd(old_fd)
                _stop(state)


def _stop(state: Interrupts) -> None:
    try:
        os.write(state._wfd, _STOP)
    except OSError:
        pass
    if state._watcher is not None:
        state._watcher.join(1.0)
    os.close(state._wfd)
    if state._watcher is None or not state._watcher.is_alive():
        os.close(state._rfd)


def _silent(args) -> None:
    """``threading.excepthook`` of an interrupted program."""


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _children() -> list[int]:
    """The direct children of this process (Linux: /proc), e.g. a worker forked but not yet registered."""
    me, out = os.getpid(), []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and int(fields[1]) == me:
            out.append(int(name))
    return out
