"""``check(model)``: every parameter entry and every state entry at every time step, analytic vs numerical.

Data flows one way: model -> analytic gradients and numerical derivatives -> comparison per row -> Report.
"""

from __future__ import annotations

import functools
import math
import time
from contextlib import ExitStack

import numpy as np

from . import finite_diff as fd
from . import screen
from .batched import ChunkedEvaluator
from .blas_threads import single_threaded_blas
from .executors import open_executor
from .protocol import ProtocolError, as_scalar_loss, call_model, inspect_model, split_gradients
from .report import Report, Row
from .tolerance import compare, default_rtol

SWEEP = (10.0, 1.0, 0.1, 0.01)       # step multipliers of the re-check


def _positive(name: str, value, *, allow_zero: bool) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ProtocolError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ProtocolError(f"{name}: expected a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


MODES = ("full", "screen")


def check(model, *, method: str = "auto", eps: float | None = None, rtol: float | None = None,
          atol: float | None = None, seed: int = 0, diagnose: bool = True, progress=None,
          evaluator=None, mode: str = "full", directions: int = 16, sample: int | None = None,
          batch: int | None = None, batched: bool | None = None, executor=None, workers: int | None = None,
          scheduler: str | None = None, blocks=None) -> Report:
    """Check ``model``'s analytic gradients against numerical derivatives over every entry.

    ``method``: ``"central"``, ``"richardson"``, ``"complex"`` (models declaring the "complex" capability) or
    ``"auto"`` (the default: central, except complex step for models declaring "complex" that are float32 or
    are screened; see :func:`gradcheck.finite_diff.resolve_method`). The report records the method used.
    ``eps``: base step (default per method and dtype, see :mod:`gradcheck.finite_diff`). ``rtol``/``atol``:
    see :mod:`gradcheck.tolerance`. ``seed``: seed of every random draw (screen directions, sampled entries),
    recorded in the report (the full check itself draws nothing).
    ``progress(n)`` is called after every n loss evaluations. Raises :class:`ProtocolError` on usage errors
    and :class:`ModelError` when the model raised.

    Speed (see :mod:`gradcheck.batched`, :mod:`gradcheck.screen`, :mod:`gradcheck.executors`):

    - ``mode``: ``"full"`` (every entry) or ``"screen"`` (``directions`` random directions per block and per
      (state, t); failing or near-threshold rows get the full check automatically).
    - ``sample``: check only this many random entries per row (the report's ``settings["coverage"]`` says how
      many of how many); None checks every entry.
    - ``batched``: use the model's ``loss_batch`` (None: when the model declares "batched"); ``batch``: chunk
      size K (None: automatic from the state sizes).
    - ``executor`` (a concurrent.futures.Executor), ``workers`` (a process pool of N) or ``scheduler`` (a
      dask.distributed address): where chunks run; None: in this process. Results do not depend on it.
    - ``blocks``: names of parameter blocks and states to check (None: all).
    """
    if method not in (fd.AUTO, *fd.METHODS):
        raise ProtocolError(f"method: expected one of {[fd.AUTO, *fd.METHODS]}, got {method!r}")
    if mode not in MODES:
        raise ProtocolError(f"mode: expected one of {list(MODES)}, got {mode!r}")
    directions = _count("directions", directions)
    sample = None if sample is None else _count("sample", sample)
    batch = None if batch is None else _count("batch", batch)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ProtocolError(f"seed: expected an integer >= 0, got {seed!r}")
    eps = _positive("eps", eps, allow_zero=False)
    rtol_in = _positive("rtol", rtol, allow_zero=False)
    atol = _positive("atol", atol, allow_zero=True) or 0.0
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    spec = inspect_model(model)
    method_requested = method
    method = fd.resolve_method(method, spec.dtype, spec.capabilities, mode)
    if method == "complex" and "complex" not in spec.capabilities:
        raise ProtocolError(
            "method 'complex' needs a model that accepts complex parameters; this one does not declare the "
            "'complex' capability (add capabilities = {'complex'} if its loss is analytic, or use --method central)"
        )
    use_batched = ("batched" in spec.capabilities) if batched is None else bool(batched)
    if use_batched and "batched" not in spec.capabilities:
        raise ProtocolError("batched evaluation needs a model declaring the 'batched' capability (loss_batch)")
    if use_batched and not callable(getattr(model, "loss_batch", None)):
        raise ProtocolError("the model declares the 'batched' capability but has no loss_batch method")
    dtype = spec.dtype
    base = eps if eps is not None else fd.default_step(method, dtype)
    rtol_ = rtol_in if rtol_in is not None else default_rtol(dtype, method)

    pg, sg = split_gradients(call_model("gradients(params)", model.gradients, _copies(spec.params)))
    extra = [k for k in pg if k not in spec.params]
    if extra:
        raise ProtocolError(f"gradients(params) returned gradients for unknown parameters {extra}; "
                            f"parameters() has {list(spec.params)}")
    states = {}
    for name, g in sg.items():
        arr = np.asarray(g)
        if not isinstance(name, str) or arr.ndim < 1 or arr.shape[0] < 1 or arr.dtype.kind not in "biufc":
            raise ProtocolError(
                f"gradients(params): state gradient {name!r} must be a numeric array of shape (T, *state_shape) "
                f"with T >= 1, got {type(g).__name__} shape {arr.shape}"
            )
        states[name] = arr
    if blocks is not None:
        blocks = [blocks] if isinstance(blocks, str) else list(blocks)
        unknown = [b for b in blocks if b not in spec.params and b not in states]
        if unknown:
            raise ProtocolError(f"blocks: unknown names {unknown}; parameters {list(spec.params)}, "
                                f"states {list(states)}")
    loss0 = as_scalar_loss(call_model("loss(params)", model.loss, _copies(spec.params), None), "loss(params)")
    timings["analytic"] = time.perf_counter() - t0

    shapes = {k: v.shape for k, v in states.items()}
    complex_ = method == "complex"
    settings_eval: dict = {}
    with open_executor(executor=executor, workers=workers, scheduler=scheduler) as (ex, where), ExitStack() as stack:
        ev = evaluator
        if ev is None:
            if use_batched or ex is not None:
                for arr in spec.params.values():     # the checker's own copies: shared read-only, not copied again
                    arr.flags.writeable = False
                ev = ChunkedEvaluator(model, spec.params, shapes, complex_=complex_, batched=use_batched,
                                      batch=batch, executor=ex, progress=progress)
                stack.callback(ev.close)             # its chunk threads end with the check, whatever happens
            else:
                ev = fd.SerialEvaluator(model, spec.params, shapes, complex_=complex_, progress=progress)
        settings_eval = {"batched": isinstance(ev, ChunkedEvaluator) and ev.batched,
                         "batch": getattr(ev, "batch", 1), "executor": where,
                         "threads": getattr(ev, "threads", 1)}
        ctx = _Context(ev, method, base, rtol_, atol, dtype, pg)
        rng = np.random.default_rng([seed, SAMPLE_STREAM]) if sample is not None else None

        t1 = time.perf_counter()
        rows: list[Row] = []
        escalated: list[str] = []
        screened: list[str] = []
        screen_ratios: dict[str, float] = {}
        screens = _screen_rows(ev, spec.params, pg, states, blocks, seed=seed, K=directions, method=method,
                               base=base, rtol=rtol_, atol=atol, dtype=dtype) if mode == "screen" else {}

        def keep_screened(row: Row) -> bool:
            """A screened row stands unless it failed or came near the threshold (then: the full check)."""
            screen_ratios[row.label] = row.ratio
            if screen.needs_full(row):
                escalated.append(row.label)
                return False
            rows.append(row)
            screened.append(row.label)
            return True

        row_number = 0
        for name, x in spec.params.items():
            row_number += 1
            if blocks is not None and name not in blocks:
                continue
            if mode == "screen" and name in screens and keep_screened(screens[name]):
                continue
            rows.append(ctx.param_row(name, x, pg.get(name), rng=rng, sample=sample))
        for name, g in states.items():
            if blocks is not None and name not in blocks:
                row_number += g.shape[0]
                continue
            by_step = screens.get(("state", name), {})
            for t in range(g.shape[0]):
                row_number += 1
                if mode == "screen" and keep_screened(by_step[t]):
                    continue
                rows.append(ctx.state_row(name, g, t, rng=rng, sample=sample))
        timings["numeric"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        if diagnose:
            for row in rows:
                if not row.passed and row.note is None:
                    row.diagnosis = ctx.diagnose(row, spec.params, states, model)
        timings["diagnosis"] = time.perf_counter() - t2
        settings_eval["model_calls"] = getattr(ev, "calls", None)

    settings = {
        "method": method, "method_requested": method_requested, "dtype": np.dtype(dtype).name, "eps": base, "eps_default": eps is None,
        "rtol": rtol_, "atol": atol, "step_rule": "h_j = eps * max(1, |x_j|)",
        "tolerance_rule": "|a - n| <= max(atol, 100 * roundoff_j, rtol * max|n|) + rtol * |n_j|",
        "mode": mode, "evaluation": settings_eval,
        "coverage": _coverage(rows, screened, _total(spec.params, states, blocks), sample, seed),
    }
    if mode == "screen":
        settings["screen"] = {
            "directions": directions, "seed": seed,
            "distribution": "rademacher (+-1 entries); 2-D blocks rank-1: v = a b^T, a and b +-1 vectors",
            "seed_rule": f"numpy.random.default_rng([seed, {screen.SCREEN_STREAM}, row number])",
            "near_threshold": screen.NEAR, "escalated_to_full": escalated,
            "screen_ratios": {k: _json_num(v) for k, v in screen_ratios.items()},
            "detection_rule": "a single-entry error e is caught when |e| > ~ rtol * max_k |v_k^T g| "
                              "(see gradcheck.screen); rows above near_threshold are re-checked in full",
        }
    return Report(rows=rows, seed=seed, method=method, settings=settings, model=_describe(model),
                  loss=_real(loss0), first_bad_step=first_bad_step(rows, list(states)), timings=timings)


SAMPLE_STREAM = 11       # seed stream id of sampled entries


def _screen_rows(ev, params, pg, states, blocks, *, seed, K, method, base, rtol, atol, dtype) -> dict:
    """The screen's rows of every parameter block (key: name) and of every state (key: ("state", name), value
    {t: Row}). The requests go to the model in groups of at most ``SCREEN_CALL_BYTES`` of directions, ONE
    evaluator call per group (the whole screen at the write-up's size), in this thread. Row numbers (the
    directions' seeds) as in the check's order: parameters 1..P, then each state's steps."""
    builders = []
    row_number = 0
    for name, x in params.items():
        row_number += 1
        if (blocks is not None and name not in blocks) or _shape_problem("", pg.get(name), x.shape) is not None:
            continue
        builders.append((name, functools.partial(screen.param_job, name, x, np.asarray(pg[name]), seed=seed,
                                                 row_number=row_number, K=K, method=method, base=base)))
    for name, g in states.items():
        first = row_number + 1
        row_number += g.shape[0]
        if blocks is not None and name not in blocks:
            continue
        job = functools.partial(screen.state_job, name, g, seed=seed, first_row=first, K=K, method=method, base=base)
        if screen.state_job_bytes(g, K) <= STATE_SCREEN_BYTES:
            builders.append((("state", name), job))
        else:                                    # large states: one request per step
            builders += [(("state", name), functools.partial(job, steps=[t])) for t in range(g.shape[0])]
    out: dict = {}
    group: list = []

    def flush():
        rows = screen.run(ev, [job for _, job in group], method=method, rtol=rtol, atol=atol, dtype=dtype)
        for (key, _), job_rows in zip(group, rows):
            if isinstance(key, tuple):
                out.setdefault(key, {}).update({r.t: r for r in job_rows})
            else:
                out[key] = job_rows[0]
        group.clear()

    with single_threaded_blas():                 # once for all rows (switching OpenBLAS's threads costs)
        size = 0
        for key, build in builders:
            job = build()
            if group and size + job.nbytes > SCREEN_CALL_BYTES:
                flush()
                size = 0
            group.append((key, job))
            size += job.nbytes
        if group:
            flush()
    return out


STATE_SCREEN_BYTES = 32 * 2**20   # a state's directions for all its steps in one request up to this size
SCREEN_CALL_BYTES = 64 * 2**20    # directions per evaluator call of the screen (requests are grouped up to it)


def _json_num(x: float):
    return float(x) if math.isfinite(x) else str(x)


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ProtocolError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def _total(params, states, blocks) -> int:
    sizes = {k: int(v.size) for k, v in params.items()} | {k: int(g.size) for k, g in states.items()}
    return sum(v for k, v in sizes.items() if blocks is None or k in blocks)


def _coverage(rows, screened: list[str], total: int, sample, seed) -> dict:
    """How many entries were compared one by one (screened rows compare directions, not entries)."""
    entries = sum(r.checked for r in rows if r.label not in screened)
    out = {"entries_checked": int(entries), "entries_total": int(total),
           "fraction": float(entries / total) if total else 1.0, "rows_screened_only": list(screened)}
    if sample is not None:
        out |= {"sample_per_row": sample, "sample_seed": seed,
                "sample_rule": f"numpy.random.default_rng([seed, {SAMPLE_STREAM}]), rows in check order"}
    return out


def first_bad_step(rows: list[Row], state_order: list[str]) -> dict | None:
    """The latest time step whose state row fails: where a BPTT error enters, going back in time.

    At equal t, the state the model lists first wins (the reference lists h before s: dL(t)/dh(t) is computed
    before dL(t)/ds(t) in the backward pass).
    """
    bad = [r for r in rows if r.kind == "state" and not r.passed]
    if not bad:
        return None
    rank = {n: k for k, n in enumerate(state_order)}
    worst = max(bad, key=lambda r: (r.t, -rank.get(r.name, 0)))
    return {"name": worst.name, "t": worst.t}


class _Context:
    def __init__(self, evaluator, method, base, rtol, atol, dtype, param_grads):
        self.ev, self.method, self.base, self.rtol, self.atol, self.dtype = (
            evaluator, method, base, rtol, atol, dtype)
        self.pg = param_grads
        self.top: dict[tuple, np.ndarray] = {}     # (kind, name, t) -> flat indices of the worst entries

    def _numeric(self, kind, name, x, idx, method=None, base=None):
        losses_at = (self.ev.param_losses if kind == "param" else self.ev.state_losses)
        what = f"parameter {name!r}" if kind == "param" else f"state {name!r}"
        return fd.derivatives(lambda j, d: losses_at(name, j, d), x, idx, method or self.method,
                              base or self.base, what)

    def _row(self, kind, name, t, a, n, noise, shape, idx=None) -> Row:
        """Compare analytic ``a`` with numeric ``n`` over the row's entries ``idx`` (None: all, in order)."""
        c = compare(a, n, noise, rtol=self.rtol, atol=self.atol)
        a, n = np.asarray(a).reshape(-1), np.asarray(n).reshape(-1)
        pos = (lambda k: k) if idx is None else (lambda k: int(idx[k]))
        self.top[(kind, name, t)] = c.top if idx is None else np.asarray(idx)[c.top]
        return Row(kind=kind, name=name, t=t, passed=c.passed, max_abs_err=c.max_abs_err,
                   max_rel_err=c.max_rel_err, worst_index=[int(k) for k in np.unravel_index(pos(c.worst), shape)],
                   analytic=_real(a[c.worst]), numeric=float(n[c.worst]), tolerance=c.tolerance, ratio=c.ratio,
                   resolution=c.resolution,
                   checked=int(a.size))

    def param_row(self, name: str, x: np.ndarray, g, *, rng=None, sample=None) -> Row:
        note = _shape_problem(f"param_grads[{name!r}]", g, x.shape)
        if note:
            return _broken_row("param", name, None, note, x.size)
        flat = x.reshape(-1)
        idx = _pick(flat.size, rng, sample)
        n, noise = self._numeric("param", name, flat, np.arange(flat.size) if idx is None else idx)
        a = np.asarray(g).reshape(-1)
        return self._row("param", name, None, a if idx is None else a[idx], n, noise, x.shape, idx)

    def state_row(self, name: str, g: np.ndarray, t: int, *, rng=None, sample=None) -> Row:
        """The row of state ``name`` at step t; ``g`` is the whole ``(T, *state_shape)`` analytic gradient."""
        step_shape = g.shape[1:]
        per_t = int(np.prod(step_shape, dtype=int))
        idx = _pick(per_t, rng, sample)
        local = np.arange(per_t) if idx is None else idx
        zeros = np.zeros(g.size, dtype=np.result_type(self.dtype, np.float32))
        n, noise = self._numeric("state", name, zeros, t * per_t + local)
        a = g.reshape(g.shape[0], per_t)[t]
        return self._row("state", name, t, a if idx is None else a[idx], n, noise, step_shape or (1,), idx)

    def diagnose(self, row: Row, params, states, model) -> dict:
        """Re-check the row's worst entries at several steps (and by complex step when the model allows it).

        Steps ``eps * (10, 1, 0.1, 0.01)``. A discrepancy that shrinks into tolerance at some step, or falls by
        10x or more per 10x smaller step (truncation error converging like h^p), is finite-difference error: the
        gradient is right and the step is at fault. One that stays within a factor 3 while the step changes 100x
        is a wrong gradient. With the model's "complex" capability, complex step (exact to rounding) decides.
        """
        worst = self.top[(row.kind, row.name, row.t)]
        if row.kind == "param":
            x = params[row.name].reshape(-1)
            analytic = np.asarray(self.pg[row.name]).reshape(-1)[worst].real
        else:
            g = states[row.name]
            x = np.zeros(g.size, dtype=np.result_type(self.dtype, np.float32))
            worst = row.t * (g.size // g.shape[0]) + worst     # flat index into the (T, ...) tap
            analytic = g.reshape(-1)[worst].real
        sweep = []
        for mult in SWEEP:
            base = self.base * mult
            try:
                n, noise = self._numeric(row.kind, row.name, x, worst, base=base)
            except fd.StepError:
                continue
            sweep.append((base, n))
        errors = [float(np.max(np.abs(analytic - n))) for _, n in sweep]
        tol = row.tolerance
        out = {
            "entries": [int(j) for j in self.top[(row.kind, row.name, row.t)]],
            "steps": [b for b, _ in sweep],
            "max_errors": errors,
        }
        complex_ok = self.method != "complex" and getattr(self.ev, "complex", False) is False and \
            "complex" in getattr(model, "capabilities", ())
        if complex_ok:
            cev = fd.SerialEvaluator(model, params, {k: v.shape for k, v in states.items()}, complex_=True)
            get = cev.param_losses if row.kind == "param" else cev.state_losses
            n_cs, _ = fd.derivatives(lambda j, d: get(row.name, j, d), x, worst, "complex",
                                     fd.default_step("complex", self.dtype), row.name)
            err_cs = float(np.max(np.abs(analytic - n_cs)))
            out["complex_step_error"] = err_cs
            wrong = err_cs > tol
            out["verdict"] = "wrong gradient" if wrong else "finite-difference error"
            out["reason"] = (f"complex step (exact to rounding) differs from the analytic value by {err_cs:.3e}"
                             if wrong else
                             f"complex step agrees with the analytic value ({err_cs:.3e}): the step size is at fault")
            return out
        if errors and min(errors) <= tol:
            k = int(np.argmin(errors))
            out["verdict"] = "finite-difference error"
            out["reason"] = (f"the discrepancy shrinks to {errors[k]:.3e} (within tolerance) at step "
                             f"{sweep[k][0]:.1e}: try --eps {sweep[k][0]:.1e}")
        elif len(errors) >= 3 and errors[-3] >= 10.0 * errors[-2] and errors[-2] >= 10.0 * errors[-1]:
            out["verdict"] = "finite-difference error"
            out["reason"] = (f"the discrepancy falls {errors[-3] / errors[-2]:.0f}x and "
                             f"{errors[-2] / errors[-1]:.0f}x per 10x smaller step (truncation error of a "
                             f"correct gradient): use a smaller --eps, e.g. {sweep[-1][0]:.1e}, or --method "
                             f"richardson")
        elif len(errors) >= 3 and max(errors[1:]) <= 3.0 * min(errors[1:]):
            out["verdict"] = "wrong gradient"
            out["reason"] = (f"the discrepancy stays at {min(errors[1:]):.3e}..{max(errors[1:]):.3e} while "
                             f"the step changes {sweep[1][0] / sweep[-1][0]:.0f}x")
        else:
            out["verdict"] = "inconclusive"
            out["reason"] = ("the discrepancy changes with the step but neither settles nor falls within "
                             "tolerance; try --method complex if the model supports it")
        return out


def _pick(size: int, rng, sample) -> np.ndarray | None:
    """Sorted random entries (without replacement) of a row of ``size``, or None for every entry."""
    if rng is None or sample is None or sample >= size:
        return None
    return np.sort(rng.choice(size, size=sample, replace=False))


def _shape_problem(what: str, g, expected: tuple[int, ...]) -> str | None:
    if g is None:
        return f"{what} is missing: gradients() returned no gradient for this parameter"
    arr = np.asarray(g)
    if arr.dtype.kind not in "biufc":
        return f"{what} is not numeric (dtype {arr.dtype})"
    if arr.shape != tuple(expected):
        return f"{what} has shape {arr.shape}, expected {tuple(expected)}"
    return None


def _broken_row(kind, name, t, note, size) -> Row:
    nan = float("nan")
    return Row(kind=kind, name=name, t=t, passed=False, max_abs_err=nan, max_rel_err=nan, worst_index=[],
               analytic=nan, numeric=nan, tolerance=nan, ratio=math.inf, checked=size, note=note)


def _copies(params):
    return {k: v.copy() for k, v in params.items()}


def _real(v) -> float:
    return float(np.real(v))


def _describe(model) -> str:
    r = repr(model)
    return r if len(r) <= 200 and " at 0x" not in r else type(model).__name__
