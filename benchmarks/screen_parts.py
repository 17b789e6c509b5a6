"""Where the screen's time goes: the whole ``check(mode="screen")`` call on growing sets of blocks.

    python benchmarks/screen_parts.py [--size 50,100,4] [--repeat 15] [--baseline DIR]

Prints the median of ``--repeat`` whole ``check()`` calls (16 directions) for: one bias block (the fixed costs:
the analytic gradient, the unperturbed pass, setup, plus that block), all four biases, one bias and the four
weights, one bias and each state, and everything; central and complex step. The difference between two lines is
the cost of the blocks added. ``--baseline DIR``: also time another source tree of gradcheck in the same process,
interleaved call by call (its ``gradcheck`` and ``lstm_ref`` packages are loaded under other names), e.g. a
``git worktree`` of main. Load average printed before and after; nothing here is a test.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PARTS = (
    ["bg"],
    ["bg", "bi", "bf", "bo"],
    ["bg", "wg", "wi", "wf", "wo"],
    ["bg", "h"],
    ["bg", "h", "s"],
    None,
)


def _load_renamed(tree: str):
    """The gradcheck package of another source tree, with its packages renamed *_baseline (one process)."""
    tmp = tempfile.mkdtemp(prefix="gradcheck-baseline-")
    for pkg in ("gradcheck", "lstm_ref"):
        shutil.copytree(os.path.join(tree, pkg), os.path.join(tmp, f"{pkg}_baseline"))
    for dirpath, _, files in os.walk(tmp):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                text = open(path, encoding="utf-8").read()
                for pkg in ("gradcheck", "lstm_ref"):
                    text = (
                        text.replace(f"import {pkg}", f"import {pkg}_baseline as {pkg}")
                        if f"import {pkg}\n" in text
                        else text
                    )
                    text = text.replace(f"from {pkg}.", f"from {pkg}_baseline.").replace(
                        f"from {pkg} import", f"from {pkg}_baseline import"
                    )
                open(path, "w", encoding="utf-8").write(text)
    sys.path.insert(0, tmp)
    return importlib.import_module("gradcheck_baseline")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="50,100,4")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--baseline", default=None, help="another source tree to time in the same process")
    args = ap.parse_args(argv)
    sys.path.insert(0, ROOT)
    import gradcheck as new

    size = tuple(int(v) for v in args.size.split(","))
    libs = [("this tree", new)] + ([("baseline", _load_renamed(args.baseline))] if args.baseline else [])
    models = [(label, lib, lib.ReferenceLSTM(*size)) for label, lib in libs]
    print(f"size {size}; load average {open('/proc/loadavg').read().split()[:3]}")
    for method in ("central", "complex"):
        for blocks in PARTS:
            times = {label: [] for label, _, _ in models}
            for _, lib, m in models:
                lib.check(m, mode="screen", method=method, blocks=blocks)
            for _ in range(args.repeat):
                for label, lib, m in models:
                    t = time.perf_counter()
                    lib.check(m, mode="screen", method=method, blocks=blocks)
                    times[label].append(time.perf_counter() - t)
            cols = "  ".join(f"{label} {statistics.median(ts) * 1e3:6.2f} ms" for label, ts in times.items())
            print(f"{method:8s} {str(blocks or 'all'):34s} {cols}")
    print(f"load average {open('/proc/loadavg').read().split()[:3]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
