"""Functions in, report out: ``check_function`` / ``FunctionModel`` pass correct gradients, catch planted
wrong ones with the argument (and, with the core's time_axes/splits, the time step or gate part) named,
protect the check from functions that write into their inputs, turn bad input into usage errors naming it."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from gradcheck import ModelError, ProtocolError, check
from gradcheck.adapters.functions import FunctionModel, check_function

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def benchmark_module():
    """``benchmarks/own_code.py`` (the examples' cases and expectations)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("own_code")
    finally:
        sys.path.remove(str(BENCHMARKS))


def failing(report):
    return {r.label for r in report.failing}


# ------------------------------------------------------------------------------------------------ a layer
def layer(seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(3, 4)), "W": rng.normal(size=(4, 5)), "y": rng.integers(5, size=3)}


def layer_loss(x, W, y):
    z = np.tanh(x @ W)
    return np.sum(z**2) + np.sum(z[np.arange(len(y)), y])


def layer_grads(x, W, y, scale_W=1.0):
    z = np.tanh(x @ W)
    dz = 2 * z
    dz[np.arange(len(y)), y] += 1
    da = dz * (1 - z**2)
    return {"x": da @ W.T, "W": scale_W * (x.T @ da)}


def test_correct_gradients_pass():
    report = check_function(layer_loss, layer_grads, layer())
    assert report.passed, report.verdict()
    assert [r.label for r in report.rows] == ["x", "W"]


def test_a_planted_wrong_gradient_fails_on_its_argument_only():
    report = check_function(layer_loss, lambda **a: layer_grads(**a, scale_W=1.001), layer())
    assert failing(report) == {"W"}


def test_default_wrt_is_every_float_array_others_held_fixed():
    args = {**layer(), "reg": 0.5, "names": ["a", "b"], "mask": np.ones(3, dtype=bool)}
    model = FunctionModel(
        lambda x, W, y, reg, names, mask: layer_loss(x, W, y),
        lambda x, W, y, reg, names, mask: layer_grads(x, W, y),
        args,
    )
    assert list(model.parameters()) == ["x", "W"]
    assert check(model).passed


def test_wrt_subset_ignores_gradients_of_fixed_arguments():
    model = FunctionModel(layer_loss, layer_grads, layer(), wrt=["W"])
    assert list(model.parameters()) == ["W"]
    assert check(model).passed
    assert failing(
        check_function(layer_loss, lambda **a: layer_grads(**a, scale_W=2.0), layer(), wrt="W")
    ) == {"W"}


def test_functions_that_write_into_their_inputs_cannot_corrupt_the_check():
    """Each call drifts the fixed ``b`` and zeroes ``W`` after use: fresh copies per call keep the check right."""
    rng = np.random.default_rng(1)
    args = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    saved = {k: v.copy() for k, v in args.items()}

    def loss(W, b):
        value = np.sum((W - b) ** 2)
        b += 1.0
        W[...] = 0.0
        return value

    def grads(W, b):
        g = 2 * (W - b)
        b -= 5.0
        return {"W": g}

    report = check_function(loss, grads, args, wrt=["W"])
    assert report.passed, report.verdict()
    for k, value in args.items():
        np.testing.assert_array_equal(value, saved[k])


def test_the_point_is_copied_when_the_model_is_made():
    args = layer()
    model = FunctionModel(layer_loss, layer_grads, args)
    before = model.parameters()["W"].copy()
    args["W"] += 1.0
    np.testing.assert_array_equal(model.parameters()["W"], before)


def test_float32_args_are_checked_in_float32():
    args = {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in layer().items()}
    report = check_function(layer_loss, layer_grads, args)
    assert report.settings["dtype"] == "float32"
    assert report.passed, report.verdict()


def test_options_reach_check():
    report = check_function(layer_loss, layer_grads, layer(), method="richardson", seed=4, sample=3)
    assert (report.method, report.seed) == ("richardson", 4)
    assert all(r.checked == 3 for r in report.rows)


# ---------------------------------------------------------------------------------------- complex step
def test_complex_step_only_when_declared():
    model = FunctionModel(layer_loss, layer_grads, layer())
    assert "complex" not in model.capabilities
    with pytest.raises(ProtocolError, match="complex"):
        check(model, method="complex")
    ok = check_function(layer_loss, layer_grads, layer(), complex_step=True, method="complex")
    assert ok.passed and ok.method == "complex"
    bad = check_function(
        layer_loss,
        lambda **a: layer_grads(**a, scale_W=1 + 1e-7),
        layer(),
        complex_step=True,
        method="complex",
    )
    assert failing(bad) == {"W"}


# ------------------------------------------------------------------------------ the user's exceptions
def test_an_exception_in_loss_is_a_model_error_naming_it():
    def loss(x, W, y):
        raise ValueError("shapes (3,4) and (5,5) not aligned")

    with pytest.raises(ModelError, match=r"loss\(\*\*args\).*not aligned"):
        check_function(loss, layer_grads, layer())


def test_an_exception_in_grads_is_a_model_error_naming_it():
    def grads(x, W, y):
        raise KeyError("dW")

    with pytest.raises(ModelError, match=r"grads\(\*\*args\).*dW"):
        check_function(layer_loss, grads, layer())


def test_an_argument_named_like_a_keyword_of_the_machinery_is_passed_through():
    args = {"fn": np.array([1.0, 2.0]), "stage": np.array([3.0])}
    report = check_function(
        lambda fn, stage: np.sum(fn**2) * stage[0],
        lambda fn, stage: {"fn": 2 * fn * stage[0], "stage": np.sum(fn**2)[None]},
        args,
    )
    assert report.passed, report.verdict()


# --------------------------------------------------------------------------------------- bad input
BAD_MODELS = {
    "args not a dict": ({"args": [np.ones(3)]}, r"args: expected a dict of name -> array, got list of 1"),
    "args empty": ({"args": {}}, r"args: is empty"),
    "nothing to check": (
        {"args": {"y": np.arange(3), "n": 2}},
        r"args: no floating-point numpy array to check \(y: ndarray int64 \(3,\), n: int 2\)",
    ),
    "wrt unknown": ({"wrt": ["x", "z"]}, r"wrt: \['z'\] is not an argument; args has \['x', 'W', 'y'\]"),
    "wrt an int array": ({"wrt": ["W", "y"]}, r"args\['y'\]: has dtype int64"),
    "wrt repeated": ({"wrt": ["W", "W"]}, r"wrt: names repeat"),
    "wrt empty": ({"wrt": []}, r"wrt: expected a non-empty list"),
    "nan in args": ({"args": {"x": np.array([1.0, np.nan])}}, r"args\['x'\]: contains NaN or inf"),
    "empty array": ({"args": {"x": np.zeros((0, 3))}}, r"args\['x'\]: is empty \(shape \(0, 3\)\)"),
    "complex array": ({"args": {"x": np.ones(2, complex)}, "wrt": ["x"]}, r"args\['x'\]: is complex"),
    "time axis out of range": (
        {"time_axis": {"x": 2}},
        r"time_axis\['x'\]: axis 2 is out of range .* 2 dim",
    ),
    "time axis not an int": ({"time_axis": {"x": "1"}}, r"time_axis\['x'\]: the axis must be an integer"),
    "time axis of a fixed arg": (
        {"time_axis": {"y": 0}},
        r"time_axis: 'y' is not one of the checked arrays",
    ),
    "split not dividing": (
        {"split": {"W": (1, ["a", "b"])}},
        r"split\['W'\]: 2 equal parts do not divide axis 1 of length 5 \(shape \(4, 5\)\)",
    ),
    "split parts a string": (
        {"split": {"W": (1, "abcde")}},
        r"split\['W'\]: the parts must be a list of names like \['a', 'b', 'c', 'd', 'e'\]",
    ),
    "split parts repeat": ({"split": {"W": (0, ["a", "a"])}}, r"split\['W'\]: the part names repeat"),
    "split not a pair": ({"split": {"W": ["a", "b"]}}, r"split\['W'\]: expected \(axis, \[part names\]\)"),
    "time axis and split": (
        {"time_axis": {"W": 0}, "split": {"W": (0, ["a", "b"])}},
        r"'W' is in both time_axis and split",
    ),
    "loss not callable": ({"loss": 3.0}, r"loss: expected a function, got float 3.0"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_input_is_a_protocol_error_naming_it(case):
    kwargs, match = BAD_MODELS[case]
    kwargs = {"loss": layer_loss, "grads": layer_grads, "args": layer(), **kwargs}
    with pytest.raises(ProtocolError, match=match):
        FunctionModel(kwargs.pop("loss"), kwargs.pop("grads"), kwargs.pop("args"), **kwargs)


def renamed(**a):
    return {"d" + k: v for k, v in layer_grads(**a).items()}


BAD_FUNCTIONS = {
    "grads with d-prefixed names": (
        layer_loss,
        renamed,
        r"grads\(\*\*args\) returned gradients named \['dx', 'dW'\], which are not arguments .*'dW' -> 'W'",
    ),
    "grads missing a name": (
        layer_loss,
        lambda **a: {"x": layer_grads(**a)["x"]},
        r"grads\(\*\*args\) returned no gradient for \['W'\] \(it returned \['x'\]\)",
    ),
    "grads of the wrong shape": (
        layer_loss,
        lambda **a: {**layer_grads(**a), "W": np.zeros(20)},
        r"grads\(\*\*args\)\['W'\] has shape \(20,\), expected \(4, 5\)",
    ),
    "grads a tuple": (
        layer_loss,
        lambda **a: tuple(layer_grads(**a).values()),
        r"grads\(\*\*args\) must return a dict of name -> gradient, got tuple of 2",
    ),
    "grads None": (
        layer_loss,
        lambda **a: {**layer_grads(**a), "W": None},
        r"grads\(\*\*args\)\['W'\] is None",
    ),
    "grads not numeric": (
        layer_loss,
        lambda **a: {**layer_grads(**a), "W": "zero"},
        r"grads\(\*\*args\)\['W'\]: expected a real numeric array of shape \(4, 5\)",
    ),
    "loss an array": (
        lambda **a: np.tanh(a["x"]),
        layer_grads,
        r"loss\(\*\*args\) must return a scalar number, got ndarray float64 \(3, 4\)",
    ),
    "loss a (loss, grads) pair": (
        lambda **a: (layer_loss(**a), layer_grads(**a)),
        layer_grads,
        r"loss\(\*\*args\) returned a tuple of 2; .*lambda \*\*a: f\(\*\*a\)\[0\]",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FUNCTIONS))
def test_bad_functions_are_protocol_errors_naming_them(case):
    loss, grads, match = BAD_FUNCTIONS[case]
    with pytest.raises(ProtocolError, match=match):
        check_function(loss, grads, layer())


def test_an_unknown_option_is_a_protocol_error_naming_it():
    with pytest.raises(ProtocolError, match=r"unknown option.*'epsilon'"):
        check_function(layer_loss, layer_grads, layer(), epsilon=1e-6)


def test_bad_input_through_the_command_line_is_exit_2_with_one_line(tmp_path, monkeypatch, capsys):
    from gradcheck.cli import main

    (tmp_path / "bad_grads.py").write_text(
        "import numpy as np\n"
        "from gradcheck.adapters.functions import FunctionModel\n"
        "def factory():\n"
        "    return FunctionModel(lambda W: np.sum(W**2), lambda W: {'dW': 2 * W}, {'W': np.ones(3)})\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--model", "bad_grads:factory", "--no-reports"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'dW' -> 'W'" in err and "Traceback" not in err


# ------------------------------------------------------------------------------- the pytest plugin
def test_the_pytest_fixture_accepts_a_function_model(gradcheck):
    gradcheck(FunctionModel(layer_loss, layer_grads, layer()))
    with pytest.raises(AssertionError, match="W"):
        gradcheck(FunctionModel(layer_loss, lambda **a: layer_grads(**a, scale_W=1.01), layer()))


# ------------------------------------------------------- time steps and gate parts (the core's contract)
def rnn(steps=5, seed=0):
    """h(t) = tanh(w * h(t-1) + x(t)) elementwise, x (T, n); L = sum_t <p(t), h(t)>."""
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(steps, 3)), "w": rng.normal(size=3), "p": rng.normal(size=(steps, 3))}


def rnn_loss(x, w, p):
    h, total = np.zeros(3), 0.0
    for t in range(len(x)):
        h = np.tanh(w * h + x[t])
        total = total + p[t] @ h
    return total


def rnn_grads(x, w, p, carry=True):
    hs = [np.zeros(3)]
    for t in range(len(x)):
        hs.append(np.tanh(w * hs[-1] + x[t]))
    dx, dw, dh_next = np.zeros_like(x), np.zeros(3), np.zeros(3)
    for t in reversed(range(len(x))):
        da = (p[t] + (dh_next if carry else 0)) * (1 - hs[t + 1] ** 2)
        dx[t], dw = da, dw + da * hs[t]
        dh_next = da * w
    return {"x": dx, "w": dw}


def test_time_axis_gives_one_row_per_step_and_names_where_a_dropped_carry_enters():
    ok = check_function(rnn_loss, rnn_grads, rnn(), wrt=["x", "w"], time_axis={"x": 0})
    assert ok.passed, ok.verdict()
    assert [r.label for r in ok.rows] == [*(f"x[t={t}]" for t in range(5)), "w"]
    bad = check_function(
        rnn_loss, lambda **a: rnn_grads(**a, carry=False), rnn(), wrt=["x", "w"], time_axis={"x": 0}
    )
    assert failing(bad) == {"x[t=0]", "x[t=1]", "x[t=2]", "x[t=3]", "w"}
    assert bad.first_bad_step == {"name": "x", "t": 3}


def test_split_reports_each_part_and_names_the_wrong_one():
    def grads(scale_b=1.0, **a):
        g = layer_grads(**a)
        g["W"] = g["W"].copy()
        g["W"][:, 2:4] *= scale_b  # columns 2..3 of 6: part "b" of three equal parts
        return g

    args = {**layer(), "W": np.random.default_rng(2).normal(size=(4, 6))}
    split = {"W": (1, ["a", "b", "c"])}
    ok = check_function(layer_loss, grads, args, split=split)
    assert ok.passed, ok.verdict()
    assert [r.label for r in ok.rows] == ["x", "W:a", "W:b", "W:c"]
    bad = check_function(layer_loss, lambda **a: grads(scale_b=1.001, **a), args, split=split)
    assert failing(bad) == {"W:b"}


def test_the_model_line_names_the_arguments_held_fixed_so_a_state_pair_left_unchecked_is_visible():
    def loss(x, state, n):
        return float(np.sum(x * state[0]) * n)

    args = {"x": np.ones(3), "state": (np.arange(3.0), np.ones(3)), "n": 2}
    report = check_function(loss, lambda x, state, n: {"x": state[0] * n}, args)
    assert [r.label for r in report.rows] == ["x"] and report.passed
    assert report.model == "FunctionModel(loss, <lambda>, wrt=['x'], held fixed=['state', 'n'])"


def test_float32_arguments_are_checked_in_float32_and_the_verdict_says_so():
    rng = np.random.default_rng(0)
    args = {"W": rng.normal(size=(4, 3)).astype(np.float32), "x": rng.normal(size=3).astype(np.float32)}

    def loss(W, x):
        return np.sum(np.tanh(W @ x))

    def grads(W, x, scale=1.0):
        d = 1 - np.tanh(W @ x) ** 2
        return {"W": np.outer(d, x) * scale, "x": W.T @ d}

    report = check_function(loss, grads, args)
    assert report.passed and report.settings["dtype"] == "float32"
    assert report.verdict().endswith("(central, float32, seed 0)")
    assert not check_function(loss, lambda **a: grads(**a, scale=1.05), args).passed
    # the same 0.1% error: inside float32's tolerance, caught once the point is float64
    small = lambda **a: grads(**a, scale=1.001)  # noqa: E731
    assert check_function(loss, small, args).passed
    assert not check_function(loss, small, {k: v.astype(np.float64) for k, v in args.items()}).passed


def test_a_model_object_checked_through_its_params_dict_is_left_as_it_was():
    from examples.mlp import TwoLayerNet

    def with_params(net, fn):  # the recipe of docs/own-code.md, section 6
        def call(**params):
            saved = dict(net.params)
            net.params.update(params)
            try:
                return fn()
            finally:
                net.params.update(saved)

        return call

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(3, 4)), np.array([0, 2, 1])
    for bug, wrong in ((None, []), ("missing_mean", ["W1", "b1", "W2", "b2"])):
        net = TwoLayerNet(seed=2, bug=bug)
        before = {k: v.copy() for k, v in net.params.items()}
        ids = {k: id(v) for k, v in net.params.items()}
        report = check_function(
            with_params(net, lambda net=net: net.loss(x, y)[0]),
            with_params(net, lambda net=net: net.loss(x, y)[1]),
            net.params,
        )
        assert [r.label for r in report.failing] == wrong
        assert {k: id(v) for k, v in net.params.items()} == ids
        for k, value in net.params.items():
            np.testing.assert_array_equal(value, before[k])
