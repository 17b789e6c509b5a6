"""The report files of ``gradcheck run``: where they go, and writing them atomically.

By default every run writes ``reports/gradcheck.json``, ``reports/gradcheck.xml`` (JUnit) and
``reports/gradcheck.md`` relative to the current directory. ``--report-dir DIR`` moves the three, ``--no-reports``
drops them, and ``--json/--junit/--markdown PATH`` put one file at an explicit path (written even with
``--no-reports``: an explicit path is always honoured).

Paths are checked before the model is checked (a bad path is a usage error and nothing is written). Every file is
first written in full to a temporary file beside its target, and only when all of them are complete are they
renamed into place (``os.replace`` is atomic on POSIX and Windows): a run that fails or is killed leaves each
previous report intact, or no report, never a truncated one.
"""

from __future__ import annotations

import os
import tempfile

from ..errors import UsageError

DEFAULT_DIR = "reports"
FILE_NAMES = {
    "json": "gradcheck.json",
    "junit": "gradcheck.xml",
    "markdown": "gradcheck.md",
    "html": "gradcheck.html",
}
FLAGS = {"json": "--json", "junit": "--junit", "markdown": "--markdown", "html": "--html"}


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
    """Raise :class:`UsageError` unless ``path`` can be created or replaced as a regular file."""
    if not str(path).strip():
        raise UsageError(f"{flag}: empty path")
    if os.path.isdir(path):
        raise UsageError(f"{flag}: {path!r} is a directory, expected a file path")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):  # the nearest existing ancestor must be a writable directory
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    if not os.path.isdir(parent):
        raise UsageError(f"{flag}: cannot write {path!r}: {parent!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: cannot write {path!r}: directory {parent!r} is not writable")


def write_atomic(path: str, data: str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never a truncated file."""
    write_all({path: data})


def write_all(files: dict[str, str]) -> None:
    """Write every ``path: text`` pair: all temporaries first, then the renames, so a failure while writing
    leaves every previous file intact. Temporaries are removed on any error (a SIGKILL may leave a hidden
    ``.NAME.*.tmp`` beside the target, never a partial target)."""
    pending: list[tuple[str, str]] = []
    try:
        for path, data in files.items():
            pending.append((_write_temp(path, data), path))
        for tmp, path in pending:
            os.replace(tmp, path)
    finally:
        for tmp, _ in pending:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _write_temp(path: str, data: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
