"""The chunked evaluator: perturbations evaluated K at a time, in process or through an executor.

Same interface as :class:`gradcheck.finite_diff.SerialEvaluator` (``losses``, ``direction_losses``), plus
``direction_losses_many`` for the screen. For a model declaring the "batched" capability each chunk is ONE
``loss_batch`` call (see :mod:`gradcheck.protocol`); otherwise a chunk is a loop of ``loss`` calls (useful to
spread a plain model over worker processes or a dask cluster). Chunks are fixed by the inputs and K only, results are put back in
chunk order, so the numbers do not depend on the executor or on the number of workers.

K (the chunk size) bounds the memory a chunk needs; :func:`auto_batch` picks it from the state sizes.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import warnings

import numpy as np

from .. import finite_diff as fd
from ..errors import ModelError, ProtocolError
from ..protocol import call_model, dense_directions
from .blas_threads import single_threaded_blas
from .executors import ordered_results

BATCH_MEMORY = 32 * 2**20  # bytes of scratch per chunk the automatic K aims at
BATCH_MIN, BATCH_MAX = 32, 2048
CORES = os.cpu_count() or 1  # chunk threads, worker processes chosen by speed, the cost estimate
TASKS_PER_CALL = 8  # chunks are grouped into about this many tasks per call on an executor


def auto_batch(state_shapes: dict[str, tuple[int, ...]], itemsize: int = 8) -> int:
    """K from sizes: a batched copy of a recurrent model holds a few arrays of ~4x its per-step state.

    ``state_shapes``: name -> ``(T, *state_shape)``. Without states (no recurrence) K is 256.
    """
    per_step = sum(int(np.prod(s[1:], dtype=int)) for s in state_shapes.values())
    if per_step == 0:
        return 256
    per_copy = 16 * per_step * itemsize  # Z (4H) + h, s, scratch, for a 2-state cell: ~8 per-step states
    return int(np.clip(BATCH_MEMORY // per_copy, BATCH_MIN, BATCH_MAX))


def _frozen(arr: np.ndarray) -> np.ndarray:
    """A read-only array owning its data: ``arr`` itself when it already is one (no copy), else a copy."""
    if isinstance(arr, np.ndarray) and not arr.flags.writeable and arr.base is None:
        return arr
    out = np.array(arr, copy=True)
    out.flags.writeable = False
    return out


class ChunkedEvaluator:
    """Evaluates perturbations in chunks of ``batch`` (K), through ``executor`` (None: in this process).

    ``params``: name -> array (copied, read-only); ``state_shapes``: name -> ``(T, *state_shape)``;
    ``complex_``: deltas are imaginary (complex step); ``batched``: use the model's ``loss_batch``.
    ``threads``: chunk threads in this process when ``executor`` is None (None: one per core when the BLAS
    library can be held to one thread, see :mod:`gradcheck.blas_threads`; else 1).
    """

    def __init__(
        self,
        model,
        params: dict[str, np.ndarray],
        state_shapes: dict[str, tuple[int, ...]],
        *,
        complex_: bool = False,
        batched: bool = True,
        batch: int | None = None,
        executor=None,
        progress=None,
        threads: int | None = None,
    ):
        self.model = model
        self.params = {k: _frozen(v) for k, v in params.items()}
        self.state_shapes = {k: tuple(s) for k, s in state_shapes.items()}
        self.complex = complex_
        self.batched = batched
        self.batch = int(batch) if batch else auto_batch(self.state_shapes)
        self.executor = executor
        self.progress = progress
        if threads is None:
            with single_threaded_blas() as limited:
                threads = CORES if limited and executor is None else 1
        self.threads = int(threads) if executor is None else 1
        self._pool = None
        if executor is not None and not isinstance(executor, cf.ThreadPoolExecutor):
            _check_picklable(model, cloud_ok=not isinstance(executor, cf.ProcessPoolExecutor))
        self.calls = 0  # model calls made (loss_batch / loss_directions_many / loss)
        if (
            batched
            and callable(getattr(model, "loss_directions", None))
            and not callable(getattr(model, "loss_directions_many", None))
        ):
            warnings.warn(
                f"{type(model).__name__}.loss_directions is deprecated and will not be read in a later "
                "version: implement loss_directions_many(params, requests) (one call for all requests; "
                "see gradcheck.protocol)",
                DeprecationWarning,
                stacklevel=4,
            )

    # ---- the evaluator interface
    def losses(self, kind: str, name: str, flat_idx: np.ndarray, deltas: np.ndarray) -> np.ndarray:
        """L with entry ``flat_idx[k]`` of parameter (or tap) ``name`` moved by ``deltas[k]``, for each k."""
        return self._run(kind, name, flat_idx, deltas)

    def direction_losses(
        self, kind: str, name: str, directions: np.ndarray, deltas: np.ndarray
    ) -> np.ndarray:
        """L with the block (or the whole tap) moved by ``deltas[k] * directions[k]``, for each k (one chunk)."""
        directions = np.asarray(directions)
        deltas = np.asarray(deltas)
        use = self.batched and callable(getattr(self.model, "loss_directions", None))
        task = (self.model, self.params, self.state_shapes, self.complex, use, kind, name, directions, deltas)
        with single_threaded_blas():
            (out,) = ordered_results(self.executor, _direction_task, [task])
        out = _unwrap(out)
        self.calls += 1 if use else len(deltas)
        if self.progress is not None:
            self.progress(len(deltas))
        return _checked(out, len(deltas), self.complex, f"loss_directions({kind} {name!r})")

    def direction_losses_many(self, requests) -> list[np.ndarray]:
        """Several direction requests ``(kind, name, directions, deltas)`` with ``deltas`` ``(S, n)`` (S steps
        along each of the n directions): ONE model call when the model has ``loss_directions_many``, else one
        :meth:`direction_losses` per request. Returns one ``(S, n)`` array per request."""
        requests = [
            (k, nm, V if isinstance(V, tuple) else np.asarray(V), np.asarray(d)) for k, nm, V, d in requests
        ]
        use = self.batched and callable(getattr(self.model, "loss_directions_many", None))
        if not use:
            return [request_by_calls(self.direction_losses, *r) for r in requests]
        task = (self.model, self.params, requests)
        with single_threaded_blas():
            (out,) = ordered_results(self.executor, _directions_many_task, [task])
        out = _unwrap(out)
        stage = "loss_directions_many(params, requests)"
        if not isinstance(out, list | tuple) or len(out) != len(requests):
            raise ProtocolError(
                f"{stage} must return a list of {len(requests)} arrays (one per request), got "
                f"{type(out).__name__}{'' if not hasattr(out, '__len__') else f' of {len(out)}'}"
            )
        self.calls += 1
        n = sum(d.size for _, _, _, d in requests)
        if self.progress is not None:
            self.progress(n)
        return [
            _checked(
                np.asarray(o).reshape(-1) if np.size(o) == d.size else o,
                d.size,
                self.complex,
                f"{stage} (request {kind} {name!r})",
            ).reshape(d.shape)
            for o, (kind, name, _, d) in zip(out, requests)
        ]

    def _executor(self, n_tasks: int):
        """The caller's executor, else our thread pool (numpy releases the GIL), else None (inline)."""
        if self.executor is not None or self.threads <= 1 or n_tasks <= 1:
            return self.executor
        if self._pool is None:  # one pool per evaluator: its threads keep their scratch buffers
            self._pool = cf.ThreadPoolExecutor(self.threads, thread_name_prefix="gradcheck-chunk")
        return self._pool

    def close(self) -> None:
        """Shut down the chunk threads (the evaluator still works afterwards, inline)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.threads = 1

    def _abandon(self) -> None:
        """After an exception (an interrupt, a model error) in a call: drop the queued chunks and let the
        chunk threads go without waiting for the chunks they are computing (model code cannot be interrupted;
        each thread ends when its chunk does, and its result is discarded)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self.threads = 1

    # ---- chunking
    def _run(self, kind, name, flat_idx, deltas) -> np.ndarray:
        flat_idx = np.asarray(flat_idx, dtype=np.intp)
        deltas = np.asarray(deltas)
        n = flat_idx.size
        K = self.batch
        bounds = [(a, min(n, a + K)) for a in range(0, n, K)]
        per_task = 1 if self.executor is None else max(1, -(-len(bounds) // TASKS_PER_CALL))
        tasks = []
        for g in range(0, len(bounds), per_task):
            group = bounds[g : g + per_task]
            chunks = [(flat_idx[a:b], deltas[a:b]) for a, b in group]
            tasks.append(
                (self.model, self.params, self.state_shapes, self.complex, self.batched, kind, name, chunks)
            )
        out = np.empty(n, np.complex128 if self.complex else np.float64)
        stage = (
            f"loss_batch(params, {kind!r}, {name!r}, ...)"
            if self.batched
            else f"loss(params{', taps' if kind == 'state' else ''}) with {kind} {name!r} perturbed"
        )
        pos = 0
        try:
            with single_threaded_blas():
                results = ordered_results(self._executor(len(tasks)), _chunk_task, tasks)
        except BaseException:
            self._abandon()
            raise
        for result in results:
            for losses in _unwrap(result):
                k = _chunk_len(bounds, pos)
                out[pos : pos + k] = _checked(losses, k, self.complex, stage)
                pos += k
                self.calls += 1 if self.batched else k
                if self.progress is not None:
                    self.progress(k)
        return out


def request_by_calls(direction_losses, kind, name, directions, deltas) -> np.ndarray:
    """A ``loss_directions_many`` request with ``(S, n)`` deltas through one ``direction_losses(kind, name,
    directions, deltas)`` call (dense directions repeated S times, read-only: the caller computes v^T g from
    them); the result ``(S, n)``."""
    S = deltas.shape[0]
    V = dense_directions(directions)
    dirs = V if S == 1 else np.concatenate([V] * S)
    dirs.flags.writeable = False
    return np.asarray(direction_losses(kind, name, dirs, deltas.reshape(-1))).reshape(deltas.shape)


def _check_picklable(model, cloud_ok: bool) -> None:
    """Worker processes receive the model pickled; say so clearly instead of failing inside the pool."""
    import pickle

    try:
        pickle.dumps(model)
        return
    except Exception as exc:
        first = exc
    if not cloud_ok:
        raise ProtocolError(
            f"the model cannot be sent to worker processes ({type(first).__name__}: {first}); "
            "define its class and callables at module level, or run without --workers"
        )
    try:
        import cloudpickle  # what dask uses; it handles closures and local classes

        cloudpickle.dumps(model)
        return
    except Exception:
        pass
    raise ProtocolError(
        f"the model cannot be sent to worker processes ({type(first).__name__}: {first}); "
        "define its class and callables at module level, or run without --workers/--scheduler"
    )


def _chunk_len(bounds, pos):
    for a, b in bounds:
        if a == pos:
            return b - a
    raise AssertionError("chunk bookkeeping")


def _checked(losses, k, complex_, stage) -> np.ndarray:
    arr = np.asarray(losses)
    if arr.shape != (k,) or arr.dtype.kind not in "biufc":
        raise ProtocolError(
            f"{stage} must return a numeric array of shape ({k},), got {arr.dtype} {arr.shape}"
        )
    if complex_ and arr.dtype.kind != "c":
        raise ProtocolError(
            f"{stage} returned real numbers for complex deltas: the complex step would read 0"
        )
    return arr


class _Raised:
    """A model failure inside a task, carried back as data (custom exceptions may not unpickle)."""

    def __init__(self, stage: str, exc: BaseException):
        self.stage, self.type_name, self.message = stage, type(exc).__name__, str(exc)
        try:
            import pickle

            pickle.loads(pickle.dumps(exc))
            self.exc = exc
        except Exception:
            self.exc = None

    def raise_(self):
        exc = self.exc if self.exc is not None else RuntimeError(f"{self.type_name}: {self.message}")
        raise ModelError(self.stage, exc)


def _unwrap(result):
    if isinstance(result, _Raised):
        result.raise_()
    if isinstance(result, ProtocolError):
        raise result
    return result


def _chunk_task(model, params, state_shapes, complex_, batched, kind, name, chunks):
    """One task: a list of chunks ``(flat_idx, deltas)`` -> list of loss arrays (runs in a worker)."""
    with single_threaded_blas():
        return _chunks(model, params, state_shapes, complex_, batched, kind, name, chunks)


def _chunks(model, params, state_shapes, complex_, batched, kind, name, chunks):
    out = []
    try:
        if batched:
            stage = f"loss_batch(params, {kind!r}, {name!r}, ...)"
            for idx, d in chunks:
                out.append(call_model(stage, model.loss_batch, params, kind, name, idx, d))
        else:
            ev = fd.SerialEvaluator(model, params, dict(state_shapes), complex_=complex_)
            for idx, d in chunks:
                out.append(ev.losses(kind, name, idx, d))
    except ModelError as exc:
        return _Raised(exc.stage, exc.exc)
    except ProtocolError as exc:
        return exc
    return out


def _directions_many_task(model, params, requests):
    try:
        return call_model(
            "loss_directions_many(params, requests)", model.loss_directions_many, params, requests
        )
    except ModelError as exc:
        return _Raised(exc.stage, exc.exc)
    except ProtocolError as exc:
        return exc


def _direction_task(model, params, state_shapes, complex_, use_batched, kind, name, directions, deltas):
    try:
        if use_batched:  # a model of the older protocol (loss_directions, one request per call): still read
            return call_model(
                f"loss_directions(params, {kind!r}, {name!r}, ...)",
                model.loss_directions,
                params,
                kind,
                name,
                directions,
                deltas,
            )
        ev = fd.SerialEvaluator(model, params, dict(state_shapes), complex_=complex_)
        return ev.direction_losses(kind, name, directions, deltas)
    except ModelError as exc:
        return _Raised(exc.stage, exc.exc)
    except ProtocolError as exc:
        return exc
