"""The examples run: every correct factory passes, every planted bug fails where it enters (state, step, block
or gate part), through ``check``, ``gradcheck run --model`` and the step loop; the docs page's code runs; the
benchmark of false alarms runs."""

import importlib
import json
import re
import sys
from pathlib import Path

import pytest
from test_functions import benchmark_module

from examples import cs231n, dlai, gru, mlp, nodes
from gradcheck import check
from gradcheck.cli import main
from gradcheck.cli.loading import accepted_keys

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "own-code.md"
FACTORIES = [
    (m, f)
    for m in (cs231n, dlai, gru, nodes, mlp)
    for f in ("correct", "buggy", "correct_steps", "buggy_steps")
    if hasattr(m, f)
]


def failing(report):
    return {r.label for r in report.failing}


def failing_blocks(report):
    return {r.name for r in report.failing}


@pytest.mark.parametrize(("module", "name"), FACTORIES, ids=[f"{m.__name__}:{f}" for m, f in FACTORIES])
def test_correct_passes_buggy_fails(module, name):
    report = check(getattr(module, name)())
    assert report.passed is name.startswith("correct"), report.verdict()


@pytest.mark.parametrize(("module", "name"), FACTORIES, ids=[f"{m.__name__}:{f}" for m, f in FACTORIES])
def test_factories_take_the_command_line_sizes(module, name):
    assert {"x_dim", "hidden", "seed"} <= set(accepted_keys(getattr(module, name)))


def weight_rows_failing(report, weights):
    return {r.label for r in report.failing if r.label.split(":")[0].split("[")[0] in weights}


def worst_weight(report, weights):
    return next(r for r in report.worst_first() if r.label.split(":")[0].split("[")[0] in weights)


# Every planted bug, at the default sizes (T = 5) unless a step count is given: what fails and what passes on
# the rows the core gives today (parameter blocks, states per step). Rows per step of x and per gate part are
# in CORE_PLANTED. A wrong derivative inside one gate spreads to every block through time (not with T = 1).
PLANTED = {
    ("cs231n", "make", "dropped_carry", 5): lambda r: "x" in failing_blocks(r),
    ("cs231n", "make", "wh_next_h", 5): lambda r: failing_blocks(r) == {"Wh"},
    ("cs231n", "make", "tanh_prime", 5): lambda r: {"Wx", "Wh", "b"} <= failing_blocks(r),
    ("cs231n", "make_steps", "dropped_carry", 5): lambda r: (
        "c[t=3]" in failing(r) and not {"c[t=4]", "h[t=4]"} & failing(r)
    ),
    ("cs231n", "make_steps", "wh_next_h", 5): lambda r: failing_blocks(r) == {"Wh"},
    ("cs231n", "make_steps", "tanh_prime", 5): lambda r: not {"c[t=4]", "h[t=4]"} & failing(r),
    ("dlai", "make", "no_carry", 5): lambda r: "x" in failing_blocks(r),
    ("dlai", "make", "forget_prime", 5): lambda r: worst_weight(r, dlai.GATE_PARAMS).name in {"Wf", "bf"},
    ("gru", "make_steps", "dropped_direct", 5): lambda r: (
        r.first_bad_step == {"name": "h", "t": 3} and "h[t=4]" not in failing(r)
    ),
    ("gru", "make_steps", "wh_n_no_reset", 5): lambda r: failing_blocks(r) == {"Wh"},
    ("nodes", "make_steps", "dropped_ds", 5): lambda r: (
        "s[t=3]" in failing(r) and not {"s[t=4]", "h[t=4]"} & failing(r)
    ),
    ("nodes", "make_steps", "forget_reads_s", 1): lambda r: (
        weight_rows_failing(r, nodes.NAMES) == {"wf", "bf"}
    ),
    ("nodes", "make_steps", "forget_reads_s", 5): lambda r: not {"s[t=4]", "h[t=4]"} & failing(r),
    ("mlp", "make", "missing_mean", None): lambda r: failing_blocks(r) == {"W1", "b1", "W2", "b2"},
    ("mlp", "make", "tanh_prime", None): lambda r: failing_blocks(r) == {"W1", "b1"},
}


def build(module, factory, bug, steps):
    make = getattr(importlib.import_module(f"examples.{module}"), factory)
    return make(bug=bug) if steps is None else make(bug=bug, steps=steps)


def test_every_planted_bug_has_a_test():
    modules = {"cs231n": cs231n, "dlai": dlai, "gru": gru, "nodes": nodes, "mlp": mlp}
    listed = {(m, bug) for m, _, bug, _ in PLANTED}
    assert listed == {(name, bug) for name, mod in modules.items() for bug in mod.BUGS}


@pytest.mark.parametrize("key", list(PLANTED), ids=["-".join(map(str, k)) for k in PLANTED])
def test_planted_bugs_fail_where_they_enter(key):
    report = check(build(*key))
    assert not report.passed
    assert PLANTED[key](report), f"{report.verdict()}: {sorted(failing(report))}"


# With the core's rows: x per step, the weights per gate. Inside-a-gate bugs: x at T-1 is the first bad step
# (the top step's backward is wrong given right inputs), and with T = 1 only the gate's weight rows fail.
CORE_PLANTED = {
    ("cs231n", "make", "dropped_carry", 5): lambda r: (
        r.first_bad_step == {"name": "x", "t": 3} and "x[t=4]" not in failing(r)
    ),
    ("cs231n", "make", "wh_next_h", 5): lambda r: failing(r) == {"Wh:i", "Wh:f", "Wh:o", "Wh:g"},
    ("cs231n", "make", "tanh_prime", 5): lambda r: r.first_bad_step == {"name": "x", "t": 4},
    ("cs231n", "make", "tanh_prime", 1): lambda r: (
        weight_rows_failing(r, ["Wx", "Wh", "b"]) == {"Wx:g", "Wh:g", "b:g"}
    ),
    ("cs231n", "make_steps", "dropped_carry", 5): lambda r: r.first_bad_step == {"name": "x", "t": 4},
    ("cs231n", "make_steps", "tanh_prime", 1): lambda r: (
        weight_rows_failing(r, ["Wx", "Wh", "b"]) == {"Wx:g", "Wh:g", "b:g"}
    ),
    ("dlai", "make", "no_carry", 5): lambda r: (
        r.first_bad_step == {"name": "x", "t": 3} and "x[t=4]" not in failing(r)
    ),
    ("dlai", "make", "forget_prime", 5): lambda r: r.first_bad_step == {"name": "x", "t": 4},
    ("gru", "make_steps", "dropped_direct", 5): lambda r: (
        r.first_bad_step == {"name": "h", "t": 3} and "x[t=4]" not in failing(r) and "x[t=3]" in failing(r)
    ),
    ("gru", "make_steps", "wh_n_no_reset", 5): lambda r: failing(r) == {"Wh:n"},
    ("nodes", "make_steps", "dropped_ds", 5): lambda r: r.first_bad_step == {"name": "x", "t": 4},
    ("nodes", "make_steps", "forget_reads_s", 5): lambda r: r.first_bad_step == {"name": "x", "t": 4},
}


@pytest.mark.parametrize("key", list(CORE_PLANTED), ids=["-".join(map(str, k)) for k in CORE_PLANTED])
def test_planted_bugs_named_by_the_core(key):
    report = check(build(*key))
    assert CORE_PLANTED[key](report), f"{report.verdict()}: {sorted(failing(report))}"


# ------------------------------------------------------------------ the done criteria (CS231n)
@pytest.mark.parametrize("steps", [2, 5])
def test_cs231n_dropped_carry_through_check_function_first_bad_step_x_at_T_minus_2(steps):
    assert check(cs231n.correct(steps=steps)).passed
    report = check(cs231n.buggy(steps=steps))
    assert report.first_bad_step == {"name": "x", "t": steps - 2}
    assert f"x[t={steps - 1}]" not in failing(report) and f"x[t={steps - 2}]" in failing(report)


@pytest.mark.parametrize("steps", [2, 5])
def test_cs231n_dropped_carry_through_the_step_loop_fails_at_c_T_minus_2(steps):
    assert check(cs231n.correct_steps(steps=steps)).passed
    report = check(cs231n.buggy_steps(steps=steps))
    assert f"c[t={steps - 2}]" in failing(report)
    assert not {f"h[t={steps - 1}]", f"c[t={steps - 1}]"} & failing(report)


@pytest.fixture
def in_root(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return tmp_path


def run_json(tmp_path, *argv) -> tuple[int, dict]:
    path = tmp_path / "r.json"
    code = main(["run", *argv, "--no-reports", "--json", str(path), "-q"])
    return code, json.loads(path.read_text())


def test_gradcheck_run_model_checks_the_examples_with_sizes_from_the_command_line(in_root):
    code, ok = run_json(in_root, "--model", "examples.cs231n:correct", "--hidden", "3", "--steps", "4")
    assert code == 0 and ok["passed"]
    assert sum(r["checked"] for r in ok["rows"] if r["name"] == "Wh") == 3 * 12
    code, bad = run_json(in_root, "--model", "examples.cs231n:buggy", "--steps", "5")
    assert code == 1 and not bad["passed"]
    code, steps = run_json(in_root, "--model", "examples.cs231n:buggy_steps", "--steps", "5")
    labels = {f"{r['name']}[t={r['t']}]": r["passed"] for r in steps["rows"] if r["kind"] == "state"}
    assert code == 1 and labels["c[t=3]"] is False and labels["h[t=4]"] is True


def test_gradcheck_run_model_names_x_at_T_minus_2(in_root):
    code, report = run_json(in_root, "--model", "examples.cs231n:buggy", "--steps", "5", "--hidden", "4")
    assert code == 1 and report["first_bad_step"] == {"name": "x", "t": 3}
    by_label = {(r["name"], r["t"]): r["passed"] for r in report["rows"]}
    assert by_label[("x", 4)] is True and by_label[("x", 3)] is False


def test_examples_run_in_worker_processes():
    serial, pooled = check(cs231n.correct()), check(cs231n.correct(), workers=2)
    assert pooled.passed
    assert [(r.label, r.max_abs_err) for r in pooled.rows] == [(r.label, r.max_abs_err) for r in serial.rows]


# ------------------------------------------------------------------------------------- docs, benchmark
def doc_blocks():
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL) if DOC.exists() else []


def test_the_docs_page_exists_and_has_code():
    assert len(doc_blocks()) >= 4


PRINTS = re.compile(r"^\s*print\(.*\)\s+#\s+(.+?)\s*$", flags=re.MULTILINE)


def test_the_docs_code_runs_in_order_and_prints_what_it_says(capsys, monkeypatch):
    """The page's Python blocks, in one namespace, in the order a reader meets them; each line
    ``print(...)  # text`` prints ``text``."""
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    for code in doc_blocks():
        exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102  (the page's own code)
        out = capsys.readouterr().out
        for expected in PRINTS.findall(code):
            assert expected in out, f"{expected!r} not in {out!r}"


def test_the_benchmark_runs_and_finds_no_false_alarm():
    lines = []
    assert benchmark_module().run(6, 11, out=lines.append) == 0
    assert any("6 configurations, 0 false alarms" in line for line in lines)
