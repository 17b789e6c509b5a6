"""The reference LSTM: BPTT against derivatives computed independently of the backward pass, the write-up's
demo against its published numbers, structural facts of BPTT, dtypes, and bad input."""

import io
from contextlib import redirect_stdout

import numpy as np
import pytest

import lstm_ref
from gradcheck.cli import main
from lstm_ref.model import PARAM_KEYS

CONFIGS = [
    # (x_dim, hidden, T, variant, loss)
    (1, 1, 1, "simple", "seed"),
    (2, 3, 4, "simple", "full"),
    (3, 2, 5, "tanh", "seed"),
    (4, 5, 3, "tanh", "full"),
    (5, 4, 6, "simple", "seed"),
]


def problem(x_dim, hidden, T, loss, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    params = lstm_ref.init_params(x_dim, hidden, seed=seed + 1, scale=scale)
    xs = rng.normal(size=(T, x_dim))
    ys = rng.uniform(-0.5, 0.5, size=(T,) if loss == "seed" else (T, hidden))
    h0, s0 = rng.uniform(-0.5, 0.5, hidden), rng.uniform(-0.5, 0.5, hidden)
    return params, xs, ys, h0, s0


def complex_step(f, x, h=1e-30):
    """dF/dx_j = Im F(x + i h e_j) / h for every entry: exact to rounding, no cancellation.

    Independent of the backward pass: it only runs the forward pass on complex numbers."""
    out = np.empty(x.shape)
    for j in np.ndindex(x.shape):
        xc = x.astype(complex)
        xc[j] += 1j * h
        out[j] = f(xc).imag / h
    return out


def central(f, x, h=1e-6):
    out = np.empty(x.shape)
    for j in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[j] += h
        xm[j] -= h
        out[j] = (f(xp) - f(xm)) / (2 * h)
    return out


def rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("x_dim,hidden,T,variant,loss", CONFIGS)
def test_param_grads_match_complex_step(x_dim, hidden, T, variant, loss):
    params, xs, ys, h0, s0 = problem(x_dim, hidden, T, loss)
    _, grads, _, _ = lstm_ref.loss_and_grads(params, xs, ys, variant=variant, loss=loss, h0=h0, s0=s0)
    for k in PARAM_KEYS:

        def f(block, k=k):
            return lstm_ref.total_loss({**params, k: block}, xs, ys, variant=variant, loss=loss, h0=h0, s0=s0)

        assert rel_err(grads[k], complex_step(f, params[k])) < 1e-12, k


@pytest.mark.parametrize("x_dim,hidden,T,variant,loss", CONFIGS)
def test_state_grads_match_taps(x_dim, hidden, T, variant, loss):
    params, xs, ys, h0, s0 = problem(x_dim, hidden, T, loss)
    _, _, dh, ds = lstm_ref.loss_and_grads(params, xs, ys, variant=variant, loss=loss, h0=h0, s0=s0)
    for state, analytic in (("h", dh), ("s", ds)):

        def f(tap, state=state):
            return lstm_ref.total_loss(
                params, xs, ys, variant=variant, loss=loss, h0=h0, s0=s0, taps={state: tap}
            )

        numeric = complex_step(f, np.zeros((T, hidden)))
        assert rel_err(analytic, numeric) < 1e-12, state
        # and against plain central differences, which do not rely on complex arithmetic at all
        assert rel_err(analytic, central(f, np.zeros((T, hidden)))) < 1e-6, state


def test_initial_state_gradients_match():
    params, xs, ys, h0, s0 = problem(3, 4, 3, "full")
    _, bp = lstm_ref.loss_and_bptt(params, xs, ys, variant="tanh", loss="full", h0=h0, s0=s0)
    f_h = lambda v: lstm_ref.total_loss(params, xs, ys, variant="tanh", loss="full", h0=v, s0=s0)  # noqa: E731
    f_s = lambda v: lstm_ref.total_loss(params, xs, ys, variant="tanh", loss="full", h0=h0, s0=v)  # noqa: E731
    assert rel_err(bp.dh0, complex_step(f_h, h0)) < 1e-12
    assert rel_err(bp.ds0, complex_step(f_s, s0)) < 1e-12


def test_pre_activation_gradients_give_the_bias_gradients():
    params, xs, ys, h0, s0 = problem(3, 4, 5, "full")
    _, bp = lstm_ref.loss_and_bptt(params, xs, ys, loss="full", h0=h0, s0=s0)
    for gate in "gifo":
        np.testing.assert_allclose(bp.dpre[gate].sum(axis=0), bp.param_grads["b" + gate], rtol=1e-12)
        # dW = sum_t dpre(t) x_c(t)^T
        tr = lstm_ref.forward(params, xs, h0=h0, s0=s0)
        np.testing.assert_allclose(bp.dpre[gate].T @ tr.x_c, bp.param_grads["w" + gate], rtol=1e-12)


def test_last_step_structure_simple_variant():
    params, xs, ys, h0, s0 = problem(3, 4, 4, "full")
    tr = lstm_ref.forward(params, xs, h0=h0, s0=s0)
    _, _, dh, ds = lstm_ref.loss_and_grads(params, xs, ys, loss="full", h0=h0, s0=s0)
    np.testing.assert_allclose(dh[-1], 2 * (tr.h[-1] - ys[-1]), rtol=1e-14)  # the loss gradient alone
    np.testing.assert_allclose(ds[-1], tr.o[-1] * dh[-1], rtol=1e-14)  # nothing flows from t = T
    # seed loss: only h[0] receives gradient at the last step
    ys1 = ys[:, 0]
    _, _, dh1, _ = lstm_ref.loss_and_grads(params, xs, ys1, loss="seed", h0=h0, s0=s0)
    assert np.all(dh1[-1, 1:] == 0) and dh1[-1, 0] == pytest.approx(2 * (tr.h[-1, 0] - ys1[-1]))


def test_recursion_between_steps():
    params, xs, ys, h0, s0 = problem(2, 3, 5, "full")
    tr = lstm_ref.forward(params, xs, variant="tanh", h0=h0, s0=s0)
    _, _, dh, ds = lstm_ref.loss_and_grads(params, xs, ys, variant="tanh", loss="full", h0=h0, s0=s0)
    for t in range(4):
        expected = tr.o[t] * (1 - np.tanh(tr.s[t]) ** 2) * dh[t] + ds[t + 1] * tr.f[t + 1]
        np.testing.assert_allclose(ds[t], expected, rtol=1e-12)


def test_shapes_and_trace():
    params, xs, ys, h0, s0 = problem(3, 4, 5, "seed")
    tr = lstm_ref.forward(params, xs)
    for name in ("h", "s", "g", "i", "f", "o"):
        assert getattr(tr, name).shape == (5, 4)
    assert tr.x_c.shape == (5, 7)
    np.testing.assert_array_equal(tr.x_c[1, 3:], tr.h[0])  # x_c(t) = [x(t), h(t-1)]
    np.testing.assert_array_equal(tr.x_c[0, :3], xs[0])
    L, grads, dh, ds = lstm_ref.loss_and_grads(params, xs, ys)
    assert isinstance(L, float)
    assert {k: v.shape for k, v in grads.items()} == {k: v.shape for k, v in params.items()}
    assert dh.shape == ds.shape == (5, 4)


def test_init_params_contract():
    p = lstm_ref.init_params(3, 2, seed=7, scale=0.2)
    assert list(p) == ["wg", "wi", "wf", "wo", "bg", "bi", "bf", "bo"]
    assert p["wg"].shape == (2, 5) and p["bo"].shape == (2,)
    assert all(np.all(np.abs(v) <= 0.2) for v in p.values())
    assert not np.array_equal(p["wg"], p["wi"])  # independent draws per block
    rng = np.random.default_rng(7)
    np.testing.assert_array_equal(p["wg"], rng.uniform(-0.2, 0.2, size=(2, 5)))
    q = lstm_ref.init_params(3, 2, seed=7, scale=0.2)
    assert all(np.array_equal(p[k], q[k]) for k in p)


def test_float32_stays_float32_and_is_accurate():
    params, xs, ys, h0, s0 = problem(3, 4, 3, "full")
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    L, grads, dh, ds = lstm_ref.loss_and_grads(
        p32,
        xs.astype(np.float32),
        ys.astype(np.float32),
        loss="full",
        h0=h0.astype(np.float32),
        s0=s0.astype(np.float32),
    )
    assert all(v.dtype == np.float32 for v in grads.values()) and dh.dtype == ds.dtype == np.float32
    _, g64, _, _ = lstm_ref.loss_and_grads(params, xs, ys, loss="full", h0=h0, s0=s0)
    assert max(rel_err(grads[k], g64[k]) for k in grads) < 1e-4


def test_complex_inputs_run_the_math_path():
    params, xs, ys, h0, s0 = problem(2, 3, 3, "full")
    pc = {k: v.astype(complex) for k, v in params.items()}
    L, grads, _, _ = lstm_ref.loss_and_grads(pc, xs, ys, loss="full", h0=h0, s0=s0)
    assert isinstance(L, complex) and grads["wg"].dtype == np.complex128


def test_sigmoid_does_not_overflow_in_float32():
    params = {k: v.astype(np.float32) * 1e4 for k, v in lstm_ref.init_params(2, 2, seed=0).items()}
    with np.errstate(all="raise"):
        tr = lstm_ref.forward(params, np.ones((2, 2), np.float32) * 100)
    assert np.all(np.isfinite(tr.h))


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda a: a.update(xs=np.zeros((0, 3))), r"xs: expected shape \(T, x_dim\)"),
        (lambda a: a.update(xs=np.zeros((4, 2))), r"xs: expected shape \(4, 3\)"),
        (lambda a: a.update(xs=np.zeros(3)), r"xs: expected shape"),
        (lambda a: a.update(ys=np.zeros((4, 2))), r"ys: expected shape \(4,\)"),
        (lambda a: a.update(loss="full"), r"ys: expected shape \(4, 2\)"),
        (lambda a: a.update(variant="peephole"), r"variant: expected one of"),
        (lambda a: a.update(loss="l1"), r"loss: expected one of"),
        (lambda a: a.update(h0=np.zeros(3)), r"h0: expected shape \(2,\)"),
        (lambda a: a.update(s0=np.array([0.0, np.nan])), r"s0: contains NaN"),
        (lambda a: a["xs"].__setitem__((1, 1), np.inf), r"xs: contains NaN or inf"),
        (lambda a: a["params"].pop("bf"), r"params: expected keys .* missing \['bf'\]"),
        (
            lambda a: a["params"].__setitem__("wi", np.zeros((2, 4))),
            r"params\['wi'\]: expected shape \(2, 5\)",
        ),
        (lambda a: a["params"]["bo"].__setitem__(0, np.nan), r"params\['bo'\]: contains NaN"),
    ],
)
def test_bad_input_names_the_argument(change, match):
    args = {
        "params": lstm_ref.init_params(3, 2),
        "xs": np.zeros((4, 3)),
        "ys": np.zeros(4),
        "variant": "simple",
        "loss": "seed",
        "h0": None,
        "s0": None,
    }
    change(args)
    with pytest.raises(ValueError, match=match):
        lstm_ref.loss_and_grads(args.pop("params"), args.pop("xs"), args.pop("ys"), **args)


def test_bad_taps_are_rejected():
    params = lstm_ref.init_params(3, 2)
    with pytest.raises(ValueError, match=r"taps\['h'\]: expected shape \(4, 2\)"):
        lstm_ref.forward(params, np.zeros((4, 3)), taps={"h": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"taps: expected a dict with keys among"):
        lstm_ref.forward(params, np.zeros((4, 3)), taps={"c": np.zeros((4, 2))})


# ------------------------------------------------------------------------------------- the write-up's demo


def run_demo(*argv):
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["demo", *argv])
    return code, out.getvalue().splitlines()


def test_demo_prints_the_canonical_trace():
    code, lines = run_demo()
    assert code == 0 and len(lines) == 100
    assert lines[0] == "iter  0: y_pred = [ 0.04135,  0.06930,  0.11699,  0.16562], loss: 7.535e-01"
    assert lines[1] == "iter  1: y_pred = [-0.22330, -0.32307, -0.39451, -0.43398], loss: 5.991e-01"
    assert lines[99] == "iter 99: y_pred = [-0.50033,  0.20106,  0.09912, -0.49923], loss: 2.611e-06"


def test_demo_independent_init_published_losses():
    code, lines = run_demo("--init", "independent")
    assert code == 0
    assert lines[0].endswith("loss: 7.372e-01") and lines[99].endswith("loss: 8.907e-07")


def test_demo_options():
    code, lines = run_demo("--iterations", "3", "--variant", "tanh")
    assert code == 0 and len(lines) == 3 and lines[2].startswith("iter  2: y_pred = [")
    assert main(["demo", "--iterations", "0"]) == 2
    assert main(["demo", "--init", "zeros"]) == 2
