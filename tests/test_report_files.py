"""Report paths of every kind: a regular file is replaced atomically; a symlink is followed and its target replaced,
the link kept; a FIFO or a character device is written directly, never renamed over; a directory, a socket or a
block device is a usage error (exit 2) before any checking. Device nodes are made in a temporary directory (as
root), never in /dev."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import stat
import threading

import pytest

from gradcheck.cli import main
from gradcheck.errors import UsageError
from gradcheck.output.files import check_path, report_paths, write_all

pytestmark = pytest.mark.skipif(os.name != "posix", reason="FIFOs, devices and sockets are POSIX")
SMALL = ["--x-dim", "2", "--hidden", "3", "--steps", "2", "-q"]


def _names(d) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def _mknod(path, kind: int, major: int, minor: int) -> None:
    """A device node in a temporary directory, or skip (needs root and CAP_MKNOD)."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    try:
        os.mknod(path, kind | 0o666, os.makedev(major, minor))
    except PermissionError as exc:
        pytest.skip(f"this container does not allow mknod: {exc}")


class Reader(threading.Thread):
    """Reads a FIFO to its end (opening it blocks until a writer comes)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.data = path, None

    def run(self):
        with open(self.path, encoding="utf-8") as fh:
            self.data = fh.read()


# ------------------------------------------------------------------------------------------ regular files


def test_a_regular_file_is_replaced_keeping_its_mode_and_no_temporary(tmp_path):
    a = tmp_path / "a.json"
    a.write_text("old")
    a.chmod(0o600)
    inode = a.stat().st_ino
    write_all({str(a): "new"})
    assert a.read_text() == "new" and a.stat().st_ino != inode  # a new file, renamed over the old one
    assert stat.S_IMODE(a.stat().st_mode) == 0o600
    assert _names(tmp_path) == ["a.json"]


def test_a_new_file_in_a_new_directory_is_created(tmp_path):
    target = tmp_path / "r" / "s" / "x.md"
    check_path(str(target), "--markdown")
    write_all({str(target): "text"})
    assert target.read_text() == "text"


# ----------------------------------------------------------------------------------------------- symlinks


def test_a_symlink_is_followed_its_target_replaced_and_the_link_kept(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "report.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    chain = tmp_path / "chain.json"  # a link to the link
    chain.symlink_to("link.json")
    check_path(str(chain), "--json")
    write_all({str(chain): "new"})
    assert chain.is_symlink() and link.is_symlink() and os.readlink(chain) == "link.json"
    assert target.read_text() == "new" and not target.is_symlink()
    assert _names(tmp_path) == ["chain.json", "link.json", "real"]
    assert _names(tmp_path / "real") == ["report.json"]  # the temporary went beside the target, and is gone


def test_a_dangling_symlink_gets_its_target_created_and_stays_a_link(tmp_path):
    link = tmp_path / "out.xml"
    link.symlink_to(tmp_path / "elsewhere" / "junit.xml")
    check_path(str(link), "--junit")
    write_all({str(link): "<xml/>"})
    assert link.is_symlink() and (tmp_path / "elsewhere" / "junit.xml").read_text() == "<xml/>"


def test_a_symlink_to_a_directory_or_a_loop_is_a_usage_error(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "to_dir").symlink_to(tmp_path / "d")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(UsageError, match=r"--json: .*to_dir' is a directory"):
        check_path(str(tmp_path / "to_dir"), "--json")
    with pytest.raises(UsageError, match=r"--json: cannot write .*loop.*symbolic links"):
        check_path(str(tmp_path / "loop"), "--json")


# -------------------------------------------------------------------------------------- FIFOs and devices


def test_a_fifo_with_a_reader_is_written_directly_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    other = tmp_path / "b.md"
    reader = Reader(fifo)
    reader.start()
    check_path(str(fifo), "--json")
    write_all({str(fifo): "x" * 300_000, str(other): "b"})  # more than a pipe holds: the writer waits
    reader.join(10)
    assert reader.data == "x" * 300_000
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and other.read_text() == "b"
    assert _names(tmp_path) == ["b.md", "fifo"]


def test_a_fifo_without_a_reader_is_an_error_naming_it_not_a_hang_and_nothing_is_renamed(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    a = tmp_path / "a.json"
    a.write_text("old")
    check_path(str(fifo), "--json")  # a reader may come later: not known before the reports are written
    with pytest.raises(UsageError, match=r"'.*fifo': no process is reading this FIFO"):
        write_all({str(a): "new", str(fifo): "data"})
    assert a.read_text() == "old" and _names(tmp_path) == ["a.json", "fifo"]


def test_a_character_device_is_written_directly_and_stays_a_device(tmp_path):
    null = tmp_path / "null"
    _mknod(null, stat.S_IFCHR, 1, 3)  # what /dev/null is
    a = tmp_path / "a.json"
    check_path(str(null), "--json")
    write_all({str(null): "gone", str(a): "new"})
    assert stat.S_ISCHR(os.stat(null).st_mode) and a.read_text() == "new"
    assert _names(tmp_path) == ["a.json", "null"]


def test_a_full_device_fails_the_write_and_leaves_the_files_and_the_device(tmp_path):
    full = tmp_path / "full"
    _mknod(full, stat.S_IFCHR, 1, 7)  # what /dev/full is: every write fails with ENOSPC
    a = tmp_path / "a.json"
    a.write_text("old")
    with pytest.raises(OSError) as err:
        write_all({str(a): "new", str(full): "data"})
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(full)
    assert stat.S_ISCHR(os.stat(full).st_mode) and a.read_text() == "old"
    assert _names(tmp_path) == ["a.json", "full"]


def test_the_command_line_writes_json_to_a_fifo_and_keeps_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = Reader(fifo)
    reader.start()
    assert main(["run", *SMALL, "--json", str(fifo), "--no-reports"]) == 0
    reader.join(10)
    assert json.loads(reader.data)["passed"] is True
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# ------------------------------------------------------------------------ not writable: exit 2, up front


def _socket(path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    return s


@pytest.mark.parametrize("kind", ["directory", "socket", "block device"])
def test_a_directory_socket_or_block_device_is_a_usage_error_before_any_checking(
    tmp_path, monkeypatch, capsys, kind
):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "x"
    keep = None
    if kind == "directory":
        path.mkdir()
    elif kind == "socket":
        keep = _socket(path)
    else:
        _mknod(path, stat.S_IFBLK, 7, 0)  # a loop device's numbers; never opened
    marker = tmp_path / "factory_called"
    module = f"marking_{kind.replace(' ', '_')}"  # one module per case: no import cache between them
    (tmp_path / f"{module}.py").write_text(
        "from pathlib import Path\nfrom gradcheck.lstm.reference import ReferenceLSTM\n"
        f"def make():\n    Path({str(marker)!r}).touch()\n    return ReferenceLSTM(2, 3, 2)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        for flag in ("--json", "--junit", "--markdown"):
            assert main(["run", "--model", f"{module}:make", flag, str(path)]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and flag in err and repr(str(path)) in err and kind in err, err
        assert main(["run", "--model", f"{module}:make", "--report-dir", str(tmp_path / "d")]) == 0
        capsys.readouterr()
    finally:
        if keep is not None:
            keep.close()
    assert not (tmp_path / "reports").exists()
    marker.unlink()  # the factory ran only for the last, valid run: never before a path error


def test_the_default_report_dir_with_a_socket_in_place_of_a_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    keep = _socket(tmp_path / "reports" / "gradcheck.md")
    try:
        assert main(["run", *SMALL]) == 2
    finally:
        keep.close()
    err = capsys.readouterr().err
    assert "--report-dir" in err and "gradcheck.md" in err and "is a socket" in err
    assert _names(tmp_path / "reports") == ["gradcheck.md"]


def test_two_flags_through_links_to_one_file_are_refused(tmp_path):
    target = tmp_path / "t.json"
    (tmp_path / "l1").symlink_to(target)
    with pytest.raises(UsageError, match="both write"):
        report_paths(no_reports=True, json=str(tmp_path / "l1"), markdown=str(target))


# ------------------------------------------------------------------------------ interrupts during renames


def test_a_signal_during_the_renames_is_handled_after_all_of_them(tmp_path, monkeypatch):
    a, b = tmp_path / "a.json", tmp_path / "b.xml"
    a.write_text("old a")
    b.write_text("old b")
    real_replace = os.replace

    def replace_then_signal(src, dst):
        real_replace(src, dst)
        if not hasattr(replace_then_signal, "sent"):
            replace_then_signal.sent = True
            signal.raise_signal(signal.SIGINT)  # between the first rename and the second

    monkeypatch.setattr("gradcheck.output.files.os.replace", replace_then_signal)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        write_all({str(a): "new a", str(b): "new b"})
    assert a.read_text() == "new a" and b.read_text() == "new b"  # all renamed, then the interrupt
    assert signal.getsignal(signal.SIGINT) is before
    assert _names(tmp_path) == ["a.json", "b.xml"]
