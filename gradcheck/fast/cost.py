"""What a full check will cost, estimated before it runs: the number of loss evaluations times the measured cost
of one, divided by the parallelism the evaluation will have.

The cost of one evaluation is measured on the model itself, the way the check will evaluate it: one
``loss_batch`` call of up to K single-entry perturbations for a model that declares "batched" (divided by K),
else one ``loss`` call; the faster of two tries (the first may pay for caches). The estimate decides
``mode="auto"`` (a full check when it fits the budget, else the screen) and tells a user up front when a full
check will take long.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .. import finite_diff as fd
from ..protocol import call_model
from .blas_threads import single_threaded_blas
from .chunked import CORES, auto_batch

PROBES = 2
PROBE_COPIES = 256  # perturbations in a batched probe: 8.1 us per evaluation at (50, 100, 4), 7.8 with 1310


@dataclass(frozen=True)
class Cost:
    """``evaluations`` of a full check, ``per_evaluation`` seconds (measured), ``parallel`` (chunk threads or
    workers), ``seconds`` = evaluations * per_evaluation / parallel; ``probe``: what was timed."""

    evaluations: int
    per_evaluation: float
    parallel: int
    seconds: float
    probe: str

    def settings(self) -> dict:
        """The part of the estimate that does not depend on timing (the report's settings)."""
        return {"evaluations_full": self.evaluations, "parallel": self.parallel, "probe": self.probe}

    def timings(self) -> dict:
        """The measured part (the report's timings, which vary from run to run)."""
        return {"estimate_per_evaluation": self.per_evaluation, "estimate_full_check": self.seconds}


def full_check_cost(
    model, spec, state_shapes: dict, todo, method: str, speed, sample: int | None = None
) -> Cost:
    """The estimated cost of checking every entry of ``todo`` (the rows; ``sample`` entries of each when given)
    with ``method``."""
    entries = sum(t.size if sample is None else min(sample, t.size) for t in todo)
    evaluations = entries * fd.EVALUATIONS[method]
    batched = ("batched" in spec.capabilities) if speed.batched is None else bool(speed.batched)
    batched = batched and callable(
        getattr(model, "loss_batch", None)
    )  # else the evaluator says what is wrong
    first = next(t for t in todo) if todo else None
    for arr in spec.params.values():  # what the evaluators will hand the model: read-only
        arr.flags.writeable = False
    if batched and first is not None and first.kind == "param":
        k = int(min(first.size, speed.batch or auto_batch(state_shapes), PROBE_COPIES))
        idx, deltas = first.flat_idx[:k], np.full(k, 1e-8 if method != "complex" else 1e-20j)
        stage = f"loss_batch(params, 'param', {first.name!r}, ...) (timing one call)"
        seconds = _best(
            lambda: call_model(stage, model.loss_batch, spec.params, "param", first.name, idx, deltas)
        )
        per, probe = seconds / k, f"loss_batch of {k} perturbations of {first.name!r}"
    else:
        per = _best(lambda: call_model("loss(params) (timing one call)", model.loss, spec.params, None))
        probe = "loss(params)"
    parallel = speed.workers or (CORES if batched else 1)
    return Cost(evaluations, per, parallel, evaluations * per / parallel, probe)


def _best(call) -> float:
    """The fastest of ``PROBES`` calls, with OpenBLAS on one thread as the chunks run it (its own threads would
    also keep spinning into the check that follows)."""
    best = float("inf")
    with single_threaded_blas():
        for _ in range(PROBES):
            t0 = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - t0)
    return best
