"""gradcheck.torch: PyTorch functions and modules checked through their own backward (autograd) against finite
differences of their forward: nn.LSTM / nn.GRU pass, planted wrong gradients are caught and named, the module
and the inputs are never changed, float32 is promoted and the report says so, bad input is a clear error."""

from __future__ import annotations

import functools
import json
import os
import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests._torch import ci, torch_or_skip

torch = torch_or_skip()

import gradcheck.torch as gt  # noqa: E402
from gradcheck import ModelError, ProtocolError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


class Scale(torch.autograd.Function):
    """y = w * x (elementwise) with a hand-written backward; ``bug`` scales dw by 1 + bug."""

    @staticmethod
    def forward(ctx, x, w, bug=0.0):
        ctx.save_for_backward(x, w)
        ctx.bug = bug
        return w * x

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        return dy * w, dy * x * (1 + ctx.bug), None


class Pair(torch.autograd.Function):
    """Two outputs (sin x, x * y); ``bug`` drops the second output's gradient into x."""

    @staticmethod
    def forward(ctx, x, y, bug=False):
        ctx.save_for_backward(x, y)
        ctx.bug = bug
        return torch.sin(x), x * y

    @staticmethod
    def backward(ctx, da, db):
        x, y = ctx.saved_tensors
        dx = da * torch.cos(x) + (0 if ctx.bug else db * y)
        return dx, db * x, None


class ScaledLinear(torch.nn.Module):
    """A module whose weight goes through the custom Function (so its backward is ours to get wrong)."""

    def __init__(self, n, bug=0.0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.linspace(0.5, 1.5, n, dtype=torch.float64))
        self.bias = torch.nn.Parameter(torch.zeros(n, dtype=torch.float64))
        self.bug = bug

    def forward(self, x):
        return torch.tanh(Scale.apply(x, self.weight, self.bug) + self.bias)


def x64(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def failing(report):
    return [r.label for r in report.rows if not r.passed]


# ---- torch's own recurrent modules pass
@pytest.mark.parametrize("cls", [torch.nn.LSTM, torch.nn.GRU])
def test_torch_recurrent_modules_pass_in_float64(cls):
    torch.manual_seed(0)
    module = cls(3, 4).double()
    report = gt.check_module(module, (x64(5, 2, 3),), time_axis={"arg0": 0}, mode="full")
    assert report.passed, report.verdict()
    names = [n for n, _ in module.named_parameters()]
    assert [r.label for r in report.rows] == [*names, *(f"arg0[t={t}]" for t in range(5))]


def test_a_float32_module_passes_promoted_to_float64_and_the_report_says_so():
    torch.manual_seed(0)
    module = torch.nn.LSTM(3, 4)  # float32
    x = torch.randn(4, 1, 3)
    report = gt.check_module(module, (x,), split={"weight_ih_l0": (0, ["i", "f", "g", "o"])}, mode="full")
    assert report.passed, report.verdict()
    tset = report.settings["torch"]
    assert tset["promoted_from"] == "float32" and tset["dtype"] == "float64"
    assert report.settings["dtype"] == "float64" and report.settings["rtol"] == 1e-6
    assert "float64 promoted from float32" in report.model
    assert json.loads(json.dumps(report.to_dict()))["settings"]["torch"]["promoted_from"] == "float32"


def test_dtype_float32_keeps_float32_with_float32_tolerances():
    module = ScaledLinear(6).float()
    x = torch.linspace(-1, 1, 6)
    report = gt.check_module(module, (x,), dtype=torch.float32, method="central", mode="full")
    assert report.passed, report.verdict()
    assert report.settings["dtype"] == "float32" and report.settings["rtol"] == 1e-2
    assert report.settings["torch"]["promoted_from"] is None
    bad = gt.check_module(ScaledLinear(6, bug=0.2).float(), (x,), dtype="float32", mode="full")
    assert failing(bad) == ["weight"]


# ---- planted wrong gradients are caught, beside the correct ones passing
def test_a_module_with_a_wrong_parameter_gradient_fails_that_parameter_only():
    x = x64(6)
    assert gt.check_module(ScaledLinear(6), (x,)).passed
    report = gt.check_module(ScaledLinear(6, bug=1e-4), (x,))
    assert failing(report) == ["weight"]
    assert report.rows[0].kind == "param"


def test_every_floating_output_is_projected_so_a_bug_through_the_second_output_is_caught():
    inputs = {"x": x64(5), "y": x64(5, seed=1)}
    assert gt.check_function(Pair.apply, inputs).passed
    report = gt.check_function(functools.partial(Pair.apply, bug=True), inputs)
    assert failing(report) == ["x"]
    assert report.settings["torch"]["output_shapes"] == [[5], [5]]


def test_a_function_subclass_is_called_through_apply_and_positional_inputs_are_named_argN():
    report = gt.check_function(Scale, (x64(4), x64(4, seed=1), 1e-3))
    assert [r.label for r in report.rows] == ["arg0", "arg1"]
    assert failing(report) == ["arg1"]
    assert report.settings["torch"]["held_fixed"] == ["arg2"]


def test_a_users_loss_replaces_the_projection():
    inputs = {"x": x64(5), "y": x64(5, seed=1)}
    report = gt.check_function(Pair.apply, inputs, loss=lambda out: (out[1] ** 2).sum())
    assert report.passed and report.settings["torch"]["loss"] == "loss(output)"
    bad = gt.check_function(functools.partial(Pair.apply, bug=True), inputs, loss=lambda out: out[1].sum())
    assert failing(bad) == ["x"]
    # a loss that never reads the buggy path cannot see the bug: the projection is the safer default
    blind = gt.check_function(functools.partial(Pair.apply, bug=True), inputs, loss=lambda out: out[0].sum())
    assert blind.passed


def test_integer_inputs_are_held_fixed():
    def gather(x, idx, scale):
        return x[idx] * scale

    report = gt.check_function(gather, {"x": x64(5), "idx": torch.tensor([0, 2, 2]), "scale": 3.0})
    assert [r.label for r in report.rows] == ["x"] and report.passed
    assert report.settings["torch"]["held_fixed"] == ["idx", "scale"]


class CarryCell(torch.autograd.Function):
    """A cell taking its state as a pair: c' = tanh(x) + f * c, h' = tanh(c'); ``bug`` scales the carry's
    gradient dc by 1 + bug (the state's gradient, which only a checked state input can see)."""

    @staticmethod
    def forward(ctx, x, h, c, f, bug=0.0):
        c_next = torch.tanh(x) + f * c + 0.5 * h
        h_next = torch.tanh(c_next)
        ctx.save_for_backward(x, c, f, h_next)
        ctx.bug = bug
        return h_next, c_next

    @staticmethod
    def backward(ctx, dh_next, dc_next):
        x, c, f, h_next = ctx.saved_tensors
        dc_total = dc_next + (1 - h_next**2) * dh_next  # c' feeds h' = tanh(c')
        return (
            dc_total * (1 - torch.tanh(x) ** 2),
            0.5 * dc_total,
            dc_total * f * (1 + ctx.bug),
            (dc_total * c).sum(0),
            None,
        )


def carry_cell(x, state, f, bug=0.0):
    """``fn(x, (h, c), f)``: the state as one tuple argument, as ``nn.LSTM(x, (h0, c0))`` takes it."""
    return CarryCell.apply(x, *state, f, bug)


def test_tensors_inside_a_tuple_argument_are_rows_so_a_wrong_state_gradient_is_caught():
    state = (x64(2, 3, seed=1), x64(2, 3, seed=2))
    inputs = (x64(2, 3), state, torch.full((3,), 0.7, dtype=torch.float64))
    report = gt.check_function(carry_cell, inputs)
    assert [r.label for r in report.rows] == ["arg0", "arg1.0", "arg1.1", "arg2"] and report.passed
    bad = gt.check_function(functools.partial(carry_cell, bug=1e-4), inputs)
    assert failing(bad) == ["arg1.1"]
    assert bad.settings["torch"]["held_fixed"] == []


def test_the_state_pair_of_nn_lstm_is_checked_and_left_unchanged():
    torch.manual_seed(0)
    module = torch.nn.LSTM(3, 4).double()
    h0, c0 = x64(1, 2, 4, seed=1), x64(1, 2, 4, seed=2)
    before = (h0.clone(), c0.clone())
    report = gt.check_module(module, (x64(5, 2, 3), (h0, c0)), mode="full")
    assert report.passed, report.verdict()
    assert [r.label for r in report.rows][-3:] == ["arg0", "arg1.0", "arg1.1"]
    assert torch.equal(h0, before[0]) and torch.equal(c0, before[1])


def test_nested_containers_name_their_rows_by_index_field_and_key_and_hold_the_rest_fixed():
    from collections import namedtuple

    State = namedtuple("State", "h scale")

    def fn(x, idx, st):
        return (x[idx] * st["a"].h.sum() * st["a"].scale * st["b"]).sum()

    inputs = {"x": x64(5, 2), "idx": torch.tensor([0, 3]), "st": {"a": State(x64(4, seed=1), 3), "b": 2.0}}
    report = gt.check_function(fn, inputs)
    assert [r.label for r in report.rows] == ["x", "st.a.h"] and report.passed
    assert report.settings["torch"]["held_fixed"] == ["idx", "st.a.scale", "st.b"]
    assert "held fixed=['idx', 'st.a.scale', 'st.b']" in report.model
    # a tuple with no floating tensor stays one fixed argument
    plain = gt.check_function(lambda x, shape: x.reshape(shape), (x64(6), (2, 3)))
    assert [r.label for r in plain.rows] == ["arg0"] and plain.settings["torch"]["held_fixed"] == ["arg1"]
    # a container with a constructor of its own is not rebuilt: held fixed, and named so
    from collections import defaultdict

    odd = gt.check_function(lambda s, y: y * s["a"].sum(), {"s": defaultdict(list, a=x64(3)), "y": x64(2)})
    assert [r.label for r in odd.rows] == ["y"] and odd.settings["torch"]["held_fixed"] == ["s"]


def test_the_screen_catches_a_scaled_block_and_passes_the_correct_module():
    torch.manual_seed(0)
    assert gt.check_module(torch.nn.GRU(3, 4).double(), (x64(3, 1, 3),), mode="screen").passed
    report = gt.check_module(ScaledLinear(50, bug=1e-3), (x64(50),), mode="screen")
    assert failing(report) == ["weight"]


def test_complex_step_when_declared():
    torch.manual_seed(0)
    module = torch.nn.LSTM(3, 4).double()
    report = gt.check_module(module, (x64(3, 1, 3),), complex_step=True, method="complex", mode="full")
    assert report.passed and report.method == "complex"
    bad = gt.check_module(ScaledLinear(6, bug=1e-6), (x64(6),), complex_step=True, method="complex")
    assert failing(bad) == ["weight"]  # a 1e-6 error: below central differences' rtol, not complex step's


# ---- the point is never changed, and the process's torch settings are restored
def test_the_module_and_the_inputs_are_left_unchanged():
    torch.manual_seed(0)
    module = torch.nn.LSTM(3, 4)
    module.weight_hh_l0.requires_grad_(False)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    flags = {n: p.requires_grad for n, p in module.named_parameters()}
    x = torch.randn(3, 2, 3, requires_grad=True)
    x0 = x.detach().clone()
    torch.set_num_threads(2)
    report = gt.check_module(module, (x,), mode="full")
    assert report.passed
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) and after[k].dtype == before[k].dtype for k in before)
    assert {n: p.requires_grad for n, p in module.named_parameters()} == flags
    assert all(p.grad is None for p in module.parameters()) and x.grad is None
    assert torch.equal(x.detach(), x0) and module.training
    assert torch.get_num_threads() == 2


def test_the_batched_evaluation_equals_one_loss_call_per_entry_exactly():
    torch.manual_seed(0)
    model = gt.Model(torch.nn.GRU(2, 3).double(), (x64(3, 1, 2),))
    params = model.parameters()
    idx, deltas = np.array([0, 4, 7]), np.array([1e-3, -2e-3, 5e-4])
    batch = model.loss_batch(params, "param", "weight_hh_l0", idx, deltas)
    one = []
    for j, d in zip(idx, deltas):
        p = {k: a.copy() for k, a in params.items()}
        p["weight_hh_l0"].flat[j] += d
        one.append(model.loss(p))
    assert np.array_equal(batch, np.array(one))
    assert model.loss(params) != batch[0]


def test_the_projection_seed_is_the_checks_and_is_recorded():
    inputs = {"x": x64(5), "y": x64(5, seed=1)}
    a, b = gt.check_function(Pair.apply, inputs, seed=3), gt.check_function(Pair.apply, inputs, seed=3)
    c = gt.check_function(Pair.apply, inputs, seed=4)
    assert a.loss == b.loss != c.loss
    assert a.settings["torch"]["projection_seed"] == 3 and a.seed == 3


def test_a_model_pickles_for_worker_processes():
    model = gt.Model(ScaledLinear(4), (x64(4),))
    again = pickle.loads(pickle.dumps(model))
    assert again.loss(again.parameters()) == model.loss(model.parameters())


# ---- bad input: a clear ProtocolError naming the problem
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: gt.check_function(torch.sin, {"i": torch.tensor([1, 2])}), "no floating-point tensor"),
        (lambda: gt.check_function(torch.sin, [x64(2)], time_axis={"x": 0}), "'x' is not one of the checked"),
        (lambda: gt.check_function(torch.sin, x64(2), dtype=torch.bfloat16), "bfloat16 cannot be checked"),
        (lambda: gt.check_function(torch.sin, x64(2), dtype="int"), "expected torch.float64 or"),
        (lambda: gt.check_function(torch.sin, 3.0), "expected a dict name -> tensor"),
        (lambda: gt.check_function("sin", x64(2)), "expected a function or an nn.Module"),
        (lambda: gt.check_function(torch.sin, x64(2), loss=lambda o: 1.0), "must return a scalar tensor"),
        (lambda: gt.check_function(torch.sin, x64(2), loss=lambda o: o), "must return a scalar tensor"),
        (lambda: gt.check_function(torch.argmax, x64(3)), "returned no floating tensor"),
        (lambda: gt.check_function(torch.sin, torch.tensor([1.0, float("nan")])), "contains NaN"),
        (lambda: gt.check_function(torch.sin, x64(2), seed=-1), "seed: expected an integer >= 0"),
        (lambda: gt.check_module(torch.sin, x64(2)), "expected a torch.nn.Module"),
        (lambda: gt.check_module(ScaledLinear(2), {"weight": x64(2)}), "also the name of a module parameter"),
        (
            lambda: gt.check_module(torch.nn.Dropout(0.5), (x64(50),)),
            "not deterministic",
        ),
        (
            lambda: gt.check_function(torch.sin, x64(4), split={"arg0": (0, ["a", "b", "c"])}),
            "3 equal parts do not divide",
        ),
    ],
)
def test_bad_input_is_a_protocol_error_naming_it(call, message):
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(")):
        call()


def test_a_function_that_raises_is_a_model_error_naming_the_stage():
    def forward_fails(x):
        raise RuntimeError("shapes do not match")

    class BackwardFails(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, dy):
            raise RuntimeError("boom in backward")

    with pytest.raises(ModelError, match=r"fn\(\*inputs\): RuntimeError: shapes do not match"):
        gt.check_function(forward_fails, (x64(2),))
    with pytest.raises(ModelError, match="the backward of fn.*boom in backward"):
        gt.check_function(BackwardFails, (x64(2),))
    with pytest.raises(ModelError, match=r"during loss\(output\): AttributeError"):
        gt.check_function(torch.sin, (x64(2),), loss=lambda out: out.no_such_method())


def test_a_float32_closure_gets_a_hint_about_the_promotion():
    lin = torch.nn.Linear(3, 2)  # float32, held inside the function: the checker cannot convert it
    with pytest.raises(ModelError, match="converted the float32 inputs to float64.*dtype=torch.float32"):
        gt.check_function(lambda x: lin(x), (torch.randn(3),))
    assert gt.check_function(lambda x: lin(x), (torch.randn(3),), dtype=torch.float32).passed


# ---- the command line and the pytest plugin take gt.Model
def test_gradcheck_run_checks_a_factory_returning_a_torch_model(tmp_path, monkeypatch, capsys):
    from gradcheck.cli import main

    monkeypatch.chdir(ROOT)
    reports = ["--report-dir", str(tmp_path)]
    assert main(["run", "--model", "examples.torch_cells:correct", "--mode", "full", *reports]) == 0
    assert main(["run", "--model", "examples.torch_cells:buggy", "--steps", "5", *reports]) == 1
    out = capsys.readouterr().out
    assert "first divergence going back in time: x at t=3" in out
    saved = json.loads((tmp_path / "gradcheck.json").read_text())
    assert saved["settings"]["torch"]["projection_seed"] == 0


def test_the_pytest_helpers_take_a_torch_model():
    from gradcheck.testing import assert_gradients

    assert_gradients(gt.Model(ScaledLinear(4), (x64(4),)))
    with pytest.raises(AssertionError, match="weight"):
        assert_gradients(gt.Model(ScaledLinear(4, bug=1e-3), (x64(4),)))


# ---- packaging: torch stays optional
def test_importing_gradcheck_and_its_help_never_import_torch():
    code = (
        "import sys, contextlib, io, gradcheck, gradcheck.cli\n"
        "gradcheck.check; gradcheck.check_function; gradcheck.ReferenceLSTM\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    gradcheck.cli.main(['--help'])\n"
        "    gradcheck.cli.main(['run', '--help'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_without_torch_gradcheck_torch_says_what_to_install():
    code = "import sys; sys.modules['torch'] = None\nimport gradcheck.torch\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0
    assert "gradcheck.torch needs PyTorch" in done.stderr and "gradcheck[torch]" in done.stderr


def test_the_torch_extra_is_pinned_and_test_does_not_pull_torch():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["torch"] == ["torch==2.13.0"]
    assert not any("torch" in req for req in extras["test"])
    readme = (ROOT / "README.md").read_text()
    assert 'pip install ".[test,torch]" && python -m pytest' in readme.split("```")[1]


def test_a_missing_torch_skips_outside_ci_and_fails_under_ci():
    def absent(name):
        raise ImportError(f"No module named {name!r}")

    with pytest.raises(pytest.skip.Exception, match="torch is not installed"):
        torch_or_skip({}, absent)
    with pytest.raises(pytest.fail.Exception, match="CI is set, so the torch tests may not skip"):
        torch_or_skip({"CI": "true"}, absent)
    assert torch_or_skip({"CI": "true"}, lambda name: "the module") == "the module"
    assert ci({"CI": "1"}) and not ci({"CI": "false"}) and not ci({})


# ---- docs/torch.md: its code runs and prints what it says
DOC = ROOT / "docs" / "torch.md"
PRINTS = re.compile(r"^\s*print\(.*\)\s+#\s+(.+?)\s*$", flags=re.MULTILINE)


def test_the_docs_page_code_runs_in_order_and_prints_what_it_says(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 3
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102  (the page's own code)
        out = capsys.readouterr().out
        for expected in PRINTS.findall(code):  # a comment ending in "..." is the start of what is printed
            expected = expected.removesuffix("...").rstrip()
            assert expected in out, f"{expected!r} not in {out!r}"


FORKED = """
import torch
import gradcheck.torch as gt
torch.set_num_threads(2)
a = torch.randn(600, 600, dtype=torch.float64)
for _ in range(3):
    a @ a  # the parent's OpenMP team has run: a forked child that goes parallel waits for it forever
torch.manual_seed(0)
m = torch.nn.Linear(200, 200).double()  # copying its 40,000-entry weight goes parallel on 2 threads
r = gt.check_module(m, (torch.randn(200, dtype=torch.float64),), blocks=["bias"], mode="full", workers=2)
print("passed", r.passed, torch.get_num_threads())
"""


def test_worker_processes_do_not_deadlock_after_the_parent_used_openmp_threads():
    """Every torch operation of the model runs on one intra-op thread, so a worker process forked from a parent
    whose OpenMP team was busy never opens a parallel region (before: a deadlock in clone, this test timed out)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", FORKED],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the check with workers=2 hung (a forked worker waiting for OpenMP threads)")
    assert proc.returncode == 0, err[-2000:]
    assert "passed True 2" in out


def test_the_pytest_fixture_takes_a_torch_model(gradcheck):
    report = gradcheck(gt.Model(ScaledLinear(4), (x64(4),)))
    assert report.passed and "torch" in report.settings
    with pytest.raises(AssertionError, match="weight"):
        gradcheck(gt.Model(ScaledLinear(4, bug=1e-3), (x64(4),)))


def test_chunks_run_concurrently_until_one_stalls_then_one_at_a_time():
    import threading
    import time

    from gradcheck.adapters.torch_model import _ChunkGate

    gate = _ChunkGate()
    for us in (
        100,
        250,
        120,
        300,
        700,
    ):  # two chunks at once, a busy moment: 7x the median of 100..300 is no stall
        gate.note(us * 256e-6, 256)
    gate.note(0.01, 8)  # too short to be timed
    assert not gate.serial and len(gate.recent) == 5

    def overlap(g) -> bool:
        inside, seen = [], []

        def chunk():
            with g.enter(1):
                inside.append(1)
                time.sleep(0.05)
                seen.append(len(inside))
                inside.pop()

        threads = [threading.Thread(target=chunk) for _ in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        return max(seen) == 2

    assert overlap(gate)
    gate.note(2500 * 256e-6, 256)  # 10x the median (250 us): a stall
    assert gate.serial and not overlap(gate)


class TanhLinear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 4)

    def forward(self, x):
        return torch.tanh(self.lin(x))


def test_a_scripted_module_is_checked_without_torch_warnings_on_the_way():
    import warnings

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script is deprecated itself
        scripted = torch.jit.script(TanhLinear())  # float32: its copy is converted to float64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = gt.check_module(scripted, (x64(2, 3),))
    assert report.passed and [r.label for r in report.rows] == ["lin.weight", "lin.bias", "arg0"]


def force(x, bug=0.0):
    """A forward that runs autograd itself: the gradient of E = sum(x**3), 3 x**2 (its backward, 6 x, comes
    from double backward); ``bug`` adds bug * x**2 outside autograd's sight, in the differencing only."""
    with torch.enable_grad():
        leaf = x if x.requires_grad else x.detach().requires_grad_()
        (g,) = torch.autograd.grad((leaf**3).sum(), leaf, create_graph=x.requires_grad)
    return g + (bug * x.detach() ** 2 if bug else 0.0)


def test_differencing_runs_under_inference_mode_unless_the_forward_needs_autograd_itself():
    torch.manual_seed(0)
    lstm = gt.check_module(torch.nn.LSTM(3, 4).double(), (x64(5, 2, 3),))
    assert lstm.passed and lstm.settings["torch"]["differencing_under"] == "torch.inference_mode"
    report = gt.check_function(force, (x64(6),))
    assert report.passed, report.verdict()
    assert report.settings["torch"]["differencing_under"] == "torch.no_grad"
    bad = gt.check_function(functools.partial(force, bug=1e-3), (x64(6),))
    assert failing(bad) == ["arg0"]


def test_a_long_full_check_of_a_module_runs_in_worker_processes_and_catches_the_same_bug(monkeypatch):
    from gradcheck.fast import speed

    monkeypatch.setattr(speed, "CORES", 2)
    monkeypatch.setattr(speed, "PROCESSES_AFTER", 0.0)  # every full check counts as long
    x = torch.linspace(-1, 1, 6, dtype=torch.float64)
    assert "processes" in gt.Model(ScaledLinear(6), (x,)).capabilities
    ok = gt.check_module(ScaledLinear(6), (x,), mode="full")
    assert ok.passed and ok.settings["evaluation"]["executor"] == "2 worker processes"
    bad = gt.check_module(ScaledLinear(6, bug=1e-4), (x,), mode="full")
    assert failing(bad) == ["weight"] and bad.settings["evaluation"]["executor"] == "2 worker processes"
    monkeypatch.setattr(speed, "PROCESSES_AFTER", float("inf"))
    threaded = gt.check_module(ScaledLinear(6, bug=1e-4), (x,), mode="full")
    assert threaded.settings["evaluation"]["executor"] == "serial"
    assert [r.to_dict() for r in threaded.rows] == [r.to_dict() for r in bad.rows]


def test_a_function_that_does_not_pickle_stays_on_the_chunk_threads(monkeypatch):
    from gradcheck.fast import speed

    monkeypatch.setattr(speed, "CORES", 2)
    monkeypatch.setattr(speed, "PROCESSES_AFTER", 0.0)
    model = gt.Model(lambda x: torch.tanh(x), (x64(5),))
    assert "processes" not in model.capabilities
    report = gt.check_function(lambda x: torch.tanh(x), (x64(5),), mode="full")
    assert report.passed and report.settings["evaluation"]["executor"] == "serial"
