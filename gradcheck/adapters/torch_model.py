"""PyTorch functions and modules as models of the checker's protocol (public as :mod:`gradcheck.torch`).

    import gradcheck.torch as gt

    report = gt.check_function(lstm_seq, {"x": x, "h0": h0, "c0": c0, "Wx": Wx, "Wh": Wh, "b": b},
                               time_axis={"x": 0})
    report = gt.check_module(torch.nn.LSTM(50, 100), (x,))

What is compared:

- Rows: every floating tensor among the inputs (named by their keys, or ``arg0``, ``arg1``, ... for inputs
  given as a tuple), those inside a tuple, list, named tuple or dict argument included (``nn.LSTM``'s
  ``(h0, c0)`` given as the tuple ``arg1``: rows ``arg1.0``, ``arg1.1``; a named tuple's by field, a dict's by
  key), and, for a module, every parameter (named as ``named_parameters()`` names them: ``weight_ih_l0``,
  ``cell.weight``). Everything else (integer and boolean tensors, complex tensors, Python values, the module's
  buffers) is held fixed, and the report says what (``settings["torch"]["held_fixed"]``, the model's repr).
- The loss: ``loss(output) -> scalar tensor`` when given, else a random projection ``L = sum_i <P_i, out_i>``
  of every floating tensor of the output (tuples, lists, dicts and named tuples are walked), each ``P_i``
  standard normal from ``numpy.random.default_rng([seed, 31])`` in output order, in float64. The report's
  ``settings["torch"]`` records the seed and the output shapes.
- Analytic: the function's own backward (``torch.autograd.grad`` of that loss under ``enable_grad``); an input
  the backward gives no gradient (``None``) counts as zero.
- Numeric: finite differences of the forward under ``torch.inference_mode`` (``torch.no_grad`` for a forward
  that raises there or gives another value: ``settings["torch"]["differencing_under"]``), in float64 by
  default: float32, float16 and bfloat16 inputs and parameters are promoted to a float64 copy
  (``settings["torch"]["promoted_from"]`` says from what). ``dtype=torch.float32`` checks in float32, with
  float32's tolerances.

The module and the inputs are copied when the model is made (the module with ``copy.deepcopy``): a check never
changes them, and later changes to them do not move the point. A forward that gives two different losses at
the same point (dropout in training mode) is refused when the model is made.

Speed (measured: ``python benchmarks/run.py --only torch`` and ``benchmarks/torch_choices.py``; docs/torch.md):
the model declares "batched": ``loss_batch`` evaluates a chunk of single-entry perturbations in place on a
private copy of the module and the inputs (a numpy view of each tensor's storage: no conversion and no torch
call to move an entry), sums the projection in numpy, and holds torch's intra-op threads to one (two made each
small forward slower; on a loaded 2-core machine up to 57x in torch's own gradcheck). A model that pickles (a
module or a module-level function; not a lambda or a local function) also declares "processes": a full check
estimated above 2 s then runs in one worker process per core on Linux, the model pickled to them (the Python part of
every forward holds the GIL: for nn.LSTM(50, 100) 14.4 and 15.7 s against 22.1 and 26.6 s on the chunk
threads, alternating in one process). Otherwise, or with ``workers``/``executor`` given, chunks run as the
caller says or concurrently on the checker's chunk threads (torch releases the GIL inside its operators) until
one chunk takes 8x the median time per evaluation of the recent chunks; from then on one at a time (on a loaded
machine each GIL hand-over between the threads can wait for the scheduler: chunks 10x slower were measured).
"""

from __future__ import annotations

import copy
import os
import pickle
import statistics
import threading
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import Mapping
from contextlib import contextmanager, nullcontext

import numpy as np
import torch

from ..checker import check
from ..protocol import ModelError, ProtocolError, call_model
from . import validate as v

PROJECTION_STREAM = 31  # the projection: numpy.random.default_rng([seed, PROJECTION_STREAM])
DTYPES = {"float64": torch.float64, "float32": torch.float32}
COMPLEX = {torch.float64: torch.complex128, torch.float32: torch.complex64}
NUMPY_DTYPES = (torch.float64, torch.float32, torch.complex128, torch.complex64)
PROJECTION_RULE = (
    "L = sum_i <P_i, out_i> over the floating output tensors in output order; P_i standard normal from "
    f"numpy.random.default_rng([seed, {PROJECTION_STREAM}]), drawn in that order, in float64"
)


class Model:
    """A PyTorch function or module at a point, as a model of the checker's protocol (see the module doc).

    ``fn``: a function of tensors (``MyFunction.apply``, or a ``torch.autograd.Function`` subclass, whose
    ``apply`` is used), or an ``nn.Module``. ``inputs``: a dict name -> value (called ``fn(**inputs)``), or a
    tuple (called ``fn(*inputs)``; rows ``arg0``, ``arg1``, ...); a single tensor counts as a 1-tuple. The
    floating tensors inside a tuple, list or dict argument are rows too (``arg1.0``, ``state.h``).
    ``check_parameters``: give the module's parameters rows (default: when ``fn`` is a module).
    ``loss``: ``loss(output) -> scalar tensor`` (default: the seeded random projection). ``time_axis``
    ``{name: axis}``: one row per index along that axis (``x[t=3]``), taking part in locating the first bad
    step. ``split`` ``{name: (axis, [part names])}``: a fused block reported as equal parts (``weight_ih_l0:i``).
    ``dtype``: ``torch.float64`` (default; lower precisions are promoted) or ``torch.float32`` (or their
    names). ``seed``: the projection's seed (the check's seed, to record it). ``complex_step``: declare that
    the forward (and ``loss``) is analytic in complex inputs, which allows ``method="complex"``.

    Usage errors (:class:`gradcheck.ProtocolError`) name the input: nothing floating to check, a tensor not on
    the CPU, NaN or inf, an unknown name in ``time_axis`` / ``split``, a clash between an input and a parameter
    name, an output with no floating tensor, a ``loss`` that does not return a scalar tensor, a forward that is
    not deterministic. Exceptions raised by the function or its backward are :class:`gradcheck.ModelError`.
    """

    def __init__(
        self,
        fn,
        inputs,
        *,
        loss=None,
        time_axis=None,
        split=None,
        dtype=torch.float64,
        seed: int = 0,
        complex_step: bool = False,
        check_parameters: bool | None = None,
    ):
        self._fn, module = _callable(fn)
        self._loss = _loss_fn(loss)
        self.dtype = _dtype(dtype)
        self.seed = _seed(seed)
        with_params = module is not None if check_parameters is None else bool(check_parameters)
        if with_params and module is None:
            raise ProtocolError(
                f"check_parameters: {v.fn_name(fn)} is not an nn.Module, it has no parameters"
            )
        self._label = ("module" if module is not None else "fn") + (
            "(**inputs)" if isinstance(inputs, Mapping) else "(*inputs)"
        )
        self._positional, self._slots, input_values, fixed = _read_inputs(inputs)
        self._proto, param_values = _private_module(module, self.dtype, with_params)
        clash = sorted(set(param_values) & set(input_values))
        if clash:
            raise ProtocolError(
                f"inputs: {clash} {'is' if len(clash) == 1 else 'are'} also the name of a module parameter; "
                f"rename the input (rows are named by input names and named_parameters() names)"
            )
        originals = {n: t.dtype for n, t in {**param_values, **input_values}.items()}
        if not originals:
            raise ProtocolError(_nothing_to_check(fixed))
        self._params = [n for n in param_values]
        self._inputs = [n for n in input_values]
        self._values = {
            n: _as_array(n, t, self.dtype, kind) for n, t, kind in _named(param_values, input_values)
        }
        self.time_axes = v.time_axes(time_axis, self._values)
        self.splits = v.splits(split, self._values)
        v.no_overlap(self.time_axes, self.splits)
        self.capabilities = frozenset({"batched", "complex"} if complex_step else {"batched"})
        self._lock, self._free = threading.Lock(), {}
        self._inference = False  # differencing under torch.inference_mode (see _first_forward)
        self._chunks = _ChunkGate()  # concurrent chunks, one at a time after a stall (see "Speed" above)
        self._projection = None  # drawn at the first forward, from the output's floating tensors
        self._first_forward(originals)
        if _picklable(self):  # a long full check then runs in worker processes (see "Speed" above)
            self.capabilities |= {"processes"}
        self.report_settings = {"torch": self._settings(originals, fixed)}

    # ---- the protocol
    def parameters(self) -> dict:
        return {n: a.copy() for n, a in self._values.items()}

    def loss(self, params, taps=None):
        if taps:
            raise ProtocolError(
                f"a torch Model has no recurrent states, but taps were given for {list(taps)}"
            )
        complex_ = any(np.iscomplexobj(p) for p in params.values())
        with self._worker(complex_) as w:
            w.load(params)
            return call_model(self._label, w.value)

    def loss_batch(self, params, kind, name, flat_idx, deltas):
        """L with ``params[name].flat[flat_idx[k]] += deltas[k]``, one entry at a time, in place on a private
        copy (see :mod:`gradcheck.protocol`); the same arithmetic as :meth:`loss`."""
        if kind != "param":
            raise ProtocolError(f"a torch Model has no recurrent states (asked for the {kind} {name!r})")
        deltas = np.asarray(deltas)
        complex_ = deltas.dtype.kind == "c"
        out = np.empty(len(flat_idx), np.complex128 if complex_ else np.float64)
        stage = f"{self._label} with {name!r} perturbed"
        quiet = torch.inference_mode if self._inference else torch.no_grad
        with self._chunks.enter(len(out)), self._worker(complex_, differencing=True) as w, quiet():
            w.load(params)
            flat = w.flat[name]
            for k, (j, d) in enumerate(zip(flat_idx, deltas)):
                old = flat[j]
                flat[j] = old + d
                try:
                    out[k] = call_model(stage, w.value_no_grad)
                finally:
                    flat[j] = old
        return out

    def gradients(self, params):
        names = [*self._params, *self._inputs]
        with self._worker(False) as w:
            w.load(params)
            leaves = [w.tensors[n] for n in names]
            with torch.enable_grad():
                out = call_model(f"{self._label} (the forward of the analytic pass)", w.call)
                L = w.scalar(out)
                grads = [None] * len(leaves)
                if L.requires_grad:
                    grads = call_model(
                        f"the backward of {self._label} (torch.autograd.grad of the loss)",
                        torch.autograd.grad,
                        L,
                        leaves,
                        allow_unused=True,
                    )
        return {n: self._gradient(n, g) for n, g in zip(names, grads)}, {}

    # ---- helpers
    def _gradient(self, name: str, g) -> np.ndarray:
        shape, np_dtype = self._values[name].shape, self._values[name].dtype
        if g is None:
            return np.zeros(shape, np_dtype)
        if g.is_complex():
            raise ProtocolError(f"the backward returned a complex gradient for {name!r}; it must be real")
        return g.detach().to(self.dtype).cpu().numpy().reshape(shape).copy()

    @contextmanager
    def _worker(self, complex_: bool, *, differencing: bool = False):
        """A private copy of the module and inputs for this thread's evaluations (taken from a free list), used
        with torch on one intra-op thread. ``differencing``: a copy only :meth:`loss_batch` uses (under
        ``torch.inference_mode`` the tensors a forward leaves in its module could not enter an autograd
        pass). Every torch operation of the model runs inside this block, the copy too: in a worker process
        forked from a parent whose OpenMP team was busy, an operation that went parallel would wait forever
        for threads that do not exist in the child (seen: a deadlock in ``clone``); with one thread torch
        never opens a parallel region."""
        with one_torch_thread():
            key = (complex_, differencing)
            with self._lock:
                free = self._free.setdefault(key, [])
                w = free.pop() if free else None
            if w is None:
                w = _Worker(self, COMPLEX[self.dtype] if complex_ else self.dtype)
            try:
                yield w
            finally:
                with self._lock:
                    self._free[key].append(w)

    def _first_forward(self, originals: dict) -> None:
        """Run the forward at the point: learn the outputs' shapes (``_outputs``), draw the projection, refuse
        a random forward."""
        with self._worker(False) as w:
            w.load(self._values)
            try:
                out = call_model(self._label, w.call_no_grad)
            except ModelError as exc:
                hint = _promotion_hint(originals, self.dtype)
                if not hint:
                    raise
                raise ModelError(f"{self._label} {hint}", exc.exc) from exc.exc
            shapes = self._outputs = [list(t.shape) for t in _floating_leaves(out, "the output")]
            if self._loss is None:
                if not shapes:
                    raise ProtocolError(
                        f"{self._label} returned no floating tensor ({_describe_output(out)}); return the "
                        "tensors whose gradient the backward computes, or pass loss=lambda out: ..."
                    )
                rng = np.random.default_rng([self.seed, PROJECTION_STREAM])
                self._projection = [rng.standard_normal(s) for s in shapes]
                self._flat_projection = [p.reshape(-1) for p in self._projection]
            first, second = (call_model(self._label, w.value) for _ in range(2))
        if first != second and not (np.isnan(first) and np.isnan(second)):
            raise ProtocolError(
                f"{self._label} is not deterministic: two calls at the same point gave losses {first!r} and "
                f"{second!r}; finite differences need the same function at every call (dropout in training "
                "mode? call module.eval(), or fix the random seed inside the function)"
            )
        self._inference = self._same_in_inference_mode(first)

    def _same_in_inference_mode(self, value) -> bool:
        """Difference under ``torch.inference_mode`` (about 13% less time per ``nn.LSTM`` forward than under
        ``no_grad``: ``benchmarks/torch_choices.py``) when the forward there gives the loss it gives under
        ``no_grad``, bit for bit. A forward that needs autograd itself (``enable_grad`` and ``autograd.grad``
        inside it) raises there, and keeps ``no_grad``."""
        try:
            with self._worker(False, differencing=True) as w, torch.inference_mode():
                w.load(self._values)
                got = w.value_no_grad()
        except Exception:  # noqa: BLE001  (whatever the forward raises in inference mode: use no_grad)
            return False
        return got == value or bool(np.isnan(got) and np.isnan(value))

    def _settings(self, originals: dict, fixed: list[str]) -> dict:
        original = {n: str(d).replace("torch.", "") for n, d in originals.items()}
        wider = sorted(
            {o for o, d in zip(original.values(), originals.values()) if d.itemsize < self.dtype.itemsize}
        )
        return {
            "torch_version": torch.__version__,
            "checks": "module" if self._params else "function",
            "dtype": _name(self.dtype),
            "original_dtypes": original,
            "promoted_from": ", ".join(wider) if wider else None,
            "loss": "loss(output)" if self._loss is not None else "random projection",
            "projection_seed": None if self._loss is not None else self.seed,
            "projection_rule": None if self._loss is not None else PROJECTION_RULE,
            "output_shapes": self._outputs,
            "held_fixed": fixed,
            "intra_op_threads_while_differencing": 1,
            "differencing_under": "torch.inference_mode" if self._inference else "torch.no_grad",
            "chunks": (
                "in one worker process per core for a full check estimated above 2 s (Linux); else "
                if "processes" in self.capabilities
                else "the model does not pickle: "
            )
            + "concurrent on the checker's chunk threads, one at a time after a chunk ran 8x slower per "
            "evaluation than the median of the recent ones (workers=N: N processes)",
        }

    def __repr__(self) -> str:
        what = _short(self._proto) if self._proto is not None else v.fn_name(self._fn)
        promoted = (
            self.report_settings["torch"]["promoted_from"] if hasattr(self, "report_settings") else None
        )
        dtype = _name(self.dtype) + (f" promoted from {promoted}" if promoted else "")
        loss = "loss(output)" if self._loss is not None else f"random projection seed {self.seed}"
        params = f", params={len(self._params)}" if self._params else ""
        held = self.report_settings["torch"]["held_fixed"] if hasattr(self, "report_settings") else []
        fixed = f", held fixed={held}" if held else ""
        return f"torch.Model({what}, inputs={self._inputs}{fixed}{params}, {dtype}, loss={loss})"

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_lock"], state["_chunks"], state["_free"] = None, None, {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock, self._chunks = threading.Lock(), _ChunkGate()


class _ChunkGate:
    """Chunks of ``loss_batch`` run concurrently (the checker's chunk threads) until one of them took ``STALL``
    times the median time per evaluation of the recent chunks; from then on they run one at a time (see "Speed"
    in the module doc: with two threads every torch operator hands the GIL over, and on a loaded machine a
    hand-over can wait for the scheduler). The median, not the best: a chunk running alone is up to ~2x faster
    per evaluation than two running together, and a busy moment doubles it again without being a stall."""

    STALL = 8.0
    RECENT = 32  # chunks the median is taken over
    MIN_CHUNKS = 4  # timed chunks before a stall can be called
    MIN_EVALUATIONS = 16  # shorter chunks are not timed

    def __init__(self):
        self.serial = False
        self.recent: deque = deque(maxlen=self.RECENT)  # seconds per evaluation
        self._lock = threading.Lock()

    @contextmanager
    def enter(self, evaluations: int):
        gate = self._lock if self.serial else nullcontext()
        with gate:
            t0 = time.perf_counter()
            yield
            self.note(time.perf_counter() - t0, evaluations)

    def note(self, seconds: float, evaluations: int) -> None:
        """Record a chunk's time; a stall switches to one chunk at a time for the model's lifetime."""
        if evaluations < self.MIN_EVALUATIONS:
            return
        per = seconds / evaluations
        if len(self.recent) >= self.MIN_CHUNKS and per > self.STALL * statistics.median(self.recent):
            self.serial = True
        self.recent.append(per)


class _Worker:
    """A private copy of the module (when there is one) and of the checked inputs in ``dtype``; ``flat[name]``
    is a numpy view of each checked tensor's storage, so an entry is moved without calling into torch."""

    def __init__(self, model: Model, dtype: torch.dtype):
        self.model = model
        self.module = None
        self.tensors = {}
        if model._proto is not None:
            with warnings.catch_warnings():  # "Complex modules are a new feature": the complex step knows
                warnings.simplefilter("ignore")
                self.module = copy.deepcopy(model._proto).to(dtype)
            named = dict(self.module.named_parameters())
            self.tensors = {n: named[n] for n in model._params}
        for n in model._inputs:
            self.tensors[n] = torch.zeros(model._values[n].shape, dtype=dtype, requires_grad=True)
        self.flat = {n: t.detach().view(-1).numpy() for n, t in self.tensors.items()}
        self.acc = torch.complex128 if dtype.is_complex else torch.float64
        self.P = None

    def load(self, params) -> None:
        missing = [n for n in self.flat if n not in params]
        if missing:
            raise ProtocolError(
                f"params has no {missing}; expected the names of parameters(): {list(self.flat)}"
            )
        for n, flat in self.flat.items():
            value = np.asarray(params[n])
            if value.shape != self.model._values[n].shape:
                raise ProtocolError(
                    f"params[{n!r}] has shape {value.shape}, expected {self.model._values[n].shape}"
                )
            np.copyto(flat, value.reshape(-1))

    def call(self):
        """The user's function on fresh copies of the inputs (it may write into them), the fixed ones as given."""
        m = self.model
        args = {slot: _fill(template, self.tensors) for slot, template in m._slots.items()}
        fn = self.module if self.module is not None else m._fn
        return fn(*args.values()) if m._positional else fn(**args)

    def call_no_grad(self):
        with torch.no_grad():
            return self.call()

    def scalar(self, out) -> torch.Tensor:
        """The loss of an output: the user's ``loss(output)``, or the projection (see the module doc)."""
        m = self.model
        if m._loss is not None:
            value = call_model("loss(output)", m._loss, out)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise ProtocolError(
                    f"loss(output) must return a scalar tensor (one element), got {_describe_output(value)}"
                    + (
                        "; a Python number has no gradient: keep it a tensor"
                        if isinstance(value, float)
                        else ""
                    )
                )
            return value.reshape(())
        leaves = self._leaves(out)
        if self.P is None:
            self.P = [torch.from_numpy(p).to(self.acc).reshape(-1) for p in m._projection]
        return sum(torch.dot(t.reshape(-1).to(self.acc), p) for t, p in zip(leaves, self.P))

    def _leaves(self, out) -> list[torch.Tensor]:
        m = self.model
        leaves = _floating_leaves(out, "the output", complex_ok=self.acc.is_complex)
        if len(leaves) != len(m._outputs) or any(list(t.shape) != s for t, s in zip(leaves, m._outputs)):
            shapes = [list(t.shape) for t in leaves]
            raise ProtocolError(
                f"{m._label} returned floating tensors of shapes {shapes}, but {m._outputs} at the first call; "
                "the output's structure must not depend on the values"
            )
        return leaves

    def value(self):
        """The loss as a Python number, without autograd (see :meth:`value_no_grad`)."""
        with torch.no_grad():
            return self.value_no_grad()

    def value_no_grad(self):
        """The loss as a Python number; the caller holds ``torch.no_grad`` (or ``inference_mode``). The
        projection is summed in numpy (float64 or complex128): the same sum as :meth:`scalar`, without a torch
        operator per output tensor."""
        out = self.call()
        if self.model._loss is not None:
            return self.scalar(out).item()
        total = 0.0
        for t, p in zip(self._leaves(out), self.model._flat_projection):
            if t.requires_grad or t.dtype not in NUMPY_DTYPES:
                t = t.detach().to(self.acc)
            total = total + np.dot(t.numpy().reshape(-1), p)
        return total.item() if isinstance(total, np.generic) else total


_THREADS_LOCK = threading.Lock()
_THREADS = {"depth": 0, "saved": 1}


def _after_fork_in_child() -> None:
    """A forked worker process starts with its own lock and no open block (a parent thread may have held them)."""
    global _THREADS_LOCK
    _THREADS_LOCK = threading.Lock()
    _THREADS.update(depth=0, saved=1)


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def one_torch_thread():
    """Torch's intra-op threads held to one inside the block (nested and thread-safe; the outermost restores)."""
    with _THREADS_LOCK:
        if _THREADS["depth"] == 0:
            _THREADS["saved"] = torch.get_num_threads()
            if _THREADS["saved"] != 1:
                torch.set_num_threads(1)
        _THREADS["depth"] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS["depth"] -= 1
            if _THREADS["depth"] == 0 and _THREADS["saved"] != 1:
                torch.set_num_threads(_THREADS["saved"])


def check_function(fn, inputs, *, time_axis=None, split=None, loss=None, **options):
    """Check ``fn``'s backward (autograd) against finite differences of its forward at ``inputs``; the Report.

    Rows: every floating tensor of ``inputs`` (a module passed as ``fn`` keeps its parameters fixed; see
    :func:`check_module`). ``time_axis``, ``split``, ``loss`` and the keywords ``dtype`` and ``complex_step``:
    see :class:`Model`; the other ``options``: the keywords of :func:`gradcheck.check` (``method``, ``mode``,
    ``seed``, ``rtol``, ...). The projection uses the check's ``seed``.
    """
    return _checked(fn, inputs, False, loss, time_axis, split, **options)


def check_module(module, inputs, *, loss=None, time_axis=None, split=None, **options):
    """Check ``module``'s backward for every named parameter and every floating input; the Report.

    ``split`` names parameters or inputs (``{"weight_ih_l0": (0, ["i", "f", "g", "o"])}``: torch's LSTM gate
    order). The rest as :func:`check_function`.
    """
    if not isinstance(module, torch.nn.Module):
        raise ProtocolError(
            f"check_module: expected a torch.nn.Module, got {v.describe(module)}; for a function use "
            "gradcheck.torch.check_function"
        )
    return _checked(module, inputs, True, loss, time_axis, split, **options)


def _checked(
    fn,
    inputs,
    parameters: bool,
    loss,
    time_axis,
    split,
    *,
    dtype=torch.float64,
    complex_step=False,
    **options,
):
    """The Model of ``fn`` at ``inputs`` (projection seeded with the check's seed), checked with ``options``."""
    model = Model(
        fn,
        inputs,
        loss=loss,
        time_axis=time_axis,
        split=split,
        dtype=dtype,
        seed=options.get("seed", 0),
        complex_step=complex_step,
        check_parameters=parameters,
    )
    return check(model, **options)


# ---- reading what the user gave
def _callable(fn):
    """``(callable, module or None)``: a Function subclass becomes its ``apply``."""
    if isinstance(fn, type) and issubclass(fn, torch.autograd.Function):
        return fn.apply, None
    if isinstance(fn, torch.nn.Module):
        return fn, fn
    if not callable(fn):
        raise ProtocolError(f"fn: expected a function or an nn.Module, got {v.describe(fn)}")
    return fn, None


def _loss_fn(loss):
    if loss is not None and not callable(loss):
        raise ProtocolError(
            f"loss: expected a function loss(output) -> scalar tensor, got {v.describe(loss)}"
        )
    return loss


def _dtype(dtype) -> torch.dtype:
    dtype = DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    if dtype in (torch.float64, torch.float32):
        return dtype
    if dtype in (torch.float16, torch.bfloat16):
        raise ProtocolError(
            f"dtype: {dtype} cannot be checked by finite differences (a central difference keeps about 3 "
            "significant digits there); check the float64 promotion (the default) or float32"
        )
    raise ProtocolError(f"dtype: expected torch.float64 or torch.float32, got {dtype!r}")


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ProtocolError(f"seed: expected an integer >= 0, got {seed!r}")
    return int(seed)


def _picklable(model) -> bool:
    try:
        pickle.dumps(model)
    except Exception:  # noqa: BLE001  (a lambda, a local function or class, an unpicklable module)
        return False
    return True


def _read_inputs(inputs):
    """``(positional, slots, checked, fixed)``: ``slots`` maps each argument to its template (see
    :func:`_template`); ``checked`` row name -> tensor; ``fixed`` the names held fixed."""
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    if isinstance(inputs, Mapping):
        items, positional = list(v.names_dict("inputs", inputs, empty_ok=True).items()), False
    elif isinstance(inputs, (tuple, list)):
        items, positional = [(f"arg{i}", x) for i, x in enumerate(inputs)], True
    else:
        raise ProtocolError(
            f"inputs: expected a dict name -> tensor (called fn(**inputs)) or a tuple of tensors (called "
            f"fn(*inputs)), got {v.describe(inputs)}"
        )
    slots, checked, fixed = {}, {}, []
    for name, x in items:
        slots[name] = _template(name, x, checked, fixed)
    return positional, slots, checked, fixed


def _template(name: str, x, checked: dict, fixed: list):
    """How an argument is rebuilt at every call: ``("row", name)`` for a floating tensor (a row), ``("fixed",
    value)``, or ``("nest", container, parts)`` for a tuple, list, named tuple or dict holding a floating
    tensor somewhere (``(h0, c0)``), whose parts are rows named ``name.0``, ``name.1`` (``name.field``,
    ``name.key``) and fixed values."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        _on_cpu(f"inputs[{name!r}]", x)
        checked[name] = x.detach()
        return ("row", name)
    if _holds_floating(x):
        if isinstance(x, Mapping):
            keys = list(x)
        else:
            keys = list(x._fields) if hasattr(x, "_fields") else list(range(len(x)))
        values = list(x.values()) if isinstance(x, Mapping) else list(x)
        parts = [_template(f"{name}.{k}", value, checked, fixed) for k, value in zip(keys, values)]
        return ("nest", (type(x), keys), parts)
    fixed.append(name)
    return ("fixed", x.detach().clone() if isinstance(x, torch.Tensor) else x)


def _holds_floating(x) -> bool:
    """A tuple, list, named tuple or dict (of str keys) with a floating tensor among its leaves. Other
    containers (a subclass with a constructor of its own) are not walked: they are held fixed, and named so."""
    if isinstance(x, torch.Tensor):
        return x.is_floating_point()
    if type(x) in (dict, OrderedDict):
        return all(isinstance(k, str) for k in x) and any(_holds_floating(y) for y in x.values())
    if type(x) in (tuple, list) or (isinstance(x, tuple) and hasattr(x, "_fields")):
        return any(_holds_floating(y) for y in x)
    return False


def _fill(template, tensors: dict):
    """An argument from its template: each row a fresh clone of its tensor (the function may write into it)."""
    kind, what, *parts = template
    if kind == "row":
        return tensors[what].clone()
    if kind == "fixed":
        return what
    (container, keys), values = what, [_fill(t, tensors) for t in parts[0]]
    if issubclass(container, Mapping):
        return container(zip(keys, values))
    if hasattr(container, "_fields"):
        return container(*values)
    return container(values)


def _on_cpu(what: str, t: torch.Tensor) -> None:
    if t.layout != torch.strided:
        raise ProtocolError(f"{what}: is a {t.layout} tensor; the checker checks dense (strided) tensors")
    if t.device.type != "cpu":
        raise ProtocolError(f"{what}: is on {t.device}; move it to the CPU (.cpu()) for the check")


def _private_module(module, dtype, with_params: bool):
    """``(a deep copy of module in dtype or None, name -> parameter tensor of the original for the rows)``."""
    if module is None:
        return None, {}
    for name, p in module.named_parameters():
        _on_cpu(f"module parameter {name!r}", p)
    try:
        proto = copy.deepcopy(module)
    except Exception as exc:  # noqa: BLE001  (whatever deepcopy raises: the module cannot be copied)
        raise ProtocolError(
            f"the module cannot be copied (copy.deepcopy raised {type(exc).__name__}: {exc}); the check works "
            "on a private copy so that it never changes your module"
        ) from None
    # a scripted module's copy: torch warns about .grad of a non-leaf in .to()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not a leaf")
        proto = proto.to(dtype)
    with torch.no_grad():
        for p in proto.parameters():
            if not p.is_contiguous():
                p.data = p.data.contiguous()
            p.requires_grad_(with_params)
    params = dict(module.named_parameters()) if with_params else {}
    return proto, {n: p.detach() for n, p in params.items()}


def _named(params: dict, inputs: dict):
    yield from ((n, t, "module parameter") for n, t in params.items())
    yield from ((n, t, "inputs") for n, t in inputs.items())


def _as_array(name: str, t: torch.Tensor, dtype: torch.dtype, kind: str) -> np.ndarray:
    what = f"{kind} {name!r}" if kind != "inputs" else f"inputs[{name!r}]"
    return v.float_array(what, t.detach().to(dtype).cpu().numpy())


def _nothing_to_check(fixed: list[str]) -> str:
    found = ", ".join(fixed) if fixed else "none"
    return (
        f"inputs: no floating-point tensor to check (inputs held fixed: {found}); pass float tensors "
        "(torch.tensor(..., dtype=torch.float64)), or a module whose parameters are checked (check_module)"
    )


def _promotion_hint(originals: dict, dtype) -> str:
    lower = sorted({_name(d) for d in originals.values() if d != dtype})
    if not lower:
        return ""
    keep = " pass dtype=torch.float32 to check in float32, or" if "float32" in lower else ""
    return (
        f"(the checker converted the {', '.join(lower)} inputs to {_name(dtype)}; if the function holds "
        f"tensors of its own in another dtype,{keep} check the module with check_module, which converts its "
        "parameters too)"
    )


# ---- outputs
def _floating_leaves(out, what: str, complex_ok: bool = False) -> list[torch.Tensor]:
    """The floating tensors of an output, in order, through tuples, lists, dicts and named tuples (complex
    ones too under the complex step, where the floating outputs have become complex)."""
    leaves: list[torch.Tensor] = []
    _collect(out, leaves)
    if not complex_ok and any(t.is_complex() for t in leaves):
        raise ProtocolError(
            f"{what} has a complex tensor; pass loss=lambda out: ... returning a real scalar of it"
        )
    return leaves


def _collect(out, leaves: list) -> None:
    if isinstance(out, torch.Tensor):
        if out.is_floating_point() or out.is_complex():
            leaves.append(out)
    elif isinstance(out, (tuple, list)):
        for x in out:
            _collect(x, leaves)
    elif isinstance(out, Mapping):
        for x in out.values():
            _collect(x, leaves)


def _describe_output(out) -> str:
    if isinstance(out, torch.Tensor):
        return f"tensor {_name(out.dtype)} {tuple(out.shape)}"
    if isinstance(out, (tuple, list)):
        return f"{type(out).__name__} of ({', '.join(_describe_output(x) for x in out)})"
    return v.describe(out)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _short(module) -> str:
    r = repr(module).split("\n")[0]
    return r if len(r) <= 40 and "\n" not in repr(module) else type(module).__name__
