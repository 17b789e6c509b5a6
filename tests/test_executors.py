"""Executors: serial, a process pool and a dask cluster give bit-identical numbers; bad configurations exit 2."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from _planted import Planted, entry_bug

from gradcheck import ProtocolError, ReferenceLSTM, check
from gradcheck.cli import main
from gradcheck.errors import ModelError
from gradcheck.fast import executors
from gradcheck.fast.chunked import ChunkedEvaluator

SHAPES = {"h": (3, 6), "s": (3, 6)}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _all_losses(model, executor, *, batched=True, complex_=False):
    """Every perturbation of every block and state at the central (or complex) step, as one array."""
    ev = ChunkedEvaluator(
        model, model.parameters(), SHAPES, batched=batched, batch=16, executor=executor, complex_=complex_
    )
    out = []
    step = 1e-20j if complex_ else 6e-6
    for name, x in model.parameters().items():
        idx = np.arange(x.size)
        out.append(ev.losses("param", name, idx, np.full(idx.size, step)))
        out.append(ev.losses("param", name, idx, np.full(idx.size, -step)))
    for name in SHAPES:
        idx = np.arange(18)
        out.append(ev.losses("state", name, idx, np.full(18, step)))
    return np.concatenate(out)


def _comparable(report):
    d = report.to_dict()
    d.pop("timings")
    d["settings"].pop("evaluation")
    return d


@pytest.fixture(scope="module")
def model():
    return Planted(4, 6, 3, seed=7, plant=entry_bug("bi", (2,), 1e-3))


def test_process_pool_is_bit_identical_to_serial(model):
    serial = _all_losses(model, None)
    with cf.ProcessPoolExecutor(2) as pool:
        pooled = _all_losses(model, pool)
        pooled_complex = _all_losses(model, pool, complex_=True)
        pooled_loop = _all_losses(model, pool, batched=False)
    assert np.array_equal(serial, pooled)  # bit-identical, not merely close
    assert np.array_equal(_all_losses(model, None, complex_=True), pooled_complex)
    assert np.array_equal(_all_losses(model, None, batched=False), pooled_loop)
    a, b = check(model), check(model, workers=2)
    assert b.settings["evaluation"]["executor"] == "2 worker processes"
    assert _comparable(a) == _comparable(b)
    assert [x.label for x in b.failing] == ["bi"]
    for method in ("central", "complex"):  # the screen's one call (loss_directions_many) in a worker
        a, b = (
            check(model, mode="screen", method=method),
            check(model, mode="screen", method=method, workers=2),
        )
        assert _comparable(a) == _comparable(b) and [x.label for x in b.failing] == ["bi"]


def test_dask_local_cluster_is_bit_identical_to_serial(model):
    distributed = pytest.importorskip("distributed")
    serial = _all_losses(model, None)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    ) as cluster:
        with distributed.Client(cluster) as client:
            assert np.array_equal(serial, _all_losses(model, client.get_executor()))
        r = check(model, scheduler=cluster.scheduler_address)
        rs = check(model, mode="screen", scheduler=cluster.scheduler_address)
    assert r.settings["evaluation"]["executor"].startswith("dask scheduler tcp://")
    assert _comparable(r) == _comparable(check(model))
    assert _comparable(rs) == _comparable(check(model, mode="screen"))


class _Raises(ReferenceLSTM):
    def loss_batch(self, params, kind, name, flat_idx, deltas):
        raise KeyError("no such gate in worker")


def test_a_model_error_in_a_worker_is_reported_with_its_message():
    with pytest.raises(ModelError, match="KeyError.*no such gate in worker"):
        check(_Raises(2, 3, 2), workers=2)


class _Dies(ReferenceLSTM):
    """A worker computing a chunk of it dies (as if killed by the OOM killer); in the parent it is fine."""

    def loss_batch(self, params, kind, name, flat_idx, deltas):
        if os.getpid() != self.parent:
            os._exit(9)
        return super().loss_batch(params, kind, name, flat_idx, deltas)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lists the children in /proc")
def test_a_worker_that_dies_is_a_model_error_and_leaves_no_worker():
    model = _Dies(2, 3, 2)
    model.parent = os.getpid()
    before = _children()
    with pytest.raises(ModelError, match="worker process.*died"):
        check(model, workers=2)
    assert _children() == before


def _children() -> set[int]:
    me, out = str(os.getpid()), set()
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat") as fh:
                state, ppid = fh.read().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if ppid == me and state != "Z":
            out.add(int(name))
    return out


WORKERS_OF_A_KILLED_PARENT = textwrap.dedent("""
    import time
    from gradcheck.fast.executors import open_executor
    with open_executor(workers=2) as (pool, _):
        pool.submit(time.sleep, 0).result()
        print(*pool._processes, flush=True)
        time.sleep(60)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_workers_ignore_sigint_and_die_with_their_parent_even_if_it_is_killed():
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKERS_OF_A_KILLED_PARENT], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        for pid in pids:  # a Ctrl-C to the process group: the workers leave it to the parent
            os.kill(pid, signal.SIGINT)
        time.sleep(0.3)
        assert all(_alive(pid) for pid in pids)
    finally:
        proc.kill()
        proc.wait()
    end = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.05)
    assert not [pid for pid in pids if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


class _Unpicklable(ReferenceLSTM):
    def __init__(self):
        super().__init__(2, 3, 2)
        self.hook = lambda: None


def test_an_unpicklable_model_with_workers_is_a_clear_usage_error():
    with pytest.raises(ProtocolError, match="cannot be sent to worker processes"):
        check(_Unpicklable(), workers=2)


def test_executor_configuration_errors():
    m = ReferenceLSTM(2, 3, 2)
    with pytest.raises(ProtocolError, match="workers"):
        check(m, workers=0)
    with pytest.raises(ProtocolError, match="choose one"):
        check(m, workers=2, scheduler="tcp://localhost:1")
    with pytest.raises(ProtocolError, match="executor"):
        check(m, executor=object())


def test_a_callers_executor_is_used_and_left_running():
    m = ReferenceLSTM(2, 3, 2)
    with cf.ThreadPoolExecutor(2) as pool:
        r = check(m, executor=pool)
        assert r.passed and pool.submit(lambda: 1).result() == 1


def test_scheduler_without_dask_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(executors, "dask_available", lambda: False)
    import gradcheck.cli.speed

    monkeypatch.setattr(gradcheck.cli.speed, "dask_available", lambda: False)
    assert (
        main(["run", "--x-dim", "2", "--hidden", "2", "--steps", "2", "--scheduler", "tcp://localhost:8786"])
        == 2
    )
    err = capsys.readouterr().err
    assert "pip install 'gradcheck[dask]'" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ProtocolError, match=r"pip install 'gradcheck\[dask\]'"):
        check(ReferenceLSTM(2, 2, 2), scheduler="tcp://localhost:8786")


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--workers", "0"], "--workers"),
        (["--workers", "two"], "--workers"),
        (["--batch", "-1"], "--batch"),
        (["--directions", "0", "--mode", "screen"], "--directions"),
        (["--sample", "0"], "--sample"),
        (["--mode", "fast"], "--mode"),
        (["--mode", "full", "--directions", "8"], "--mode screen or auto"),
        (["--workers", "2", "--scheduler", "tcp://h:1"], "exclude"),
        (["--scheduler", " "], "--scheduler"),
    ],
)
def test_bad_speed_flags_exit_2_with_one_line(argv, needle, capsys, tmp_path):
    out = tmp_path / "r.json"
    assert main(["run", "--x-dim", "2", "--hidden", "2", "--steps", "2", "--json", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_cli_speed_flags_run(capsys, tmp_path):
    import json

    out = tmp_path / "r.json"
    assert (
        main(
            [
                "run",
                "--x-dim",
                "3",
                "--hidden",
                "4",
                "--steps",
                "3",
                "--mode",
                "screen",
                "--directions",
                "4",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    settings = json.loads(out.read_text())["settings"]
    assert settings["mode"] == "screen" and settings["screen"]["directions"] == 4
    assert (
        main(
            [
                "run",
                "--x-dim",
                "3",
                "--hidden",
                "4",
                "--steps",
                "3",
                "--sample",
                "2",
                "--workers",
                "2",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    settings = json.loads(out.read_text())["settings"]
    assert settings["coverage"]["sample_per_row"] == 2 and settings["evaluation"]["executor"].startswith("2 ")
    assert main(["run", "--x-dim", "3", "--hidden", "4", "--steps", "3", "--serial", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["settings"]["evaluation"]["batched"] is False


def test_chunk_threads_are_bit_identical_and_blas_threads_are_restored(model):
    from gradcheck.fast import blas_threads

    controls = blas_threads._openblas_controls()
    before = [get() for get, _ in controls]
    one = ChunkedEvaluator(model, model.parameters(), SHAPES, batch=16, threads=1)
    two = ChunkedEvaluator(model, model.parameters(), SHAPES, batch=16, threads=2)
    idx = np.arange(model.parameters()["wf"].size)
    d = np.full(idx.size, 6e-6)
    assert np.array_equal(one.losses("param", "wf", idx, d), two.losses("param", "wf", idx, d))
    two.close()
    with blas_threads.single_threaded_blas() as limited:
        assert [get() for get, _ in controls] == [1] * len(controls)
        assert limited == bool(controls)
    assert [get() for get, _ in controls] == before


# ---- a model declaring "processes" gets worker processes for a long full check, unless the caller chose
class PrefersProcesses(Planted):
    capabilities = frozenset({"complex", "batched", "processes"})


@pytest.fixture
def processes_after(monkeypatch):
    """Set the threshold (seconds of estimated full check) above which such a model gets worker processes."""
    from gradcheck.fast import speed

    def set_to(seconds):
        monkeypatch.setattr(speed, "PROCESSES_AFTER", seconds)
        monkeypatch.setattr(speed, "CORES", 2)  # as on the CI machine, whatever this one has

    return set_to


def test_a_model_declaring_processes_runs_a_long_full_check_in_worker_processes_with_the_same_rows(
    processes_after,
):
    bad = PrefersProcesses(4, 6, 3, seed=7, plant=entry_bug("bi", (2,), 1e-3))
    processes_after(0.0)
    pooled = check(bad, mode="full")
    assert pooled.settings["evaluation"]["executor"] == "2 worker processes"
    assert [r.label for r in pooled.failing] == ["bi"] and pooled.rows[0].checked > 0
    processes_after(float("inf"))
    threaded = check(bad, mode="full")
    assert threaded.settings["evaluation"]["executor"] == "serial"
    assert _comparable(pooled) == _comparable(threaded)


def test_worker_processes_only_when_the_model_declares_them_and_the_caller_chose_nothing(processes_after):
    processes_after(0.0)
    plain = Planted(3, 4, 3, seed=1)  # batched, not "processes"
    assert check(plain, mode="full").settings["evaluation"]["executor"] == "serial"
    model = PrefersProcesses(3, 4, 3, seed=1)
    assert check(model, mode="full", workers=1).settings["evaluation"]["executor"] == "serial"
    assert check(model, mode="full", batched=False).settings["evaluation"]["executor"] == "serial"
    assert check(model, mode="screen").settings["evaluation"]["executor"] == "serial"
    processes_after(1e9)  # an estimate under the threshold: the chunk threads
    assert check(model, mode="full").settings["evaluation"]["executor"] == "serial"


def test_worker_processes_are_chosen_only_where_they_start_by_fork(processes_after, monkeypatch):
    from gradcheck.fast import speed

    processes_after(0.0)
    model = PrefersProcesses(3, 4, 3, seed=1)
    monkeypatch.setattr(speed.multiprocessing, "get_start_method", lambda allow_none=False: "spawn")
    assert check(model, mode="full").settings["evaluation"]["executor"] == "serial"
    monkeypatch.setattr(speed.multiprocessing, "get_start_method", lambda allow_none=False: "fork")
    assert check(model, mode="full").settings["evaluation"]["executor"] == "2 worker processes"
