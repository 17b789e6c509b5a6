"""Where chunks of loss evaluations run: in process (default), a process pool, or a dask.distributed cluster.

The seam is :class:`concurrent.futures.Executor`: anything with ``submit(fn, *args) -> Future`` works. Results are
collected in submission order (never as they arrive), and every chunk is computed from its own inputs only, so
the numbers are bit-identical whatever the executor and the number of workers.

Pointing it at a real cluster: start a scheduler (``dask scheduler``) and workers (``dask worker
tcp://HOST:8786``) on machines that have gradcheck, numpy and your model's module installed (the same versions),
then run ``gradcheck run --scheduler tcp://HOST:8786``. The model is pickled (cloudpickle) to the workers with
every task.
"""

from __future__ import annotations

import concurrent.futures as cf
from contextlib import contextmanager

from ..errors import ProtocolError

DASK_HINT = "pip install 'gradcheck[dask]'"


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
    """Yield ``(executor or None, description)``; executors this function created are shut down on exit.

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
        try:
            yield client.get_executor(), f"dask scheduler {scheduler}"
        finally:
            client.close()
        return
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ProtocolError(f"workers: expected an integer >= 1, got {workers!r}")
        if workers == 1:
            yield None, "serial"
            return
        pool = cf.ProcessPoolExecutor(max_workers=workers)
        try:
            yield pool, f"{workers} worker processes"
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return
    yield None, "serial"


def ordered_results(executor, fn, tasks: list[tuple]) -> list:
    """``[fn(*task) for task in tasks]``, through ``executor`` when given; results in task order."""
    if executor is None:
        return [fn(*task) for task in tasks]
    futures = [executor.submit(fn, *task) for task in tasks]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise
