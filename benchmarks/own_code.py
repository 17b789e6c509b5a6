"""False alarms and planted bugs over random configurations of the examples (issue 12).

    python benchmarks/own_code.py                 # 500 configurations, seed 0
    python benchmarks/own_code.py --configs 50 --seed 3

Each configuration draws an example (CS231n sequence functions, CS231n step loop, deeplearning.ai layout, GRU
step loop, node classes, MLP), its sizes (1..6 each; batch 1..4) and its seed from
``numpy.random.default_rng([seed, configuration number])``. The correct factory must pass; every planted bug
of the example must fail *and* be localised as its case's expectation says (the time step where the error
enters, or the block or gate part at fault). A bug that cannot show at the configuration's size (a dropped
carry with T = 1, a missing 1/N with N = 1) is counted as not applicable. Exit 0 when there is no false alarm
and every applicable bug is caught and named.

Rows per time step (``x[t=3]``) and per gate (``Wx:i``) come from the checker core (the models'
``time_axes`` and ``splits``).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples import cs231n, dlai, gru, mlp, nodes
from gradcheck.checker import check


@dataclass
class Case:
    name: str
    build: object  # (bug, sizes) -> model
    sizes: tuple[str, ...]
    bugs: dict = field(default_factory=dict)  # bug -> expectation(sizes) -> dict, or None if not applicable


def _carry_in_time(name):
    """A dropped carry in a sequence function: x[t=T-1] right, x[t=T-2] the first wrong going back in time."""

    def expect(s):
        T = s["steps"]
        return None if T < 2 else {"first_bad": (name, T - 2), "pass": [f"{name}[t={T - 1}]"]}

    return expect


def _only(*labels):
    """A bug confined to a block: some of ``labels`` fail, nothing else does (a part whose gradient is zero by
    construction at this point, e.g. the forget gate's with c0 = 0 and T = 1, passes)."""
    return lambda s: {"fail_within": set(labels)}


def _in_gate(weights, labels, *, states=(), min_steps=1):
    """A wrong derivative inside one gate: the step backward is wrong at the top step already, given right
    inputs (x at T-1 is the first bad step; the states at T-1 pass). With T = 1 nothing propagates, and of the
    weight rows (blocks or parts of ``weights``) only ``labels`` fail. With T > 1 the error reaches every
    block through time; how often the gate's rows are still the worst weight rows is counted apart (the "worst
    weight row in the gate" column). ``min_steps``: 2 for a bug that needs c(t-1) != 0 (c0 = 0)."""

    def expect(s):
        T = s["steps"]
        if T < min_steps:
            return None
        out = {
            "first_bad": ("x", T - 1),
            "pass": [f"{st}[t={T - 1}]" for st in states],
            "hint": (set(weights), set(labels)),
        }
        if T == 1:
            out["weights_within"] = (set(weights), set(labels))
        return out

    return expect


def _lstm_steps_carry(state_c, state_h):
    """The carry of the cell state dropped in the step backward: what the top step receives is right (its
    state rows pass), what it returns is wrong (x at T-1, and c at T-2 when there is one)."""

    def expect(s):
        T = s["steps"]
        out = {"first_bad": ("x", T - 1), "pass": [f"{state_c}[t={T - 1}]", f"{state_h}[t={T - 1}]"]}
        if T >= 2:
            out["fail"] = [f"{state_c}[t={T - 2}]"]
        return out

    return expect


def _gru_direct(s):
    T = s["steps"]
    return None if T < 2 else {"first_bad": ("h", T - 2), "pass": [f"h[t={T - 1}]", f"x[t={T - 1}]"]}


LSTM = ("x_dim", "hidden", "steps", "batch", "seed")
CASES = [
    Case(
        "cs231n functions",
        lambda bug, s: cs231n.make(bug=bug, **s),
        LSTM,
        {
            "dropped_carry": _carry_in_time("x"),
            "wh_next_h": _only("Wh:i", "Wh:f", "Wh:o", "Wh:g"),
            "tanh_prime": _in_gate(("Wx", "Wh", "b"), ("Wx:g", "Wh:g", "b:g")),
        },
    ),
    Case(
        "cs231n step loop",
        lambda bug, s: cs231n.make_steps(bug=bug, **s),
        LSTM,
        {
            "dropped_carry": _lstm_steps_carry("c", "h"),
            "wh_next_h": _only("Wh:i", "Wh:f", "Wh:o", "Wh:g"),
            "tanh_prime": _in_gate(("Wx", "Wh", "b"), ("Wx:g", "Wh:g", "b:g"), states=("h", "c")),
        },
    ),
    Case(
        "deeplearning.ai functions",
        lambda bug, s: dlai.make(bug=bug, **s),
        LSTM,
        {
            "no_carry": _carry_in_time("x"),
            "forget_prime": _in_gate(dlai.GATE_PARAMS, ("Wf", "bf"), min_steps=2),
        },
    ),
    Case(
        "GRU step loop",
        lambda bug, s: gru.make_steps(bug=bug, **s),
        LSTM,
        {
            "dropped_direct": _gru_direct,
            "wh_n_no_reset": _only("Wh:n"),
        },
    ),
    Case(
        "node classes step loop",
        lambda bug, s: nodes.make_steps(bug=bug, **s),
        ("x_dim", "hidden", "steps", "seed"),
        {
            "dropped_ds": _lstm_steps_carry("s", "h"),
            "forget_reads_s": _in_gate(nodes.NAMES, ("wf", "bf"), states=("s", "h")),
        },
    ),
    Case(
        "MLP functions",
        lambda bug, s: mlp.make(bug=bug, **s),
        ("x_dim", "hidden", "batch", "seed"),
        {
            "missing_mean": lambda s: None if s["batch"] < 2 else {"fail_exactly": {"W1", "b1", "W2", "b2"}},
            "tanh_prime": _only("W1", "b1"),
        },
    ),
]


def draw_sizes(rng, keys) -> dict:
    out = {k: int(rng.integers(1, 7)) for k in keys if k not in ("batch", "seed")}
    if "batch" in keys:
        out["batch"] = int(rng.integers(1, 5))
    out["seed"] = int(rng.integers(2**31))
    return out


# ------------------------------------------------------------------------------------------------------ runs
def localised(report, expect: dict) -> str | None:
    """None when the report names what ``expect`` says; else what is wrong."""
    failing = {r.label for r in report.failing}
    fb = report.first_bad_step
    if "first_bad" in expect and (fb is None or (fb["name"], fb["t"]) != tuple(expect["first_bad"])):
        return f"first bad step {fb}, expected {expect['first_bad']}"
    for label in expect.get("fail", []):
        if label not in failing:
            return f"{label} passes, expected to fail"
    for label in expect.get("pass", []):
        if label in failing:
            return f"{label} fails, expected to pass"
    if "fail_exactly" in expect and failing != expect["fail_exactly"]:
        return f"failing rows {sorted(failing)}, expected exactly {sorted(expect['fail_exactly'])}"
    if "fail_within" in expect and not (failing and failing <= expect["fail_within"]):
        return (
            f"failing rows {sorted(failing)}, expected some of {sorted(expect['fail_within'])} and no other"
        )
    if "weights_within" in expect:
        weights, labels = expect["weights_within"]
        bad = {r.label for r in report.failing if _block(r) in weights}
        if not (bad and bad <= labels):
            return f"failing weight rows {sorted(bad)}, expected some of {sorted(labels)} and no other"
    return None


def _block(row) -> str:
    return row.label.split(":")[0].split("[")[0]


def worst_weight_in_gate(report, expect: dict) -> bool:
    """Whether the worst failing weight row (err/tol) belongs to the gate at fault."""
    weights, labels = expect["hint"]
    among = [r for r in report.worst_first() if not r.passed and _block(r) in weights]
    return bool(among) and among[0].label in labels


def _tally() -> dict:
    return {"applicable": 0, "caught": 0, "localised": 0, "misses": [], "gate_worst": None}


def run(configs: int, seed: int, *, out=print) -> int:
    stats = {
        c.name: {"configs": 0, "false": [], "max_ratio": 0.0, "bugs": {b: _tally() for b in c.bugs}}
        for c in CASES
    }
    t0 = time.perf_counter()
    for k in range(configs):
        rng = np.random.default_rng([seed, k])
        case = CASES[k % len(CASES)]
        sizes = draw_sizes(rng, case.sizes)
        st = stats[case.name]
        st["configs"] += 1
        model = case.build(None, sizes)
        report = check(model, mode="full")
        st["max_ratio"] = max(st["max_ratio"], max(r.ratio for r in report.rows))
        if not report.passed:
            st["false"].append((sizes, [r.label for r in report.failing]))
        for bug, expectation in case.bugs.items():
            tally = st["bugs"][bug]
            expect = expectation(sizes)
            if expect is None:
                continue
            report = check(case.build(bug, sizes), mode="full")
            problem = localised(report, expect)
            tally["applicable"] += 1
            tally["caught"] += not report.passed
            tally["localised"] += problem is None
            if problem is not None:
                tally["misses"].append((sizes, problem))
            if "hint" in expect:
                tally["gate_worst"] = (tally["gate_worst"] or 0) + worst_weight_in_gate(report, expect)
    elapsed = time.perf_counter() - t0
    return _summary(stats, configs, seed, elapsed, out)


def _summary(stats, configs, seed, elapsed, out) -> int:
    out(
        f"Command: python benchmarks/own_code.py --configs {configs} --seed {seed}; "
        f"{time.strftime('%Y-%m-%d')}; "
        f"{platform.machine()}, numpy {np.__version__}, Python {platform.python_version()}; {elapsed:.0f} s"
    )
    out("")
    out(
        "| example | configurations | false alarms | max err/tol (correct) | planted bug | applicable "
        "| caught "
        "| localised | worst weight row in the gate |"
    )
    out("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for name, st in stats.items():
        head = f"| {name} | {st['configs']} | {len(st['false'])} | {st['max_ratio']:.2g} |"
        for bug, t in st["bugs"].items():
            hint = "-" if t["gate_worst"] is None else f"{t['gate_worst']} of {t['applicable']}"
            out(f"{head} {bug} | {t['applicable']} | {t['caught']} | {t['localised']} | {hint} |")
            head = "| | | | |"
            ok &= t["caught"] == t["applicable"] == t["localised"]
        ok &= not st["false"]
    total = sum(st["configs"] for st in stats.values())
    false = sum(len(st["false"]) for st in stats.values())
    out("")
    out(
        f"{total} configurations, {false} false alarms; "
        + (
            "every applicable planted bug caught and localised"
            if ok
            else "NOT every bug caught and localised"
        )
    )
    for name, st in stats.items():
        for sizes, rows in st["false"][:5]:
            out(f"false alarm: {name} {sizes}: {rows}")
        for bug, t in st["bugs"].items():
            for sizes, problem in t["misses"][:5]:
                out(f"not localised: {name} {bug} {sizes}: {problem}")
    return 0 if ok else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", type=int, default=500, help="random configurations (default 500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the configurations (default 0)")
    args = p.parse_args(argv)
    return run(args.configs, args.seed)


if __name__ == "__main__":
    sys.exit(main())
