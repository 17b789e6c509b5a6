"""The report files of ``gradcheck run``: where they go, and writing them atomically.

By default every run writes ``reports/gradcheck.json``, ``reports/gradcheck.xml`` (JUnit) and
``reports/gradcheck.md`` relative to the current directory. ``--report-dir DIR`` moves the three, ``--no-reports``
drops them, and ``--json/--junit/--markdown PATH`` put one file at an explicit path (written even with
``--no-reports``: an explicit path is always honoured).

Paths are checked before the model is checked (a bad path is a usage error and nothing is written). What a path
names decides how its report is written:

- a regular file, or nothing yet: written in full to a temporary file beside it, and only when every report is
  complete are the temporaries renamed into place (``os.replace`` is atomic on POSIX and Windows): a run that
  fails, is interrupted or is killed leaves each previous report intact, or no report, never a truncated one.
  A file that is replaced keeps its permission bits.
- a symbolic link (to a file, or dangling): followed to its final target, which is replaced (or created) as
  above, the temporary beside it; the link stays a link.
- a FIFO or a character device (``/dev/null``, a terminal): written directly, never renamed over, after every
  temporary is complete and before the renames. A FIFO must have a reader when the reports are written
  (opened without blocking: no reader is an error naming the path, never a hang).
- a directory, a socket, a block device: a usage error, before any checking.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import tempfile
import threading
from contextlib import contextmanager

from ..errors import UsageError

DEFAULT_DIR = "reports"
FILE_NAMES = {
    "json": "gradcheck.json",
    "junit": "gradcheck.xml",
    "markdown": "gradcheck.md",
    "html": "gradcheck.html",
}
FLAGS = {"json": "--json", "junit": "--junit", "markdown": "--markdown", "html": "--html"}
_HELD = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))


def report_paths(
    *,
    report_dir: str | None = DEFAULT_DIR,
    no_reports: bool = False,
    json: str | None = None,
    junit: str | None = None,
    markdown: str | None = None,
    html: str | None = None,
) -> dict[str, str]:
    """``{"json"|"junit"|"markdown"|"html": path}`` for the files to write, after checking that each can be
    written."""
    explicit = {"json": json, "junit": junit, "markdown": markdown, "html": html}
    if report_dir is not None and not str(report_dir).strip():
        raise UsageError("--report-dir: empty path")
    out = {}
    for kind, name in FILE_NAMES.items():
        if explicit[kind] is not None:
            out[kind] = explicit[kind]
        elif not no_reports:
            out[kind] = os.path.join(report_dir or DEFAULT_DIR, name)
    seen: dict[str, str] = {}
    for kind, path in out.items():
        check_path(path, FLAGS[kind] if explicit[kind] is not None else "--report-dir")
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"{FLAGS[kind]} and {FLAGS[seen[real]]} both write {path!r}")
        seen[real] = kind
    return out


def check_path(path: str, flag: str) -> None:
    """Raise :class:`UsageError` unless a report can be written at ``path`` (see the module doc)."""
    if not str(path).strip():
        raise UsageError(f"{flag}: empty path")
    try:
        mode = os.stat(path).st_mode  # symlinks followed
    except (FileNotFoundError, NotADirectoryError):  # nothing there yet (or a dangling link: its target)
        mode = None
    except OSError as exc:  # a symlink loop, a path through a file, no permission
        raise UsageError(f"{flag}: cannot write {path!r}: {exc.strerror}") from None
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
            if not os.access(path, os.W_OK):
                raise UsageError(f"{flag}: cannot write {path!r}: permission denied")
            return
        if stat.S_ISDIR(mode):
            raise UsageError(f"{flag}: {path!r} is a directory, expected a file path")
        raise UsageError(
            f"{flag}: {path!r} is {_kind(mode)}, expected a regular file, a FIFO or a character device"
        )
    parent = os.path.dirname(os.path.realpath(path))
    while not os.path.exists(parent):  # the nearest existing ancestor must be a writable directory
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    if not os.path.isdir(parent):
        raise UsageError(f"{flag}: cannot write {path!r}: {parent!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: cannot write {path!r}: directory {parent!r} is not writable")


def _kind(mode: int) -> str:
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def write_all(files: dict[str, str]) -> None:
    """Write every ``path: text`` pair (see the module doc): all temporaries first, then the FIFOs and devices,
    then the renames, so a failure while writing leaves every previous file intact. Temporaries are removed on
    any error (a SIGKILL may leave a hidden ``.NAME.*.tmp`` beside the target, never a partial target); a
    SIGINT or SIGTERM during the renames is handled once they are done (all are renamed, or none)."""
    regular: list[tuple[str, str]] = []
    streams: list[tuple[str, str]] = []
    for path, data in files.items():
        if _is_stream(path):
            streams.append((path, data))
        else:
            regular.append((os.path.realpath(path), data))  # a link's final target; the link stays
    pending: list[tuple[str, str]] = []
    try:
        for target, data in regular:
            pending.append((_write_temp(target, data), target))
        for path, data in streams:
            _write_stream(path, data)
        with _signals_held():
            for tmp, target in pending:
                os.replace(tmp, target)
    finally:
        for tmp, _ in pending:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _is_stream(path: str) -> bool:
    """A FIFO or a character device (written directly); anything else that is not a regular file raises."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return True
    if not stat.S_ISREG(mode):
        raise UsageError(f"cannot write a report to {path!r}: it is {_kind(mode)}")
    return False


def _write_stream(path: str, data: str) -> None:
    """Write to a FIFO or a device as it is (no temporary, no rename). A FIFO without a reader is an error."""
    try:  # O_NONBLOCK: opening a FIFO nobody reads fails (ENXIO) instead of waiting forever
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise UsageError(
                f"cannot write a report to {path!r}: no process is reading this FIFO (start the reader first)"
            ) from None
        raise
    try:
        os.set_blocking(fd, True)  # then wait for a slow reader like any writer
        fh = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
    except BaseException:
        os.close(fd)
        raise
    try:
        with fh:
            fh.write(data)
    except OSError as exc:  # a full device, a reader gone: say where
        raise OSError(exc.errno, exc.strerror, path) from None


@contextmanager
def _signals_held():
    """In the main thread, SIGINT and SIGTERM arriving in the block are handled when it ends (by the handlers
    that were in place): the renames are all done, or none. Elsewhere (signals are the main thread's) nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    old = {}
    for sig in _HELD:
        if signal.getsignal(sig) is not None:  # None: a handler not set from Python, left alone
            old[sig] = signal.signal(sig, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in held[:1]:
            handler = old[sig]
            if callable(handler):
                handler(sig, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(sig)


def _write_temp(path: str, data: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode(path))
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _mode(path: str) -> int:
    """The permission bits of the file being replaced, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
