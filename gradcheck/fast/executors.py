"""Where chunks of loss evaluations run: in process (default), a process pool, or a dask.distributed cluster.

The seam is :class:`concurrent.futures.Executor`: anything with ``submit(fn, *args) -> Future`` works. Results are
collected in submission order (never as they arrive), and every chunk is computed from its own inputs only, so
the numbers are bit-identical whatever the executor and the number of workers.

Pointing it at a real cluster: start a scheduler (``dask scheduler``) and workers (``dask worker
tcp://HOST:8786``) on machines that have gradcheck, numpy and your model's module installed (the same versions),
then run ``gradcheck run --scheduler tcp://HOST:8786``. The model is pickled (cloudpickle) to the workers with
every task.

Interrupts: when the block that opened an executor ends with an exception (a KeyboardInterrupt, a model error),
nothing waits for chunks in flight. A process pool's workers are killed (they ignore SIGINT themselves, so a
Ctrl-C to the process group reaches only the parent, which decides; on Linux they also die with their parent),
a dask client's futures are cancelled and the client closed with a short timeout. :func:`kill_workers` kills the
workers of every open pool at once, from any thread (the command line's second Ctrl-C).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import sys
import weakref
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from ..errors import ModelError, ProtocolError

DASK_HINT = "pip install 'gradcheck[dask]'"
INTERRUPTS = {signal.SIGINT, signal.SIGTERM}
PR_SET_PDEATHSIG = 1  # linux/prctl.h
JOIN_TIMEOUT = 1.0  # seconds to wait for a killed worker to be reaped
CLOSE_TIMEOUT = 0.5  # seconds for a dask client's goodbye after an interrupt
POLL = 0.1  # seconds between two looks at a chunk in flight (and at pending signals)
_POOLS: weakref.WeakSet = weakref.WeakSet()  # the process pools open now (for kill_workers)
_OWNED: weakref.WeakSet = weakref.WeakSet()  # the executors open_executor made: ended whole, not per future


class InlineExecutor(cf.Executor):
    """Runs each task at submit time in this process (the serial default, through the same code path)."""

    def submit(self, fn, /, *args, **kwargs):
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future, like any executor
            fut.set_exception(exc)
        return fut


def dask_available() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def open_executor(*, executor=None, workers: int | None = None, scheduler: str | None = None):
    """Yield ``(executor or None, description)``; executors this function created are shut down on exit (at
    once, without waiting for chunks in flight, when the block ends with an exception).

    ``executor``: a caller's Executor (left running). ``workers``: a process pool of that size (1: in process).
    ``scheduler``: a dask.distributed scheduler address (``tcp://host:8786``), via ``Client(...).get_executor()``.
    """
    given = [
        k
        for k, v in (("executor", executor), ("workers", workers), ("scheduler", scheduler))
        if v is not None
    ]
    if len(given) > 1:
        raise ProtocolError(f"choose one of executor, workers, scheduler; got {', '.join(given)}")
    if executor is not None:
        if not callable(getattr(executor, "submit", None)):
            raise ProtocolError(
                f"executor: expected a concurrent.futures.Executor, got {type(executor).__name__}"
            )
        yield executor, f"executor {type(executor).__name__}"
        return
    if scheduler is not None:
        with _dask_executor(scheduler) as ex:
            yield ex, f"dask scheduler {scheduler}"
        return
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ProtocolError(f"workers: expected an integer >= 1, got {workers!r}")
        if workers > 1:
            with _process_pool(workers) as pool:
                yield pool, f"{workers} worker processes"
            return
    yield None, "serial"


@contextmanager
def _dask_executor(scheduler: str):
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ProtocolError(f"scheduler: expected an address such as tcp://host:8786, got {scheduler!r}")
    if not dask_available():
        raise ProtocolError(f"scheduler: dask.distributed is not installed; {DASK_HINT}")
    from distributed import Client

    try:
        client = Client(scheduler, timeout="10s", set_as_default=False)
    except Exception as exc:  # unreachable scheduler, bad address
        raise ProtocolError(
            f"scheduler: cannot connect to {scheduler!r}: {type(exc).__name__}: {exc}"
        ) from None
    ex = client.get_executor(pure=False)  # keys of our own: a task shared with another run is cancelled by it
    _OWNED.add(ex)
    try:
        yield ex
    except BaseException:
        try:  # cancel what the cluster still runs for us, and do not wait long for the goodbye
            ex.shutdown(wait=False)
            client.close(timeout=CLOSE_TIMEOUT)
        except Exception:
            pass
        raise
    finally:
        _OWNED.discard(ex)
    client.close()


@contextmanager
def _process_pool(workers: int):
    """A process pool whose workers ignore SIGINT and are killed (not waited for) if the block fails."""
    pool = cf.ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, initargs=(os.getpid(),))
    _POOLS.add(pool)
    _OWNED.add(pool)
    try:
        with _signals_blocked():  # workers are forked now, with SIGINT/SIGTERM blocked until they ignore them
            pool.submit(int)
        yield pool
    except BaseException:
        _kill_pool(pool)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        _POOLS.discard(pool)
        _OWNED.discard(pool)


def kill_workers() -> None:
    """Kill (SIGKILL) the worker processes of every open process pool. Takes no lock, waits for nothing: safe from
    any thread, at any moment (the command line calls it just before ``os._exit``)."""
    try:
        pools = list(_POOLS)
    except RuntimeError:  # a pool opened or closed meanwhile (the caller also signals our children)
        pools = []
    for pool in pools:
        for pid in _pids(pool):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _pids(pool) -> list[int]:
    try:
        return [p.pid for p in list((getattr(pool, "_processes", None) or {}).values()) if p.pid]
    except RuntimeError:  # the dict changed under us: the pool is starting or ending
        return []


def _kill_pool(pool) -> None:
    """End the pool now: cancel what is queued, kill the workers, let nothing wait for the work they held."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        try:
            p.kill()
        except Exception:
            pass
    queue = getattr(pool, "_call_queue", None)
    if queue is not None:
        queue.cancel_join_thread()  # its feeder may be stuck writing a task no worker will read
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.join(JOIN_TIMEOUT)


def _worker_init(parent: int) -> None:
    """In each worker: the parent decides about interrupts (SIGINT ignored, SIGTERM ends the worker), and on
    Linux the worker dies with its parent, even if the parent is killed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(-1)  # a wakeup fd inherited from the parent's command line is the parent's
    except ValueError:
        pass
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL))
        except Exception:
            pass
        if os.getppid() != parent:  # the parent died before prctl
            os._exit(1)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)


@contextmanager
def _signals_blocked():
    """SIGINT and SIGTERM blocked in this thread (inherited by processes forked inside the block)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def ordered_results(executor, fn, tasks: list[tuple]) -> list:
    """``[fn(*task) for task in tasks]``, through ``executor`` when given; results in task order. On any
    exception (an interrupt included) the tasks not yet started are cancelled before it propagates. A worker
    process that died (killed, out of memory) is a :class:`ModelError`."""
    if executor is None:
        return [fn(*task) for task in tasks]
    futures: list[cf.Future] = []
    try:
        for task in tasks:
            futures.append(executor.submit(fn, *task))
        return [_result(f) for f in futures]
    except BrokenProcessPool as exc:
        raise ModelError("a chunk in a worker process (the worker died)", exc) from None
    except cf.CancelledError as exc:  # not by us: a cluster that cancelled our task
        raise ModelError("a chunk (the executor cancelled it)", exc) from None
    except BaseException:
        # ours are ended whole by open_executor: a future cancelled behind the executor's back makes Python
        # 3.11's process-pool thread, or dask's client, fail loudly on stderr
        if executor not in _OWNED:
            for f in futures:
                f.cancel()
        raise


def _result(future: cf.Future):
    """``future.result()``, waited for in slices of :data:`POLL` seconds: a signal is handled within one slice even
    when it reached another thread, or arrived just before the wait began (a wait on a lock ends early only when
    the signal interrupts that very wait)."""
    while not future.done():
        cf.wait((future,), timeout=POLL)
    return future.result()
