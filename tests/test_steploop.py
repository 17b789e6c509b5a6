"""The step loop: the checker runs the user's step forward and step backward, and every state at every step is
a row. Correct steps pass; planted bugs fail at the state, step and block they enter; the user's code cannot
corrupt the check; bad input and wrong return values are usage errors naming the step and the value."""

import functools

import numpy as np
import pytest

from examples import cs231n
from gradcheck import ModelError, ProtocolError, check
from gradcheck.adapters.steploop import StepModel, check_steps


def failing(report):
    return {r.label for r in report.failing}


# ----------------------------------------------------------------------- a vanilla RNN in the CS231n shape
def rnn_step_forward(x, prev_h, W, U, b):
    next_h = np.tanh(x @ W + prev_h @ U + b)
    return next_h, (x, prev_h, W, U, next_h)


def rnn_step_backward(dnext_h, cache, *, bug=None):
    x, prev_h, W, U, next_h = cache
    da = dnext_h * (1 - next_h**2)
    dprev_h = np.zeros_like(prev_h) if bug == "no_carry" else da @ U.T
    dW = x.T @ da * (1.001 if bug == "scale_W" else 1.0)
    return da @ W.T, dprev_h, dW, prev_h.T @ da, da.sum(axis=0)


def rnn(*, steps=5, **kw):
    rng = np.random.default_rng(0)
    N, D, H = 2, 3, 4
    kw = {
        "inputs": rng.normal(size=(N, steps, D)),
        "time_axis": 1,
        "states": {"h": rng.normal(size=(N, H))},
        "params": {"W": rng.normal(size=(D, H)), "U": rng.normal(size=(H, H)) / 2, "b": rng.normal(size=H)},
        **kw,
    }
    return kw.pop("step_forward", rnn_step_forward), kw.pop("step_backward", rnn_step_backward), kw


def model(**kw):
    fwd, bwd, kw = rnn(**kw)
    return StepModel(fwd, bwd, **kw)


def test_correct_steps_pass_with_a_row_per_state_and_step():
    report = check(model())
    assert report.passed, report.verdict()
    assert [r.label for r in report.rows if r.kind == "state"] == [f"h[t={t}]" for t in range(5)]
    assert list(dict.fromkeys(r.name for r in report.rows if r.kind == "param")) == ["W", "U", "b", "x", "h0"]


def test_a_dropped_carry_fails_below_the_top_step_only():
    report = check(model(step_backward=functools.partial(rnn_step_backward, bug="no_carry")))
    assert failing(report) >= {"h[t=3]", "h[t=0]", "W", "h0"}
    assert "h[t=4]" not in failing(report)
    assert report.first_bad_step == {"name": "h", "t": 3}


def test_a_wrong_parameter_gradient_fails_on_that_block_only():
    report = check(model(step_backward=functools.partial(rnn_step_backward, bug="scale_W")))
    assert failing(report) == {"W"}


def test_check_steps_takes_check_options_and_seeds_the_readout_with_the_check_seed():
    fwd, bwd, kw = rnn()
    report = check_steps(fwd, bwd, **kw, seed=7, method="richardson")
    assert report.passed and (report.method, report.seed) == ("richardson", 7)
    assert "seed 7" in report.model
    with pytest.raises(ProtocolError, match=r"unknown option.*'epsilon'"):
        check_steps(fwd, bwd, **kw, epsilon=1e-6)


# ------------------------------------------------------------------------------------------ the readout
def test_the_default_readout_gives_every_state_a_direct_path_at_every_step():
    """With a readout of h alone, dL/dc at the last step is zero by construction; the default readout reaches
    every state at every step, so no state row is zero."""
    m = cs231n.correct_steps(steps=4)
    _, states = m.gradients(m.parameters())
    assert all(np.any(g[t] != 0) for g in states.values() for t in range(4))

    def h_only(states):
        return np.sum(states["h"] ** 2), {"h": 2 * states["h"]}

    p = cs231n.problem(steps=4)
    m2 = StepModel(
        cs231n.lstm_step_forward,
        cs231n.lstm_step_backward,
        inputs=p["x"],
        time_axis=1,
        states={"h": p["h0"], "c": np.zeros_like(p["h0"])},
        params={k: p[k] for k in ("Wx", "Wh", "b")},
        readout=h_only,
    )
    _, states2 = m2.gradients(m2.parameters())
    assert np.all(states2["c"][3] == 0)
    assert check(m2).passed


def test_the_readout_projection_is_drawn_from_the_seed():
    m0, m0b, m1 = model(seed=0), model(seed=0), model(seed=0, readout=None)
    assert m0.loss(m0.parameters()) == m0b.loss(m0b.parameters()) == m1.loss(m1.parameters())
    fwd, bwd, kw = rnn()
    other = StepModel(fwd, bwd, **kw, seed=1)
    assert other.loss(other.parameters()) != m0.loss(m0.parameters())
    assert "seed 1" in repr(other)


def test_a_custom_readout_is_used_and_its_gradient_checked():
    def readout(states, scale=1.0):
        h = states["h"]
        return np.sum(np.sin(h)), {"h": scale * np.cos(h)}

    assert check(model(readout=readout)).passed
    bad = check(model(readout=functools.partial(readout, scale=1.001)))
    assert {f"h[t={t}]" for t in range(5)} <= failing(bad)


def test_taps_are_added_to_what_the_step_returns():
    """A zero tap changes nothing; a tap on h at the last step moves the default readout by <P, tap>."""
    m = model()
    params = m.parameters()
    zero = {"h": np.zeros((5, 2, 4))}
    assert m.loss(params, zero) == m.loss(params)
    tap = np.zeros((5, 2, 4))
    tap[4, 1, 2] = 1e-3
    _, states = m.gradients(params)
    moved = m.loss(params, {"h": tap}) - m.loss(params)
    assert moved == pytest.approx(1e-3 * states["h"][4, 1, 2], rel=1e-9)


# ----------------------------------------------------------------------------- what the user's code does
def test_a_step_that_writes_into_its_state_inputs_cannot_corrupt_the_check():
    def forward(x, prev_h, W, U, b):
        out = rnn_step_forward(x, prev_h.copy(), W, U, b)
        prev_h[...] = 0.0  # scribbles over the state it was handed (not its cache)
        return out

    def backward(dnext_h, cache):
        out = rnn_step_backward(dnext_h, cache)
        dnext_h += 1.0  # CS231n-style in-place update of the caller's array
        return out

    report = check(model(step_forward=forward, step_backward=backward))
    assert report.passed, report.verdict()


def test_parameters_are_read_only_inside_the_step():
    def forward(x, prev_h, W, U, b):
        W += 0.0
        return rnn_step_forward(x, prev_h, W, U, b)

    with pytest.raises(ModelError, match=r"step_forward at t=0: ValueError: .*read-only"):
        check(model(step_forward=forward))


def test_an_exception_in_step_backward_names_the_step():
    def backward(dnext_h, cache):
        raise RuntimeError("my bug")

    with pytest.raises(ModelError, match=r"step_backward at t=4: RuntimeError: my bug"):
        check(model(step_backward=backward))


def test_without_inputs_and_initial_states_only_parameters_and_states_are_rows():
    fwd, bwd, kw = rnn()
    m = StepModel(fwd, lambda *a: (None, *bwd(*a)[1:]), **kw, check_inputs=False, check_init=False)
    assert list(m.parameters()) == ["W", "U", "b"] and m.time_axes == {}
    assert check(m).passed


def test_the_inputs_get_a_time_axis():
    assert model().time_axes == {"x": 1}
    assert model(input_name="xs").time_axes == {"xs": 1}
    assert model(time_axis=-2).time_axes == {"x": 1}


def test_complex_step_when_declared():
    assert "complex" not in model().capabilities
    report = check(model(complex_step=True), method="complex")
    assert report.passed and report.method == "complex"
    bad = check(
        model(complex_step=True, step_backward=functools.partial(rnn_step_backward, bug="scale_W")),
        method="complex",
    )
    assert failing(bad) == {"W"}


# ------------------------------------------------------------------------------------------ bad input
def wrong_count_forward(x, prev_h, W, U, b):
    return (*rnn_step_forward(x, prev_h, W, U, b), "extra")


def wrong_shape_forward(x, prev_h, W, U, b):
    next_h, cache = rnn_step_forward(x, prev_h, W, U, b)
    return next_h[:, :3], cache


def wrong_count_backward(dnext_h, cache):
    return rnn_step_backward(dnext_h, cache)[:4]


def wrong_shape_backward(dnext_h, cache):
    dx, dh, dW, dU, db = rnn_step_backward(dnext_h, cache)
    return dx, dh, dW.T, dU, db


BAD_STEPS = {
    "forward returns 3 values": (
        {"step_forward": wrong_count_forward},
        r"step_forward must return \(next_h, cache\): 2 values; at t=0 it returned tuple of 3",
    ),
    "forward changes the state's shape": (
        {"step_forward": wrong_shape_forward},
        (
            r"step_forward at t=0 returned next 'h' as ndarray float64 \(2, 3\); "
            r"the state 'h' has shape \(2, 4\)"
        ),
    ),
    "backward returns 4 values": (
        {"step_backward": wrong_count_backward},
        (
            r"step_backward must return \(dx, dprev_h, dW, dU, db\): 5 values in that order .* "
            r"at t=4 it returned tuple of 4"
        ),
    ),
    "backward dW transposed": (
        {"step_backward": wrong_shape_backward},
        r"step_backward at t=4: value 2 \(dW\) has shape \(4, 3\), expected \(3, 4\)",
    ),
    "backward without dx": (
        {"step_backward": lambda *a: (None, *rnn_step_backward(*a)[1:])},
        r"step_backward returned None for dx at t=4; .*check_inputs=False",
    ),
    "readout returns a float": (
        {"readout": lambda states: 1.0},
        r"readout\(states\) must return \(loss, dstates\), got float 1.0",
    ),
    "readout names an unknown state": (
        {"readout": lambda states: (0.0, {"c": 0})},
        r"readout\(states\) returned gradients for \['c'\], which are not",
    ),
}


@pytest.mark.parametrize("case", list(BAD_STEPS))
def test_wrong_return_values_are_protocol_errors_naming_them(case):
    kwargs, match = BAD_STEPS[case]
    with pytest.raises(ProtocolError, match=match):
        check(model(**kwargs))


BAD_INPUT = {
    "int state": ({"states": {"h": np.zeros((2, 4), dtype=int)}}, r"states\['h'\]: has dtype int64"),
    "state as the python int 0": ({"states": {"h": 0}}, r"states\['h'\]: has dtype int64"),
    "no states": ({"states": {}}, r"states: is empty"),
    "params not a dict": (
        {"params": [np.ones(3)]},
        r"params: expected a dict of name -> array, got list of 1",
    ),
    "nan in a parameter": ({"params": {"W": np.full((3, 4), np.nan)}}, r"params\['W'\]: contains NaN"),
    "scalar inputs": ({"inputs": 1.0}, r"inputs: is a scalar"),
    "time axis out of range": (
        {"time_axis": 3},
        r"time_axis: axis 3 is out of range for an array with 3 dim",
    ),
    "initial-state name taken": (
        {"params": {"W": np.ones((3, 4)), "h0": np.ones(4)}},
        r"the name 'h0' is both a parameter and an initial state",
    ),
    "state named like a parameter": (
        {"states": {"W": np.ones((2, 4))}},
        r"the name 'W' is both a parameter and a state",
    ),
    "input named like a parameter": ({"input_name": "b"}, r"the name 'b' is both a parameter and an input"),
    "split not dividing": (
        {"split": {"W": (1, ["a", "b", "c"])}},
        r"split\['W'\]: 3 equal parts do not divide",
    ),
    "readout not callable": ({"readout": "mse"}, r"readout: expected None or a function"),
    "bad seed": ({"seed": -1}, r"seed: expected an integer >= 0, got -1"),
    "step not callable": ({"step_forward": None}, r"step_forward: expected a function, got NoneType"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_a_protocol_error_naming_it(case):
    kwargs, match = BAD_INPUT[case]
    with pytest.raises(ProtocolError, match=match):
        model(**kwargs)


# --------------------------------------------------------------------- inputs per time step (core contract)
def test_input_rows_per_step_name_where_the_step_backward_goes_wrong():
    ok = check(model())
    assert [r.label for r in ok.rows if r.name == "x"] == [f"x[t={t}]" for t in range(5)]
    bad = check(model(step_backward=functools.partial(rnn_step_backward, bug="no_carry")))
    assert "x[t=4]" not in failing(bad) and "x[t=3]" in failing(bad)
    assert bad.first_bad_step == {"name": "h", "t": 3}  # x and h both first wrong at t=3: ties go to a state
