"""The public strategies: bounds, agreeing shapes, independent blocks, shrinking, reproducibility, bad arguments."""

import numpy as np
import pytest
from hypothesis import find, given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from gradcheck import check
from gradcheck.lstm.mutants import BY_NAME
from gradcheck.lstm.reference import ReferenceLSTM
from gradcheck.protocol import inspect_model
from gradcheck.strategies import (
    LSTMConfig,
    LSTMProblem,
    ProblemModel,
    lstm_configs,
    lstm_problems,
    make_problem,
    max_preactivation,
    reference_models,
)

BOUNDS = dict(min_x_dim=2, max_x_dim=3, min_hidden=1, max_hidden=4, min_steps=2, max_steps=4)


@given(lstm_configs(**BOUNDS, variants=["tanh"], losses=["seed"]))
def test_configs_respect_bounds_and_choices(c):
    assert isinstance(c, LSTMConfig)
    assert 2 <= c.x_dim <= 3 and 1 <= c.hidden <= 4 and 2 <= c.steps <= 4
    assert (c.variant, c.loss) == ("tanh", "seed")


@given(lstm_problems(max_hidden=5, max_steps=4))
def test_problem_shapes_agree_and_blocks_are_independent(p):
    c = p.config
    for k in ("wg", "wi", "wf", "wo"):
        assert p.params[k].shape == (c.hidden, c.x_dim + c.hidden)
    for k in ("bg", "bi", "bf", "bo"):
        assert p.params[k].shape == (c.hidden,)
    assert p.xs.shape == (c.steps, c.x_dim)
    assert p.ys.shape == ((c.steps,) if c.loss == "seed" else (c.steps, c.hidden))
    assert p.h0.shape == p.s0.shape == (c.hidden,)
    weights = [p.params[k] for k in ("wg", "wi", "wf", "wo")]
    for a in range(4):  # no two blocks equal: a gate swap must be visible
        for b in range(a + 1, 4):
            assert not np.array_equal(weights[a], weights[b])
    assert all(np.all(np.abs(v) <= 0.1) for v in p.params.values())
    assert np.all((p.xs >= 0) & (p.xs <= 1)) and np.all(np.abs(p.ys) <= 0.5)


@given(lstm_problems(max_hidden=4, max_steps=3))
def test_default_problem_is_what_gradcheck_run_checks(p):
    """The printed ``gradcheck run`` command rebuilds exactly this problem."""
    c = p.config
    ref = ReferenceLSTM(c.x_dim, c.hidden, c.steps, variant=c.variant, loss=c.loss, seed=p.seed)
    assert p.is_reference and f"--seed {p.seed}" in p.reproduce()
    for k, v in ref.parameters().items():
        np.testing.assert_array_equal(v, p.params[k])
    for a, b in ((ref.xs, p.xs), (ref.ys, p.ys), (ref.h0, p.h0), (ref.s0, p.s0)):
        np.testing.assert_array_equal(a, b)


def test_problems_shrink_to_the_smallest():
    p = find(lstm_problems(), lambda p: p.config.hidden >= 3 and p.config.steps >= 2)
    assert (p.config.x_dim, p.config.hidden, p.config.steps, p.config.variant, p.seed) == (
        1,
        3,
        2,
        "simple",
        0,
    )


@given(
    lstm_problems(
        weight_scale=0.5,
        input_scale=2.0,
        saturation_limit=2.0,
        nonzero_init=False,
        dtype="float32",
        max_hidden=3,
        max_steps=3,
    )
)
def test_magnitudes_saturation_limit_zero_init_and_dtype(p):
    assert max_preactivation(p) <= 2.0
    assert p.h0 is None and p.s0 is None
    assert all(v.dtype == np.float32 for v in p.params.values()) and p.xs.dtype == np.float32
    assert not p.is_reference and "make_problem" in p.reproduce()


def test_saturation_limit_rejects_saturated_problems():
    cfg = LSTMConfig(5, 6, 5)
    big = make_problem(cfg, seed=3, weight_scale=3.0, input_scale=3.0)
    assert max_preactivation(big) > 3.0  # such a problem is what the default limit filters out


@given(reference_models(max_hidden=3, max_steps=3))
def test_reference_models_follow_the_protocol(model):
    assert isinstance(model, ProblemModel)
    spec = inspect_model(model)
    assert "complex" in spec.capabilities
    pg, sg = model.gradients(model.parameters())
    T, hidden = model.problem.config.steps, model.problem.config.hidden
    assert set(sg) == {"h", "s"} and sg["h"].shape == (T, hidden)
    assert set(pg) == set(spec.params)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(min_hidden=0),
        dict(min_steps=4, max_steps=2),
        dict(max_x_dim=2.5),
        dict(variants=["lstm"]),
        dict(losses=[]),
        dict(min_x_dim=True),
    ],
)
def test_bad_config_bounds_are_rejected(kwargs):
    with pytest.raises(InvalidArgument):
        lstm_configs(**kwargs).example()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(weight_scale=0),
        dict(input_scale=float("nan")),
        dict(target_scale=-1),
        dict(dtype="int32"),
        dict(saturation_limit=0),
        dict(configs=lstm_configs(), max_hidden=3),
    ],
)
def test_bad_problem_options_are_rejected(kwargs):
    with pytest.raises(InvalidArgument):
        lstm_problems(**kwargs).example()


def test_problem_repr_is_short_and_names_the_seed():
    p = make_problem(LSTMConfig(2, 3, 4, "tanh", "seed"), seed=17)
    assert isinstance(p, LSTMProblem) and "seed=17" in repr(p) and "array" not in repr(p)


@given(st.data())
def test_custom_configs_strategy_is_used(data):
    p = data.draw(lstm_problems(configs=st.just(LSTMConfig(1, 2, 3, "tanh", "full"))))
    assert p.config == LSTMConfig(1, 2, 3, "tanh", "full")


@given(reference_models(backward=BY_NAME["gates_swapped"].backward, max_hidden=3, max_steps=3))
def test_reference_models_check_the_backward_they_are_given(model):
    report = check(model, diagnose=False)
    assert {r.name for r in report.failing} == {"wi", "bi", "wf", "bf"}
