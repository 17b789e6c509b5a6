"""The PyTorch section of ``benchmarks/run.py``: ``torch.nn.LSTM(50, 100)``, float64, x ``(4, 1, 50)``.

    python benchmarks/run.py --only torch [--quick] [--full-baselines]

Side by side, in one process: our full check (``gradcheck.torch.check_module``, central differences over all
61,000 entries: 60,800 parameters and the 200 of x), the same with its chunks on one thread, our screen, and
``torch.autograd.gradcheck`` in exact and fast mode on the same function (the module through
``torch.func.functional_call`` of its four parameters, with x: every input checked). torch's exact mode is timed
on its biases (400 and 800 entries, to separate its fixed cost, the analytic Jacobian, from the cost per entry) and
extrapolated to 61,000 entries, unless ``--full-baselines``. torch runs with one intra-op thread, its fastest
setting here (two were 10-20x slower per forward on this shared 2-core machine); our check holds torch to one
intra-op thread itself.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time


def _setup():
    import torch

    torch.manual_seed(0)
    module = torch.nn.LSTM(50, 100).double()
    x = torch.randn(4, 1, 50, dtype=torch.float64)
    return torch, module, x


def torch_gradcheck(torch, module, x, *, fast: bool, names=None):
    """(seconds, CPU seconds, entries checked, passed) of torch.autograd.gradcheck on (x, *parameters); only ``names``
    (parameter names, or "x") require grad when given."""
    from torch.func import functional_call

    params = dict(module.named_parameters())
    keys = list(params)

    def fn(x, *ps):  # gradcheck takes a flat tuple of outputs: (output, h_n, c_n)
        out, (h, c) = functional_call(module, dict(zip(keys, ps)), (x,))
        return out, h, c

    wanted = ["x", *keys] if names is None else names
    args = [x, *(params[k].detach() for k in keys)]
    args = [a.clone().requires_grad_(n in wanted) for n, a in zip(["x", *keys], args)]
    ok, secs, cpu = _timed(
        lambda: torch.autograd.gradcheck(fn, tuple(args), fast_mode=fast, raise_exception=False)
    )
    return secs, cpu, sum(a.numel() for a in args if a.requires_grad), bool(ok)


def section(emit, *, quick: bool = False, full_baselines: bool = False) -> None:
    """Emit the tables (Markdown) through ``emit``; a line saying so when torch is not installed."""
    emit("## PyTorch: torch.nn.LSTM(50, 100), float64, x (4, 1, 50)")
    emit()
    try:
        torch, module, x = _setup()
    except ImportError:
        emit("torch is not installed: section skipped (pip install '.[torch]').")
        return
    import gradcheck.torch as gt

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = _versus_torch(
            torch, gt, module, x, quick=quick, full_baselines=full_baselines, default_threads=threads
        )
        design = _how_evaluations_run(torch, gt, module, x, quick=quick)
    finally:
        torch.set_num_threads(threads)
    entries = sum(p.numel() for p in module.parameters()) + x.numel()
    emit(
        f"torch {torch.__version__}; {entries:,} entries (60,800 parameters and the 200 of x); torch with one "
        "intra-op thread for both. Wall-clock ratios are to torch.autograd.gradcheck exact, in this run; CPU "
        "seconds (this process's threads and its worker processes) are less sensitive to the other processes on the machine."
    )
    emit()
    emit(
        "| what | forward evaluations | time (s) | CPU (s) | vs torch.autograd.gradcheck exact (time) | "
        "(CPU) | passed |"
    )
    emit("|---|---|---|---|---|---|---|")
    base, cbase = rows[0][2], rows[0][3]
    for what, evals, secs, cpu, passed in rows:
        emit(
            f"| {what} | {evals} | {_secs(secs)} | {_secs(cpu)} | {base / secs:.1f}x | {cbase / cpu:.1f}x | "
            f"{passed} |"
        )
    emit()
    emit(
        "How the evaluations run (one parameter block; each a full check of that block, diagnosis off; the "
        "default is the first row):"
    )
    emit()
    emit("| evaluations run | block | forward evaluations | time (s) | CPU (s) | us per evaluation |")
    emit("|---|---|---|---|---|---|")
    for what, block, evals, secs, cpu in design:
        emit(f"| {what} | {block} | {evals:,} | {_secs(secs)} | {_secs(cpu)} | {secs / evals * 1e6:.0f} |")


def _cpu() -> float:
    """CPU seconds of this process and of its waited-for children (the worker processes of workers=N)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _timed(fn):
    """(result, wall seconds, CPU seconds of this process and its worker processes)."""
    w0, c0 = time.perf_counter(), _cpu()
    out = fn()
    return out, time.perf_counter() - w0, _cpu() - c0


def _versus_torch(torch, gt, module, x, *, quick: bool, full_baselines: bool, default_threads: int):
    """[(what, evaluations, seconds, CPU seconds, passed)], torch's exact mode first."""
    rows = []
    entries = sum(p.numel() for p in module.parameters()) + x.numel()
    torch_gradcheck(torch, module, x, fast=False, names=["x"])  # warm-up
    if full_baselines:
        secs, cpu, n, ok = torch_gradcheck(torch, module, x, fast=False)
        rows.append(("torch.autograd.gradcheck exact (every entry)", f"{2 * n:,}", secs, cpu, ok))
    else:
        rows.append(_extrapolated(torch, module, x, entries, "torch.autograd.gradcheck exact", repeat=2))
    if not quick:  # what a user gets by default: torch's own intra-op thread count
        rows.append(_default_threads(torch, module, x, entries, default_threads))
    fast = [_timed(lambda: torch_gradcheck(torch, module, x, fast=True)) for _ in range(3 if quick else 11)]
    rows.append(
        (
            f"torch.autograd.gradcheck fast mode (median of {len(fast)})",
            "-",
            statistics.median(f[1] for f in fast),
            statistics.median(f[2] for f in fast),
            all(f[0][3] for f in fast),
        )
    )
    from gradcheck import check

    model = gt.Model(module, (x,))  # what gt.check_module(module, (x,), mode="full") checks
    report, secs, cpu = _timed(lambda: check(model, mode="full"))
    evals = f"{2 * report.settings['coverage']['entries_checked']:,}"
    where = report.settings["evaluation"]["executor"]
    rows.append(
        (f"gradcheck.torch full check, central (the default: {where})", evals, secs, cpu, report.passed)
    )
    if not quick:
        threaded = gt.Model(module, (x,))
        with _on_chunk_threads():
            report, secs, cpu = _timed(lambda: check(threaded, mode="full"))
        fell = "fell back to one at a time" if threaded._chunks.serial else "no stall seen"
        what = f"gradcheck.torch full check, central, on the 2 chunk threads instead ({fell})"
        rows.append((what, evals, secs, cpu, report.passed))
    screens = [
        _timed(lambda: gt.check_module(module, (x,), mode="screen")) for _ in range(3 if quick else 11)
    ]
    n = screens[0][0].settings["screen"]["directions"]
    rows.append(
        (
            f"gradcheck.torch screen, {n} directions per row, central (median of {len(screens)}, whole call)",
            "-",
            statistics.median(s[1] for s in screens),
            statistics.median(s[2] for s in screens),
            all(s[0].passed for s in screens),
        )
    )
    return rows


def _default_threads(torch, module, x, entries: int, n_default: int):
    """torch.autograd.gradcheck exact with torch's default intra-op threads, extrapolated like the first row."""
    torch.set_num_threads(n_default)
    try:
        what = f"torch.autograd.gradcheck exact with torch's default {n_default} intra-op threads"
        return _extrapolated(torch, module, x, entries, what, repeat=1)
    finally:
        torch.set_num_threads(1)


def _extrapolated(torch, module, x, entries: int, what: str, *, repeat: int):
    """torch's exact mode timed on 400 and on 800 bias entries (best of ``repeat``), split into a fixed cost (the
    analytic Jacobian) and a cost per entry, and extrapolated to ``entries``: a row of the table."""
    small, big = ["bias_hh_l0"], ["bias_ih_l0", "bias_hh_l0"]
    t1, c1, n1, ok1 = min(torch_gradcheck(torch, module, x, fast=False, names=small) for _ in range(repeat))
    t2, c2, n2, ok2 = min(torch_gradcheck(torch, module, x, fast=False, names=big) for _ in range(repeat))
    per, cper = (t2 - t1) / (n2 - n1), (c2 - c1) / (n2 - n1)
    fixed, cfixed = max(0.0, t1 - n1 * per), max(0.0, c1 - n1 * cper)
    best = f"best of {repeat} " if repeat > 1 else ""
    how = (
        f"extrapolated: {fixed:.2f} s fixed + {per * 1e3:.2f} ms per entry; {best}on {n1} and on {n2} entries"
    )
    return (
        f"{what} ({how})",
        f"{2 * entries:,}",
        fixed + per * entries,
        cfixed + cper * entries,
        ok1 and ok2,
    )


def _how_evaluations_run(torch, gt, module, x, *, quick: bool):
    """[(what, block, evaluations, seconds, CPU seconds)]: chunks in 2 processes (the default for a check this
    long), on 2 threads, one at a time (the threads' fallback after a stall); and torch with 2 intra-op
    threads."""
    from gradcheck import check

    block = "bias_ih_l0" if quick else "weight_ih_l0"
    out = []

    def run(what, model, **kw):
        report, secs, cpu = _timed(lambda: check(model, mode="full", blocks=[block], diagnose=False, **kw))
        evals = 2 * report.settings["coverage"]["entries_checked"]
        out.append((what, block, evals, secs, cpu))

    run("2 processes (workers=2; the default above 2 s)", gt.Model(module, (x,)), workers=2)
    with _on_chunk_threads():
        run("2 chunk threads at once", gt.Model(module, (x,)))
        serial = gt.Model(module, (x,))
        serial._chunks.serial = True  # what the threads fall back to after a stall
        run("chunks one at a time", serial)
        intra = gt.Model(module, (x,))
        with _intra_op_threads(2):
            run("2 chunk threads, torch with 2 intra-op threads", intra)
    return out


@contextlib.contextmanager
def _on_chunk_threads():
    """Keep a long check on the chunk threads (the default gives such a check worker processes)."""
    from gradcheck.fast import speed

    saved = speed.PROCESSES_AFTER
    speed.PROCESSES_AFTER = float("inf")
    try:
        yield
    finally:
        speed.PROCESSES_AFTER = saved


@contextlib.contextmanager
def _intra_op_threads(n: int):
    """Let torch keep n intra-op threads inside the check (the adapter holds it to one otherwise)."""
    import gradcheck.adapters.torch_model as tm

    saved = tm.one_torch_thread
    tm.one_torch_thread = contextlib.nullcontext
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        tm.one_torch_thread = saved


def _secs(secs: float) -> str:
    if secs != secs:
        return "-"
    return f"{secs:.3f}" if secs < 10 else f"{secs:.1f}"
