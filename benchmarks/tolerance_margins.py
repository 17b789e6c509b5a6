"""False alarms and detection margins of the default tolerances, over random reference configurations.

    python benchmarks/tolerance_margins.py                      # 1000 float64 configurations, central
    python benchmarks/tolerance_margins.py --dtype float32 --method complex

For each configuration (sizes, variant, loss and model seed drawn from ``--seed``; every draw recorded in the JSON
output) it runs :func:`gradcheck.check` with its defaults on

1. the correct reference: any failing row is a **false alarm**; it records the largest error/tolerance ratio
   over all rows (how close a correct gradient comes to failing; 1 would fail);
2. the reference with a planted relative error ``--block-error`` on one whole parameter block (drawn);
3. the reference with a planted relative error ``--entry-error`` on one entry: the largest-magnitude entry of
   one drawn block (an entry near zero carries no measurable 0.1%).

For 2 and 3 it records the planted row's ratio (the **detection ratio**: > 1 means caught) and counts misses.
The defaults plant 1e-5 on a block and 1e-3 on an entry in float64 (what the checker's issue requires it to
flag), 1e-3 and 1e-2 in float32. Prints one summary; ``--json PATH`` writes every configuration's numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from multiprocessing import Pool

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gradcheck import check  # noqa: E402
from gradcheck.lstm.reference import ReferenceLSTM  # noqa: E402
from lstm_ref.model import PARAM_KEYS  # noqa: E402


class Planted:
    """The reference with one parameter gradient changed: ``block`` scaled by ``1 + error`` (entry None), or only
    its largest-magnitude entry."""

    def __init__(self, model, block: str, error: float, *, entry: bool):
        self.model, self.block, self.error, self.entry = model, block, error, entry
        self.capabilities = model.capabilities

    def __getattr__(self, name):  # loss_batch, loss_directions: the reference's own (the loss is unchanged)
        return getattr(self.model, name)

    def parameters(self):
        return self.model.parameters()

    def loss(self, params, taps=None):
        return self.model.loss(params, taps)

    def gradients(self, params):
        pg, sg = self.model.gradients(params)
        g = np.array(pg[self.block], copy=True)
        if self.entry:
            j = int(np.argmax(np.abs(g)))
            g.flat[j] *= 1.0 + self.error
        else:
            g *= 1.0 + self.error
        return dict(pg, **{self.block: g}), sg


def draw_configs(n: int, seed: int, *, max_x_dim: int, max_hidden: int, max_steps: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(
            {
                "x_dim": int(rng.integers(1, max_x_dim + 1)),
                "hidden": int(rng.integers(1, max_hidden + 1)),
                "steps": int(rng.integers(1, max_steps + 1)),
                "variant": ["simple", "tanh"][int(rng.integers(2))],
                "loss": ["seed", "full"][int(rng.integers(2))],
                "seed": int(rng.integers(2**31)),
                "block": PARAM_KEYS[int(rng.integers(len(PARAM_KEYS)))],
                "entry_block": PARAM_KEYS[int(rng.integers(len(PARAM_KEYS)))],
            }
        )
    return out


def measure(job) -> dict:
    cfg, dtype, method, block_error, entry_error = job
    model = ReferenceLSTM(
        cfg["x_dim"],
        cfg["hidden"],
        cfg["steps"],
        variant=cfg["variant"],
        loss=cfg["loss"],
        seed=cfg["seed"],
        dtype=dtype,
    )
    rep = check(model, method=method, mode="full", diagnose=False)
    worst = max(rep.rows, key=lambda r: r.ratio)
    out = dict(
        cfg,
        passed=rep.passed,
        max_ratio=worst.ratio,
        max_ratio_row=worst.label,
        failing=[r.label for r in rep.failing],
    )
    for key, block, err, entry in (
        ("block", cfg["block"], block_error, False),
        ("entry", cfg["entry_block"], entry_error, True),
    ):
        prep = check(Planted(model, block, err, entry=entry), method=method, mode="full", diagnose=False)
        row = next(r for r in prep.rows if r.kind == "param" and r.name == block)
        others = [r.label for r in prep.failing if r.label != block]
        out[f"{key}_ratio"] = row.ratio
        out[f"{key}_caught"] = not row.passed
        out[f"{key}_others_failing"] = others
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--method", choices=["central", "richardson", "complex"], default="central")
    p.add_argument("--block-error", type=float)
    p.add_argument("--entry-error", type=float)
    p.add_argument("--max-x-dim", type=int, default=8)
    p.add_argument("--max-hidden", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=6)
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    p.add_argument("--json", metavar="PATH")
    a = p.parse_args(argv)
    if a.configs < 1 or a.processes < 1:
        p.error("--configs and --processes must be >= 1")
    f64 = a.dtype == "float64"
    block_error = a.block_error if a.block_error is not None else (1e-5 if f64 else 1e-3)
    entry_error = a.entry_error if a.entry_error is not None else (1e-3 if f64 else 1e-2)
    cfgs = draw_configs(
        a.configs, a.seed, max_x_dim=a.max_x_dim, max_hidden=a.max_hidden, max_steps=a.max_steps
    )
    t0 = time.perf_counter()
    jobs = [(c, a.dtype, a.method, block_error, entry_error) for c in cfgs]
    if a.processes == 1:
        results = [measure(j) for j in jobs]
    else:
        with Pool(a.processes) as pool:
            results = pool.map(measure, jobs, chunksize=8)
    secs = time.perf_counter() - t0
    alarms = [r for r in results if not r["passed"]]
    worst = max(results, key=lambda r: r["max_ratio"])
    summary = {
        "configs": len(results),
        "dtype": a.dtype,
        "method": a.method,
        "seed": a.seed,
        "sizes": {"x_dim": [1, a.max_x_dim], "hidden": [1, a.max_hidden], "steps": [1, a.max_steps]},
        "false_alarms": len(alarms),
        "max_ratio_correct": worst["max_ratio"],
        "max_ratio_config": {k: worst[k] for k in ("x_dim", "hidden", "steps", "variant", "loss", "seed")}
        | {"row": worst["max_ratio_row"]},
        "block_error": block_error,
        "block_missed": sum(not r["block_caught"] for r in results),
        "block_min_ratio": min(r["block_ratio"] for r in results),
        "entry_error": entry_error,
        "entry_missed": sum(not r["entry_caught"] for r in results),
        "entry_min_ratio": min(r["entry_ratio"] for r in results),
        "planted_collateral": sum(
            bool(r["block_others_failing"] or r["entry_others_failing"]) for r in results
        ),
        "seconds": round(secs, 1),
    }
    print(
        f"tolerance margins: {summary['configs']} random reference configurations, {a.dtype}, {a.method}, "
        f"seed {a.seed} (x_dim 1..{a.max_x_dim}, hidden 1..{a.max_hidden}, T 1..{a.max_steps}, both variants "
        f"and losses), {secs:.1f} s"
    )
    print(f"  false alarms (correct gradient, some row failed): {summary['false_alarms']}")
    c = summary["max_ratio_config"]
    print(
        f"  largest error/tolerance ratio of a correct gradient: {summary['max_ratio_correct']:.3e} "
        f"(row {c['row']}; gradcheck run --x-dim {c['x_dim']} --hidden {c['hidden']} --steps {c['steps']} "
        f"--variant {c['variant']} --loss {c['loss']} --seed {c['seed']} --dtype {a.dtype} --method {a.method})"
    )
    print(
        f"  planted {block_error:g} relative error on one block: missed {summary['block_missed']}, smallest "
        f"detection ratio {summary['block_min_ratio']:.3e}"
    )
    print(
        f"  planted {entry_error:g} relative error on one entry (largest |g| of a block): missed "
        f"{summary['entry_missed']}, smallest detection ratio {summary['entry_min_ratio']:.3e}"
    )
    print(f"  planted runs where another row failed too: {summary['planted_collateral']}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump({"summary": summary, "configs": results}, fh, indent=1, default=_num)
    return 0 if not alarms else 1


def _num(x):
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    raise TypeError(type(x).__name__)


if __name__ == "__main__":
    sys.exit(main())
