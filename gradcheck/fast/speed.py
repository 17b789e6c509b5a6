"""The speed options of a check and the evaluator they choose. Results never depend on them.

- ``batched``: use the model's ``loss_batch`` (None: when the model declares "batched"); ``batch``: the chunk
  size K (None: automatic from the state sizes).
- ``executor`` (a ``concurrent.futures.Executor``), ``workers`` (a process pool of N) or ``scheduler`` (a
  dask.distributed address): where chunks run; None: in this process.
- ``evaluator``: an evaluator object of one's own (the interface of
  :class:`gradcheck.finite_diff.SerialEvaluator`), used as is.
"""

from __future__ import annotations

import difflib
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields

from ..errors import ProtocolError
from ..finite_diff import SerialEvaluator
from ..options import count, optional
from .chunked import ChunkedEvaluator
from .executors import open_executor


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
