"""False alarms and planted bugs over random configurations of the examples (issue 12).

    python benchmarks/own_code.py                 # 500 configurations, seed 0
    python benchmarks/own_code.py --configs 50 --seed 3

Each configuration draws an example (CS231n sequence functions, CS231n step loop, deeplearning.ai layout, GRU
step loop, node classes, MLP), its sizes (1..6 each; batch 1..4) and its seed from
``numpy.random.default_rng([seed, configuration number])``. The correct factory must pass; every planted bug of
the example must fail *and* be localised as :data:`EXPECTED` says (the time step where the error enters, or the
block or gate part at fault). A bug that cannot show at the configuration's size (a dropped carry with T = 1, a
missing 1/N with N = 1) is counted as not applicable. Exit 0 when there is no false alarm and every applicable bug
is caught and named.

Rows per time step (``x[t=3]``) and per gate (``Wx:i``) come from the checker core (the models' ``time_axes`` and
``splits``). On a core without them, the script slices the models itself (:class:`Sliced`: every time index and
part becomes its own parameter block, compared exactly as the core's rows are) and says so in its output.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gradcheck
from examples import cs231n, dlai, gru, mlp, nodes
from gradcheck.adapters.functions import FunctionModel


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


def _worst_weight(weights, *labels, min_steps=1):
    """A bug in one gate that propagates everywhere through time: of the weight rows (blocks or gate parts of
    ``weights``), the worst is one of ``labels``. ``min_steps``: 2 for a bug that only shows with c(t-1) != 0."""
    return lambda s: None if s["steps"] < min_steps else {"worst_in": set(labels), "among": set(weights)}


def _lstm_steps_carry(state_c, state_h):
    """The carry of the cell state dropped in the step backward: what the top step receives is right (its state
    rows pass), what it returns is wrong (x at T-1, and c at T-2 when there is one)."""

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
            "tanh_prime": _worst_weight(("Wx", "Wh", "b"), "Wx:g", "Wh:g", "b:g"),
        },
    ),
    Case(
        "cs231n step loop",
        lambda bug, s: cs231n.make_steps(bug=bug, **s),
        LSTM,
        {
            "dropped_carry": _lstm_steps_carry("c", "h"),
            "wh_next_h": _only("Wh:i", "Wh:f", "Wh:o", "Wh:g"),
            "tanh_prime": _worst_weight(("Wx", "Wh", "b"), "Wx:g", "Wh:g", "b:g"),
        },
    ),
    Case(
        "deeplearning.ai functions",
        lambda bug, s: dlai.make(bug=bug, **s),
        LSTM,
        {
            "no_carry": _carry_in_time("x"),
            "forget_prime": _worst_weight(dlai.GATE_PARAMS, "Wf", "bf", min_steps=2),
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
            "forget_reads_s": _worst_weight(nodes.NAMES, "wf", "bf"),
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


# ----------------------------------------------------------------------------------------------- core contract
def core_has_slices() -> bool:
    """Whether the checker core gives time_axes / splits rows (x[t=1], w:a) itself."""
    model = FunctionModel(
        lambda w: np.sum(w**3), lambda w: {"w": 3 * w**2}, {"w": np.ones((2, 2))}, time_axis={"w": 0}
    )
    return any(r.label == "w[t=1]" for r in gradcheck.check(model).rows)


class Sliced:
    """A model whose ``time_axes`` / ``splits`` blocks are cut into parameter blocks named as the core's rows are
    (``x[t=3]``, ``Wx:i``): the same entries, compared against the same row-wise tolerance."""

    def __init__(self, model):
        self.model = model
        self.capabilities = getattr(model, "capabilities", frozenset())
        self.full = model.parameters()
        self.pieces: dict[str, tuple[str, tuple]] = {}
        for name, a in self.full.items():
            if name in getattr(model, "time_axes", {}):
                ax = model.time_axes[name]
                for t in range(a.shape[ax]):
                    self.pieces[f"{name}[t={t}]"] = (name, _index(a.ndim, ax, t))
            elif name in getattr(model, "splits", {}):
                ax, parts = model.splits[name]
                size = a.shape[ax] // len(parts)
                for k, part in enumerate(parts):
                    self.pieces[f"{name}:{part}"] = (
                        name,
                        _index(a.ndim, ax, slice(k * size, (k + 1) * size)),
                    )
            else:
                self.pieces[name] = (name, (Ellipsis,))

    def __repr__(self):
        return repr(self.model)

    def parameters(self):
        return {k: self.full[n][idx].copy() for k, (n, idx) in self.pieces.items()}

    def _join(self, params):
        dtype = np.result_type(*params.values())
        full = {n: a.astype(dtype) for n, a in self.full.items()}
        for k, (n, idx) in self.pieces.items():
            full[n][idx] = params[k]
        return full

    def loss(self, params, taps=None):
        return self.model.loss(self._join(params), taps)

    def gradients(self, params):
        pg, sg = self.model.gradients(self._join(params))
        return {k: np.asarray(pg[n])[idx] for k, (n, idx) in self.pieces.items()}, sg


def _index(ndim, axis, key) -> tuple:
    return tuple(key if k == axis else slice(None) for k in range(ndim))


TIME_LABEL = re.compile(r"^(.*)\[t=(\d+)\]$")


def first_bad(report, state_order) -> tuple | None:
    """The core's rule: the latest failing time-indexed row (states and time-axis arguments), ties to a state."""
    if report.first_bad_step is not None and any(r.kind == "param" and r.t is not None for r in report.rows):
        return report.first_bad_step["name"], report.first_bad_step["t"]
    bad = []
    for r in report.failing:
        if r.kind == "state":
            bad.append((r.t, 1, -state_order.index(r.name), r.name))
        elif (m := TIME_LABEL.match(r.label)) is not None:
            bad.append((int(m.group(2)), 0, 0, m.group(1)))
    if not bad:
        return None
    t, _, _, name = max(bad)
    return name, t


# ------------------------------------------------------------------------------------------------------ runs
def localised(report, expect: dict, state_order) -> str | None:
    """None when the report names what ``expect`` says; else what is wrong."""
    failing = {r.label for r in report.failing}
    if "first_bad" in expect and first_bad(report, state_order) != tuple(expect["first_bad"]):
        return f"first bad step {first_bad(report, state_order)}, expected {expect['first_bad']}"
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
    if "worst_in" in expect:
        among = [r for r in report.worst_first() if re.split(r"[:\[]", r.name)[0] in expect["among"]]
        worst = among[0].label if among else None
        if worst not in expect["worst_in"]:
            return f"worst row {worst}, expected one of {sorted(expect['worst_in'])}"
    return None


def run(configs: int, seed: int, *, out=print) -> int:
    sliced = not core_has_slices()
    wrap = Sliced if sliced else (lambda m: m)
    stats = {
        c.name: {"configs": 0, "false": [], "max_ratio": 0.0, "bugs": {b: [0, 0, 0, []] for b in c.bugs}}
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
        states = list(getattr(model, "state_names", ()))
        report = gradcheck.check(wrap(model))
        st["max_ratio"] = max(st["max_ratio"], max(r.ratio for r in report.rows))
        if not report.passed:
            st["false"].append((sizes, [r.label for r in report.failing]))
        for bug, expectation in case.bugs.items():
            counts = st["bugs"][bug]  # applicable, caught, named, misses
            expect = expectation(sizes)
            if expect is None:
                continue
            counts[0] += 1
            report = gradcheck.check(wrap(case.build(bug, sizes)))
            counts[1] += not report.passed
            problem = localised(report, expect, states)
            counts[2] += problem is None
            if problem is not None:
                counts[3].append((sizes, problem))
    elapsed = time.perf_counter() - t0
    return _summary(stats, configs, seed, elapsed, sliced, out)


def _summary(stats, configs, seed, elapsed, sliced, out) -> int:
    out(
        f"Command: python benchmarks/own_code.py --configs {configs} --seed {seed}; {time.strftime('%Y-%m-%d')}; "
        f"{platform.machine()}, numpy {np.__version__}, Python {platform.python_version()}; {elapsed:.0f} s"
    )
    if sliced:
        out("Rows x[t=k] and W:part by slicing in this script (the checker core does not give them yet).")
    out("")
    out(
        "| example | configurations | false alarms | max err/tol (correct) | planted bug | applicable | caught "
        "| localised |"
    )
    out("|---|---|---|---|---|---|---|---|")
    ok = True
    for name, st in stats.items():
        first = True
        for bug, (n, caught, named, misses) in st["bugs"].items():
            head = (
                f"| {name} | {st['configs']} | {len(st['false'])} | {st['max_ratio']:.2g} |"
                if first
                else "| | | | |"
            )
            out(f"{head} {bug} | {n} | {caught} | {named} |")
            first = False
            ok &= caught == n == named
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
        for bug, (_, _, _, misses) in st["bugs"].items():
            for sizes, problem in misses[:5]:
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
