"""Ctrl-C and SIGTERM: the first signal stops a run within 2 s with exit 130, one line on stderr, no report and no
temporary written, and no process left behind; a second signal ends it at once; ``main(argv)`` called in-process
leaves no handler behind.

The stress tests interrupt real ``gradcheck run`` processes (serial, ``--workers 2``, a dask LocalCluster) at
random moments, 30 times each, several at a time. Each process runs in its own session: after it exits, no process
of its process group may be alive. A moment is drawn once the command line's handlers are in place (a SIGTERM
handler appears in /proc/PID/status): a signal during interpreter start-up and imports, before ``main`` runs, gets
Python's own handling (docs/ci.md says so).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from gradcheck.cli import interrupts, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIES = 30  # interrupts per way of running
PARALLEL = 6  # interrupted runs at a time
MAX_DELAY = 1.5  # seconds after the handlers are in place
STOP_WITHIN = 2.0  # seconds from the first signal to the exit
HUNG_AFTER = 10.0  # seconds: a run still alive then is hung (killed, and the test fails)
SIZE = [
    "--hidden",
    "300",
    "--mode",
    "full",
]  # the reference at (50, 300, 4), every entry: 20 s or more, always interrupted
WAYS = [
    (signal.SIGINT, True),
    (signal.SIGTERM, False),
    (signal.SIGTERM, True),
]  # (signal, to the whole group)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADCHECK_", "GITHUB_"))}
    env["PYTHONPATH"] = ROOT
    return env


def _launch(argv: list[str], cwd) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gradcheck", "run", *argv],
        cwd=cwd,
        env=_env(),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _handlers_in_place(pid: int) -> bool:
    """The command line catches SIGTERM (Python alone does not): main() has installed its handlers."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            caught = next(int(line.split()[1], 16) for line in fh if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _group(pgid: int) -> list[str]:
    """The live (not zombie) processes of process group ``pgid``: "pid state command"."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                head, tail = fh.read().rsplit(b")", 1)
        except OSError:
            continue
        fields = tail.split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            out.append(f"{name} {fields[0].decode()} {head.split(b'(', 1)[1].decode()}")
    return out


def _survivors(pgid: int, wait: float = 3.0) -> list[str]:
    """Processes of the group still alive ``wait`` seconds after its leader exited (then killed)."""
    end = time.monotonic() + wait
    while (left := _group(pgid)) and time.monotonic() < end:
        time.sleep(0.05)
    for entry in left:
        try:
            os.kill(int(entry.split()[0]), signal.SIGKILL)
        except OSError:
            pass
    return left


def _interrupt(
    argv: list[str], cwd, rng: random.Random, way: int, signals: int = 1, delay=None, ready: str = ""
) -> dict:
    """Start a run in ``cwd``, wait for its handlers (and for the file ``ready`` in ``cwd`` if named), sleep a
    random moment, signal it; what happened (``written``: the files it left in ``cwd``, bytecode caches and
    ``ready`` aside)."""
    sig, to_group = WAYS[way % len(WAYS)]
    cwd.mkdir(exist_ok=True)
    there = set(cwd.rglob("*"))
    proc = _launch(argv, cwd)
    try:
        end = time.monotonic() + 60
        while not _handlers_in_place(proc.pid) and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.005)
        while ready and not (cwd / ready).exists() and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, MAX_DELAY) if delay is None else delay)
        early = proc.poll() is not None  # ended before it was interrupted: the run is too short
        sent = time.monotonic()
        for _ in range(signals):
            (os.killpg if to_group else os.kill)(proc.pid, sig)
            time.sleep(0.05)
        try:
            proc.wait(HUNG_AFTER)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        took = time.monotonic() - sent
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return {
        "how": f"{sig.name} to {'the group' if to_group else 'the parent'}"
        + (" (after the run had ended: make SIZE larger)" if early else ""),
        "rc": proc.returncode,
        "took": took,
        "stderr": err,
        "stdout": out,
        "survivors": _survivors(proc.pid),
        "written": sorted(
            str(p.relative_to(cwd))
            for p in set(cwd.rglob("*")) - there
            if "__pycache__" not in p.parts and p.name != ready
        ),
    }


def _stress(argv: list[str], tmp_path, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rngs = [random.Random(rng.random()) for _ in range(TRIES)]
    with cf.ThreadPoolExecutor(PARALLEL) as pool:
        runs = pool.map(lambda i: _interrupt(argv, tmp_path / f"try{i}", rngs[i], i), range(TRIES))
        return list(runs)


def _assert_all_stopped(results: list[dict]) -> None:
    bad = [
        r
        for r in results
        if r["rc"] != 130
        or r["stderr"] != interrupts.MESSAGE + "\n"
        or r["stdout"]
        or r["survivors"]
        or r["written"]
        or r["took"] > STOP_WITHIN
    ]
    assert not bad, "\n".join(
        f"{r['how']}: exit {r['rc']} after {r['took']:.2f} s, survivors {r['survivors']}, written "
        f"{r['written']}, stderr {r['stderr'][-600:]!r}"
        for r in bad
    )


# ------------------------------------------------------------------------------------------------ stress


def test_serial_runs_interrupted_at_random_moments_exit_130_and_write_nothing(tmp_path):
    _assert_all_stopped(_stress([*SIZE], tmp_path, seed=1))


def test_worker_runs_interrupted_at_random_moments_leave_no_process_behind(tmp_path):
    _assert_all_stopped(_stress([*SIZE, "--workers", "2"], tmp_path, seed=2))


@pytest.fixture(scope="module")
def dask_cluster():
    try:
        from distributed import LocalCluster
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("dask.distributed is not installed: pip install '.[test]' installs it")
        pytest.skip("dask.distributed is not installed")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


def test_dask_runs_interrupted_at_random_moments_exit_130(tmp_path, dask_cluster):
    address = dask_cluster.scheduler_address
    _assert_all_stopped(_stress([*SIZE, "--scheduler", address], tmp_path, seed=3))
    info = dask_cluster.scheduler_info
    assert len((info() if callable(info) else info)["workers"]) == 2  # the cluster itself is untouched


# ------------------------------------------------------------------------ a model that swallows Ctrl-C

SWALLOWS = textwrap.dedent("""
    import pathlib
    import time
    import numpy as np

    def spin():
        pathlib.Path("spinning").touch()  # the test signals once this exists
        end = time.monotonic() + 60
        while time.monotonic() < end:
            time.sleep(0.01)

    class Swallows:
        '''Its loss catches everything and keeps computing: the main thread never stops. The whole loop runs
        inside the try (a KeyboardInterrupt landing on a loop test outside it would escape and end the run).'''
        def parameters(self):
            return {"w": np.ones(3)}
        def loss(self, params, taps=None):
            while True:
                try:
                    spin()
                    break
                except BaseException:
                    pass
            return float((params["w"] ** 2).sum())
        def gradients(self, params):
            return {"w": 2 * params["w"]}, {}

    def make():
        return Swallows()
""")


@pytest.mark.parametrize("signals", [1, 2])
def test_a_stuck_main_thread_still_ends_within_the_grace_and_a_second_signal_at_once(tmp_path, signals):
    def one(i: int) -> dict:
        cwd = tmp_path / f"try{i}"
        cwd.mkdir()
        (cwd / "swallows.py").write_text(SWALLOWS)
        return _interrupt(
            ["--model", "swallows:make"], cwd, random.Random(i), i, signals, delay=0.2, ready="spinning"
        )

    with cf.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(3)))
    _assert_all_stopped(results)
    took = [r["took"] for r in results]
    if signals == 1:  # the watcher ends it after the grace
        assert all(interrupts.GRACE - 0.05 <= t <= STOP_WITHIN for t in took), took
    else:  # the second signal, 50 ms after the first, does not wait for the grace
        assert max(took) < interrupts.GRACE - 0.2, took


SWALLOWED_IN_A_CALLBACK = textwrap.dedent("""
    import signal, time, weakref
    from gradcheck.cli import interrupts

    class Thing:
        pass

    with interrupts.handled(program=True) as state:
        thing = Thing()
        ref = weakref.ref(thing, lambda r: state.handler(signal.SIGINT, None))  # the signal lands in a callback
        del thing  # Python ignores what a weakref callback raises: the KeyboardInterrupt cannot stop the run
        time.sleep(10)
        print("not stopped")
""")


def test_an_interrupt_swallowed_in_a_callback_still_ends_the_run_at_once_with_one_line():
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", SWALLOWED_IN_A_CALLBACK],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "", interrupts.MESSAGE + "\n")
    assert time.monotonic() - start < 5


# ------------------------------------------------------------------------------------------- in process


def _state():
    return signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), _wakeup_fd()


def _wakeup_fd() -> int:
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


def test_main_in_process_restores_the_handlers_and_leaves_no_thread(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before, threads = _state(), set(threading.enumerate())
    assert main(["run", "--x-dim", "2", "--hidden", "3", "--steps", "2", "-q"]) == 0
    assert _state() == before
    assert set(threading.enumerate()) == threads
    assert main(["run", "--hidden", "0"]) == 2  # a usage error, too
    assert _state() == before


def test_main_in_process_interrupted_returns_130_writes_nothing_and_restores(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # every import done first: an import interrupted halfway (numpy's lazy submodules) would break later tests
    assert main(["run", "--x-dim", "2", "--hidden", "3", "--steps", "2", "-q", "--no-reports"]) == 0
    capsys.readouterr()
    before = _state()
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    try:
        code = main(["run", "--hidden", "100", "--mode", "full"])
    finally:
        timer.cancel()
    assert code == 130 and time.monotonic() - start < 0.5 + STOP_WITHIN
    assert capsys.readouterr().err.endswith(interrupts.MESSAGE + "\n")
    assert _state() == before
    assert list(tmp_path.iterdir()) == []  # no report, no temporary, not even the reports directory
