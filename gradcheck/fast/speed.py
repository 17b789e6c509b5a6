"""The speed options of a check and the evaluator they choose. Results never depend on them.

- ``batched``: use the model's ``loss_batch`` (None: when the model declares "batched"); ``batch``: the chunk
  size K (None: automatic from the state sizes).
- ``executor`` (a ``concurrent.futures.Executor``), ``workers`` (a process pool of N) or ``scheduler`` (a
  dask.distributed address): where chunks run; None: in this process.
- ``evaluator``: an evaluator object of one's own (the interface of
  :class:`gradcheck.finite_diff.SerialEvaluator`), used as is.

With none of these given, a model declaring "processes" (see :mod:`gradcheck.protocol`) gets one worker process
per core for a full check estimated above :data:`PROCESSES_AFTER` seconds (:meth:`Speed.for_model`).
"""

from __future__ import annotations

import difflib
import multiprocessing
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields, replace

from ..errors import ProtocolError
from ..finite_diff import SerialEvaluator
from ..options import count, optional
from .chunked import CORES, ChunkedEvaluator
from .executors import open_executor

PROCESSES_AFTER = 2.0  # seconds: starting the workers and sending them the model costs about 0.1 s


def forks() -> bool:
    """Worker processes start by fork (Linux before Python 3.14): they start at once, with the model's classes
    and modules as this process has them. Elsewhere (spawn, forkserver) they are only used when asked for."""
    method = multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]
    return method == "fork"


@dataclass(frozen=True)
class Speed:
    """How to evaluate the perturbations (see the module docstring)."""

    batched: bool | None = None
    batch: int | None = None
    executor: object = None
    workers: int | None = None
    scheduler: str | None = None
    evaluator: object = None

    @classmethod
    def of(cls, options: dict) -> Speed:
        """From ``check()``'s speed keywords; an unknown keyword is a ProtocolError naming the closest one."""
        known = [f.name for f in fields(cls)]
        for key in options:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                raise ProtocolError(
                    f"check() got an unknown option {key!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else f"; speed options: {known}")
                )
        speed = cls(**options)
        optional(count, "batch", speed.batch)
        return speed

    def chosen(self) -> bool:
        """The caller said how to evaluate (then it is done so, whatever the model declares)."""
        given = (self.executor, self.workers, self.scheduler, self.evaluator)
        return self.batched is False or any(v is not None for v in given)

    def wants_processes(self, spec, mode: str) -> bool:
        """A full check of a model declaring "processes" and "batched", the caller having chosen nothing: it
        runs in worker processes if its estimated cost exceeds :data:`PROCESSES_AFTER` (:meth:`for_model`)."""
        caps = spec.capabilities
        wanted = mode != "screen" and CORES > 1 and {"processes", "batched"} <= caps and not self.chosen()
        return wanted and forks()

    def for_model(self, spec, mode: str, cost) -> Speed:
        """One worker process per core when :meth:`wants_processes` and the estimate exceeds the threshold."""
        if not self.wants_processes(spec, mode) or cost is None or cost.seconds <= PROCESSES_AFTER:
            return self
        return replace(self, workers=CORES)


@contextmanager
def open_evaluator(model, spec, state_shapes: dict, plan, speed: Speed, progress=None):
    """Yield ``(evaluator, description)``: the caller's evaluator, a chunked one (a batched model, or an
    executor), or the serial one, evaluating in complex arithmetic when ``plan.method`` is the complex step.
    Executors and chunk threads this opened are shut down on exit."""
    complex_ = plan.method == "complex"
    batched = ("batched" in spec.capabilities) if speed.batched is None else bool(speed.batched)
    if batched and "batched" not in spec.capabilities:
        raise ProtocolError(
            "batched evaluation needs a model declaring the 'batched' capability (loss_batch)"
        )
    if batched and not callable(getattr(model, "loss_batch", None)):
        raise ProtocolError("the model declares the 'batched' capability but has no loss_batch method")
    with (
        open_executor(executor=speed.executor, workers=speed.workers, scheduler=speed.scheduler) as (
            ex,
            where,
        ),
        ExitStack() as stack,
    ):
        ev = speed.evaluator
        if ev is None and (batched or ex is not None):
            for arr in spec.params.values():  # the checker's own copies: shared read-only, not copied again
                arr.flags.writeable = False
            ev = ChunkedEvaluator(
                model,
                spec.params,
                state_shapes,
                complex_=complex_,
                batched=batched,
                batch=speed.batch,
                executor=ex,
                progress=progress,
            )
            stack.callback(ev.close)  # its chunk threads end with the check, whatever happens
        elif ev is None:
            ev = SerialEvaluator(model, spec.params, state_shapes, complex_=complex_, progress=progress)
        yield (
            ev,
            {
                "batched": isinstance(ev, ChunkedEvaluator) and ev.batched,
                "batch": getattr(ev, "batch", 1),
                "executor": where,
                "threads": getattr(ev, "threads", 1),
            },
        )
