"""Time this tree's check against an earlier revision's, in ONE process, interleaved (the machine's load hits
both alike).

    python benchmarks/versions.py 79b69c8 [--repeat 5] [--quick]

The earlier revision's ``gradcheck`` and ``lstm_ref`` are extracted with ``git archive`` into a temporary
directory and imported under other names (``gradcheck_then``, ``lstm_ref_then``), so both versions live side by
side. Each case runs ``check()`` on the reference LSTM with the batched fast path, alternating the two versions,
and reports the best of ``--repeat`` for each, and their ratio (then / now: above 1, this tree is faster).
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = [  # (label, size, check keywords)
    ("full, central", (50, 100, 4), {"method": "central", "mode": "full"}),
    ("full, complex step", (50, 100, 4), {"method": "complex", "mode": "full"}),
    ("screen, complex step (method auto)", (50, 100, 4), {"method": "auto", "mode": "screen"}),
    ("screen, central", (50, 100, 4), {"method": "central", "mode": "screen"}),
    ("default check() call", (50, 100, 4), {}),
    ("full, central", (64, 128, 20), {"method": "central", "mode": "full"}),
]


def import_revision(rev: str, where: Path):
    """``(gradcheck, lstm_ref)`` of revision ``rev``, renamed so they do not clash with this tree's."""
    tar = subprocess.run(
        ["git", "archive", rev, "gradcheck", "lstm_ref"], cwd=ROOT, capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as tf:
        tf.extractall(where, filter="data")
    (where / "gradcheck").rename(where / "gradcheck_then")
    (where / "lstm_ref").rename(where / "lstm_ref_then")
    for path in where.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\blstm_ref\b", "lstm_ref_then", text)
        text = re.sub(r"\bfrom gradcheck\b", "from gradcheck_then", text)
        path.write_text(text)
    sys.path.insert(0, str(where))
    return importlib.import_module("gradcheck_then"), importlib.import_module("lstm_ref_then")


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rev", help="the earlier revision (a commit, tag or branch)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="skip the (64, 128, 20) case")
    args = p.parse_args(argv)
    import gradcheck as now

    with tempfile.TemporaryDirectory() as tmp:
        then, _ = import_revision(args.rev, Path(tmp))
        rev = subprocess.run(
            ["git", "rev-parse", "--short", args.rev], cwd=ROOT, capture_output=True, text=True
        )
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        print(
            f"then = {rev.stdout.strip()}, now = {head.stdout.strip()} (+ working tree); best of {args.repeat}, "
            "alternating; ratio then/now > 1: now is faster\n"
        )
        print("| size | case | then (s) | now (s) | then/now |\n|---|---|---|---|---|")
        for label, size, kw in CASES:
            if args.quick and size != (50, 100, 4):
                continue
            repeat = args.repeat if size == (50, 100, 4) else 1
            old_kw = dict(kw)
            if old_kw.get("method") == "auto" or "method" not in old_kw:
                old_kw.setdefault("method", "auto")
            if not kw:  # the default call: then it was mode "full" (no auto mode yet)
                old_kw = {}
            m_then, m_now = then.ReferenceLSTM(*size), now.ReferenceLSTM(*size)
            then.check(m_then, **old_kw), now.check(m_now, **kw)  # warm up both (caches, page faults)
            t_then, t_now = float("inf"), float("inf")
            for _ in range(repeat):
                t_then = min(t_then, best(lambda: then.check(m_then, **old_kw), 1))
                t_now = min(t_now, best(lambda: now.check(m_now, **kw), 1))
            print(f"| {size} | {label} | {t_then:.4f} | {t_now:.4f} | {t_then / t_now:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
