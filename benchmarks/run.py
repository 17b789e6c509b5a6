"""Speed benchmark of the full check, the screen and the baselines, in one process and one run.

    python benchmarks/run.py [--quick] [--full-baselines] [--only {all,torch}] [--out reports/benchmarks.md]

Measures, at the write-up's size (50, 100, 4) and a larger one (64, 128, 20):

- the naive loop (the baseline): perturb one entry, call the model's ``loss``, repeat (what a hand-written
  gradient check does), and the same loop on the unchecked forward core (``lstm_ref.model._forward``, no input
  validation: the fastest plain loop). Timed on a random subset of entries and extrapolated to the full check's
  evaluation count, unless ``--full-baselines``;
- the batched full check (``gradcheck.check``), central and complex step, and the 16-direction screen;
- ``torch.autograd.gradcheck`` (exact mode, float64) on an equivalent torch function when torch is installed,
  timed on the biases and extrapolated per input entry (``--full-baselines``: on every block);

and prints ratios to the baselines, the effective rate against this machine's measured float64 GEMM rate, and
peak memory (tracemalloc, numpy allocations). It also measures how the cost grows with P*T (4+ sizes), the extra
memory of a full check at hidden 1024, and the screen's detection threshold for a single wrong entry. With torch
installed, a PyTorch section (``benchmarks/torch_lstm.py``): ``torch.nn.LSTM(50, 100)`` through
``gradcheck.torch`` beside ``torch.autograd.gradcheck`` exact and fast (``--only torch``: that section alone).
Speed is reported as ratios measured in the same run; nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gradcheck import ReferenceLSTM, check  # noqa: E402
from gradcheck import finite_diff as fd  # noqa: E402
from lstm_ref.model import _forward, step_losses  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_lstm  # noqa: E402  (the PyTorch section; it imports torch only when run)


def gemm_rate(n: int = 1024, repeat: int = 5) -> float:
    """Best float64 GEMM rate in FLOP/s on (2n x n) @ (n x n)."""
    a, b = np.random.default_rng(0).random((2 * n, n)), np.random.default_rng(1).random((n, n))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * 2 * n * n * n / best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def n_evaluations(m: ReferenceLSTM, method: str = "central") -> int:
    P = sum(v.size for v in m.parameters().values())
    return fd.EVALUATIONS[method] * (P + 2 * m.steps * m.hidden)


def forward_flops(m: ReferenceLSTM) -> float:
    """Multiply-adds x 2 of one plain forward pass (the four gate products per step)."""
    return 2.0 * 4 * m.hidden * (m.x_dim + m.hidden) * m.steps


def naive_per_eval(m: ReferenceLSTM, *, core: bool, n: int, seed: int = 0) -> float:
    """Seconds per loss evaluation of the naive central loop, over n random parameter entries (2 calls each)."""
    params = m.parameters()
    names = list(params)
    rng = np.random.default_rng(seed)
    picks = [(names[rng.integers(len(names))], None) for _ in range(n)]
    picks = [(k, int(rng.integers(params[k].size))) for k, _ in picks]
    dt = np.dtype(np.float64)

    def loss(p):
        if core:
            tr = _forward(p, m.xs, m.variant, m.h0, m.s0, None, dt)
            return step_losses(tr.h, m.ys, m.loss_kind).sum()
        return m.loss(p)

    h = fd.default_step("central", dt)
    t = time.perf_counter()
    for k, j in picks:
        x = params[k].reshape(-1)
        old = x[j]
        x[j] = old + h
        lp = loss(params)
        x[j] = old - h
        lm = loss(params)
        x[j] = old
        _ = (lp - lm) / (2 * h)
    return (time.perf_counter() - t) / (2 * n)


def timed_check(m, *, repeat: int = 1, memory: bool = True, **kw):
    """(best seconds of ``repeat`` runs, tracemalloc peak bytes of one more run or None, report).

    Timed runs are not traced (tracemalloc slows every allocation); the peak comes from a separate run. A full
    check unless ``mode`` says otherwise (the default mode, auto, may choose the screen on a slow machine).
    """
    kw.setdefault("mode", "full")
    best, r = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        r = check(m, **kw)
        best = min(best, time.perf_counter() - t)
    peak = None
    if memory:
        tracemalloc.start()
        tracemalloc.reset_peak()
        check(m, **kw)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return best, peak, r


def _traced(m, **kw):
    """(seconds, tracemalloc peak bytes, report) of one traced run (a full check unless ``mode`` says otherwise)."""
    kw.setdefault("mode", "full")
    tracemalloc.start()
    tracemalloc.reset_peak()
    t = time.perf_counter()
    r = check(m, **kw)
    dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return dt, peak, r


def _mb(peak) -> str:
    return "-" if peak is None else f"{peak / 2**20:.0f}"


def torch_gradcheck_time(m: ReferenceLSTM, *, full: bool):
    """(seconds for all P entries (extrapolated unless full), entries timed) or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    P = {k: torch.tensor(v) for k, v in m.parameters().items()}
    xs, ys = torch.tensor(m.xs), torch.tensor(m.ys)
    h0, s0 = torch.tensor(m.h0), torch.tensor(m.s0)
    H = m.hidden
    names = list(P) if full else ["bg", "bi", "bf", "bo"]

    def f(*blocks):
        p = dict(P) | dict(zip(names, blocks))
        W = torch.cat([p["wg"], p["wi"], p["wf"], p["wo"]])
        b = torch.cat([p["bg"], p["bi"], p["bf"], p["bo"]])
        h, s, L = h0, s0, 0.0
        for t in range(xs.shape[0]):
            z = W @ torch.cat([xs[t], h]) + b
            g, i, f_, o = (
                torch.tanh(z[:H]),
                torch.sigmoid(z[H : 2 * H]),
                torch.sigmoid(z[2 * H : 3 * H]),
                torch.sigmoid(z[3 * H :]),
            )
            s = g * i + s * f_
            h = s * o if m.variant == "simple" else torch.tanh(s) * o
            L = L + (((h - ys[t]) ** 2).sum() if m.loss_kind == "full" else (h[0] - ys[t]) ** 2)
        return L

    inputs = tuple(P[k].clone().requires_grad_(True) for k in names)
    t = time.perf_counter()
    ok = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False)
    dt = time.perf_counter() - t
    n = sum(P[k].numel() for k in names)
    total = sum(v.numel() for v in P.values())
    return dt * total / n, n, bool(ok)


def screen_time(m, method, repeat=21):
    """Medians over ``repeat`` calls: (the whole check() call, its screen part alone): ``report.timings
    ["numeric"]``, the directions, the model's direction losses and the comparisons, without the model's own
    analytic gradients and loss and the report)."""
    for _ in range(3):
        check(m, mode="screen", method=method)
    whole, part = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        r = check(m, mode="screen", method=method)
        whole.append(time.perf_counter() - t)
        part.append(r.timings["numeric"])
    return sorted(whole)[repeat // 2], sorted(part)[repeat // 2]


def threshold_table(cases, seeds=range(3)):
    """For each (size, K, block, method): the smallest planted single-entry error (relative to the block's max
    |g|) at which the screen flags the block (error/tolerance > 0.1: localised by group testing, or checked in
    full), and at which the screen row itself fails (worst of the seeds; the planted entry differs per seed)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from _planted import Planted, entry_bug

    rels = [10.0**e for e in np.arange(-12, -0.4, 0.5)]
    rows = []
    for shape, K, block, method in cases:
        found = {"fail": [], "escalate": []}
        for seed in seeds:
            size = Planted(*shape, seed=seed).parameters()[block].shape
            idx = tuple(int(k) for k in np.unravel_index((seed * 7919) % int(np.prod(size)), size))
            first_fail = first_esc = None
            for rel in rels:
                m = Planted(*shape, seed=seed, plant=entry_bug(block, idx, rel))
                r = check(
                    m, mode="screen", directions=K, diagnose=False, seed=seed, blocks=[block], method=method
                )
                flagged = [*r.settings["screen"]["localised"], *r.settings["screen"]["escalated_to_full"]]
                if first_esc is None and block in flagged:
                    first_esc = rel
                ratio = float(r.settings["screen"]["screen_ratios"][block])
                if first_fail is None and not ratio <= 1.0:  # the screen row alone fails
                    first_fail = rel
                if first_fail is not None and first_esc is not None:
                    break
            found["fail"].append(first_fail)
            found["escalate"].append(first_esc)
        rows.append(
            (
                shape,
                K,
                block,
                method,
                int(np.prod(size)),
                max(v or np.inf for v in found["escalate"]),
                max(v or np.inf for v in found["fail"]),
            )
        )
    return rows


def localisation_counts() -> list[str]:
    """The issue-14 scenarios through the real check: screen mode, and auto mode as it chooses."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from localise import count_scenarios

    out = []
    for label, model, target, _, _ in count_scenarios(0):
        for mode in ("screen", "auto"):
            model.calls = 0
            t0 = time.perf_counter()
            report = check(model, mode=mode)
            dt = time.perf_counter() - t0
            found = "; ".join(
                f"{r.label}: {len(r.wrong_entries)} wrong entr{'y' if len(r.wrong_entries) == 1 else 'ies'}"
                if r.wrong_entries
                else f"{r.label}: spread"
                for r in report.failing[:3]
            ) + (f"; ... ({len(report.failing)} rows)" if len(report.failing) > 3 else "")
            fbs = report.first_bad_step
            where = "-" if fbs is None else f"{fbs['name']} at t={fbs['t']}"
            out.append(
                f"| {label} | {mode} ({report.settings['mode']}) | {model.calls:,} | <= {target:,} | "
                f"{found or 'passes'} | {where} | {dt:.2f} |"
            )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sample sizes (for a smoke run)")
    ap.add_argument(
        "--full-baselines", action="store_true", help="run the naive loop and torch on every entry"
    )
    ap.add_argument(
        "--out", default=os.path.join("reports", "benchmarks.md"), help="where to write the table"
    )
    ap.add_argument(
        "--only",
        choices=["all", "torch"],
        default="all",
        help="torch: only the PyTorch section (torch_lstm.py)",
    )
    args = ap.parse_args(argv)

    lines = []

    def emit(s=""):
        print(s, flush=True)
        lines.append(s)

    load0 = os.getloadavg()
    rate = gemm_rate()
    emit("# gradcheck benchmarks")
    emit()
    flags = f"{' --only torch' if args.only == 'torch' else ''}{' --quick' if args.quick else ''}"
    flags += " --full-baselines" if args.full_baselines else ""
    emit(
        f"Command: `python benchmarks/run.py{flags}`; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
        f"Python {platform.python_version()}; load average at start {load0[0]:.2f}."
    )
    emit(f"Measured float64 GEMM rate: {rate / 1e9:.1f} GFLOP/s.")
    emit()
    if args.only == "torch":
        torch_lstm.section(emit, quick=args.quick, full_baselines=args.full_baselines)
        return _write(lines, args.out, load0)
    emit(
        "| size (x_dim, hidden, T) | what | evaluations | time (s) | vs naive loop (model.loss) | "
        "vs naive loop (unchecked core) | vs torch gradcheck exact | naive-equivalent GFLOP/s (% of GEMM rate) | "
        "peak memory (MB) | passed |"
    )
    emit("|---|---|---|---|---|---|---|---|---|---|")
    n_naive = 200 if args.quick else 1500
    for size in [(50, 100, 4), (64, 128, 20)]:
        m = ReferenceLSTM(*size)
        E = n_evaluations(m)
        flops = forward_flops(m)
        if args.full_baselines:
            n_loop = sum(v.size for v in m.parameters().values())
        else:
            n_loop = n_naive if size[2] <= 4 else n_naive // 4
        naive = naive_per_eval(m, core=False, n=n_loop) * E
        core = naive_per_eval(m, core=True, n=n_loop) * E
        tg = torch_gradcheck_time(m, full=args.full_baselines) if size == (50, 100, 4) else None
        how = "" if args.full_baselines else f" (extrapolated from {2 * n_loop} timed evaluations)"

        def row(what, evals, secs, peak="-", passed="-"):
            eff = evals * flops / secs
            torch_ratio = (
                f"{tg[0] / secs:.0f}x"
                if tg is not None
                else ("torch not installed" if size == (50, 100, 4) else "-")
            )
            emit(
                f"| {size} | {what} | {evals:,} | {secs:.3f} | {naive / secs:.1f}x | {core / secs:.1f}x | "
                f"{torch_ratio} | {eff / 1e9:.1f} ({100 * eff / rate:.0f}%) | {peak} | {passed} |"
            )

        row("naive loop, model.loss" + how, E, naive)
        row("naive loop, unchecked core" + how, E, core)
        if tg is not None:
            extra = "" if args.full_baselines else f" (extrapolated from {tg[1]} entries)"
            row(f"torch.autograd.gradcheck exact{extra}", E, tg[0], passed=tg[2])
        small = size[2] <= 4
        rep = 3 if small else 2
        dt, peak, r = timed_check(m, repeat=rep, memory=small)
        row(f"gradcheck full, central (batched; best of {rep})", E, dt, _mb(peak), r.passed)
        dtc, peakc, rc = timed_check(m, repeat=rep, memory=small, method="complex")
        row(
            f"gradcheck full, complex step (batched; best of {rep})",
            n_evaluations(m, "complex"),
            dtc,
            _mb(peakc),
            rc.passed,
        )
        emit(f"| {size} | complex / central time | | {dtc / dt:.2f} | | | | | | |")
        for method in ("central", "complex"):
            st, part = screen_time(m, method)
            K = 16
            rows_n = 8 + 2 * m.steps
            evals = rows_n * K * fd.EVALUATIONS[method]
            default = " = the default, --method auto" if method == "complex" else ""
            emit(
                f"| {size} | screen, 16 directions, {method}{default} (median of 21, whole check() call; in "
                f"brackets its screen part alone) | {evals:,} | {st * 1e3:.1f} ms ({part * 1e3:.1f} ms) | | | | | | |"
            )
    emit()
    emit(
        "Naive-equivalent GFLOP/s = evaluations x the FLOPs of one plain forward pass (8 H (X+H) T) / time: the "
        "rate a plain loop would need to match. The batched path exceeds the GEMM rate on that scale because "
        "it skips work the structure makes redundant (first step per copy is scalar, the next a rank-1 update, "
        "the input part of every product shared)."
    )
    load1 = os.getloadavg()
    emit(
        f"Load average at the end of the table: {load1[0]:.2f} (other processes share the 2 cores; "
        "ratios are measured in the same run)."
    )

    # ---- growth with P*T
    emit()
    emit("## Cost growth with P*T (full central check, batched)")
    emit()
    emit(
        "A full check makes 2P evaluations, each a forward pass of cost ~P*T, so its time grows like P * (P*T); "
        "the time per evaluation grows linearly in P*T (last column ~constant)."
    )
    emit()
    emit("| size | P | P*T | evaluations | time (s) | us per evaluation | ns per evaluation per (P*T) |")
    emit("|---|---|---|---|---|---|---|")
    sizes = [(10, 20, 4), (20, 40, 4), (30, 60, 4), (50, 100, 4), (50, 100, 8)]
    if not args.quick:
        sizes += [(50, 100, 16), (64, 128, 8)]
    for size in sizes:
        m = ReferenceLSTM(*size)
        P = sum(v.size for v in m.parameters().values())
        E = n_evaluations(m)
        check(m, blocks=["bg"], mode="full")
        dt = _timed(lambda: check(m, mode="full"))
        emit(
            f"| {size} | {P:,} | {P * m.steps:,} | {E:,} | {dt:.3f} | {dt / E * 1e6:.2f} | "
            f"{dt / E / (P * m.steps) * 1e9:.3f} |"
        )

    # ---- memory at hidden 1024
    emit()
    emit("## Extra memory of a full check at hidden 1024 (x_dim 50, T 4; P = 4,404,224)")
    emit()
    emit(
        "A full check at this size is 8.8 million evaluations of a 4-step forward with 4096x1024 GEMMs (hours), "
        "so its memory is measured in parts (tracemalloc peaks, everything check() allocates, numpy included):"
    )
    emit()
    p4 = _traced(ReferenceLSTM(50, 1024, 4), blocks=["bo", "s"])
    p1 = _traced(ReferenceLSTM(50, 1024, 1), blocks=["bo", "s"])
    full1 = _traced(ReferenceLSTM(50, 1024, 1))
    K = p4[2].settings["evaluation"]["batch"]
    emit(
        f"- T = 4, blocks bo and s (the chunked dense evaluation, automatic K = {K}): {p4[1] / 2**20:.0f} MB "
        f"({p4[0]:.1f} s)"
    )
    emit(f"- T = 1, blocks bo and s (same bookkeeping, no dense steps): {p1[1] / 2**20:.0f} MB")
    emit(
        f"- T = 1, every entry of every block (the per-block arrays of a full check; "
        f"{n_evaluations(ReferenceLSTM(50, 1024, 1)):,} evaluations, {full1[0]:.1f} s, passed {full1[2].passed}): "
        f"{full1[1] / 2**20:.0f} MB"
    )
    est = full1[1] + max(0, p4[1] - p1[1])
    emit(
        f"- estimate for the full check at T = 4: {full1[1] / 2**20:.0f} + ({p4[1] / 2**20:.0f} - "
        f"{p1[1] / 2**20:.0f}) = **{est / 2**20:.0f} MB** (the model's own parameters, "
        f"{sum(v.nbytes for v in ReferenceLSTM(50, 1024, 1).parameters().values()) / 2**20:.0f} MB, are not "
        "counted; the checker's copy of them and the analytic gradients are)."
    )

    # ---- screen detection threshold
    emit()
    emit(
        "## Screen detection threshold (single wrong entry; float64; central rtol 1e-6, complex step rtol 1e-9)"
    )
    emit()
    emit(
        "Smallest planted error (relative to the block's max |gradient|) at which the screen flags the block "
        "(its error/tolerance > 0.1: the block is then localised by group testing, which names the entry), and at "
        "which the screen row alone fails (error/tolerance > 1); worst over 3 seeds, errors scanned in steps of "
        "10^0.5 from 1e-12. Directions: rank-1 Rademacher for the weight blocks (wi), dense for the biases (bo). "
        "The full check alone flags ~rtol (1e-6 central, 1e-9 complex step)."
    )
    emit()
    emit("| size | directions K | block | method | entries | flagged from | screen row fails from |")
    emit("|---|---|---|---|---|---|---|")
    cases = [((8, 20, 4), K, b, "central") for K in (4, 16, 64) for b in ("wi", "bo")]
    cases += [((8, 20, 4), 16, b, "complex") for b in ("wi", "bo")]
    cases += [((50, 100, 4), 16, b, meth) for meth in ("central", "complex") for b in ("wi", "bo")]
    for shape, K, block, meth, n, esc, fail in threshold_table(cases):
        emit(f"| {shape} | {K} | {block} | {meth} | {n:,} | {esc:.0e} | {fail:.0e} |")

    emit()
    emit("## Localisation: loss() calls of a screened check (issue 14)")
    emit()
    emit(
        "The reference at (50, 100, 4) declaring only `complex` (no batched capability: one counted `loss()` "
        "call per evaluation), checked with `gradcheck.check(model, mode=...)`: the analytic side, the screen "
        "(16 directions per row, complex step), the localisation of every flagged row, the step-size sweep of "
        "the worst passing row. Scenarios and the counting model: `benchmarks/localise.py`."
    )
    emit()
    emit("| scenario | mode | loss() calls | target | result | first bad step | time (s) |")
    emit("|---|---|---|---|---|---|---|")
    for row in localisation_counts():
        emit(row)

    emit()
    torch_lstm.section(emit, quick=args.quick, full_baselines=args.full_baselines)
    return _write(lines, args.out, None)


def _write(lines: list[str], out: str, load0) -> int:
    if load0 is not None:
        lines.append("")
        lines.append(f"Load average at the start {load0[0]:.2f}, at the end {os.getloadavg()[0]:.2f}.")
        print(lines[-1])
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
