"""The property suite: dL(t)/dh(t), dL(t)/ds(t) and every parameter gradient are right for every generated problem.

Each property runs for both variants and both losses. A failure prints the problem (configuration and seed) and
how to rebuild it (``note(problem.reproduce())``; with default magnitudes, a ``gradcheck run`` command).
The numerical side here is the complex step on the state taps and parameters (exact to rounding, independent
of the analytic backward pass), so the recursions are checked on derivatives nobody hand-wrote.
"""

import math

import numpy as np
import pytest
from hypothesis import given, note, target
from hypothesis import strategies as st

import lstm_ref
from gradcheck import check
from gradcheck.strategies import LSTMProblem, lstm_problems
from lstm_ref.model import PARAM_KEYS, WEIGHTS, step_loss_grads, step_losses

CASES = [(v, loss) for v in ("simple", "tanh") for loss in ("seed", "full")]
SIZES = dict(max_x_dim=4, max_hidden=5, max_steps=5)
H = 1e-30  # complex step


def problems(variant, loss, **kw):
    return lstm_problems(variants=[variant], losses=[loss], **(SIZES | kw))


def trace_of(p: LSTMProblem, params=None, xs=None):
    return lstm_ref.forward(
        p.params if params is None else params,
        p.xs if xs is None else xs,
        variant=p.config.variant,
        h0=p.h0,
        s0=p.s0,
    )


def bptt(p: LSTMProblem, dl_dh=None):
    tr = trace_of(p)
    if dl_dh is None:
        dl_dh = step_loss_grads(tr.h, p.ys, p.config.loss)
    return lstm_ref.backward(p.params, tr, dl_dh)


def numeric_state_grads(p: LSTMProblem) -> dict[str, np.ndarray]:
    """dL/dh(t), dL/ds(t) by complex step on the taps, one entry at a time."""
    T, hidden = p.config.steps, p.config.hidden
    out = {}
    for name in ("h", "s"):
        g = np.empty((T, hidden))
        for t in range(T):
            for j in range(hidden):
                tap = np.zeros((T, hidden), complex)
                tap[t, j] = 1j * H
                L = lstm_ref.total_loss(
                    p.params,
                    p.xs,
                    p.ys,
                    variant=p.config.variant,
                    loss=p.config.loss,
                    h0=p.h0,
                    s0=p.s0,
                    taps={name: tap},
                )
                g[t, j] = L.imag / H
        out[name] = g
    return out


def close(a, b, *, rel=1e-10):
    """Max-norm relative closeness (entries near zero measured against the array's scale)."""
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), 1e-300)
    return np.max(np.abs(a - b), initial=0.0) <= rel * scale


@pytest.mark.parametrize("variant,loss", CASES)
@given(data=st.data())
def test_check_passes_every_parameter_and_state_row(variant, loss, data):
    p = data.draw(problems(variant, loss), label="problem")
    note(p.reproduce())
    report = check(p.model(), diagnose=False, seed=p.seed)  # the verdict names the problem's seed
    T = p.config.steps
    assert len(report.rows) == len(PARAM_KEYS) + 2 * T  # one row per block, per (state, t)
    worst = max(r.max_rel_err for r in report.rows)
    target(math.log10(max(worst, 1e-300)), label="log10 worst relative error")
    assert report.passed, report.verdict()


@pytest.mark.parametrize("variant,loss", CASES)
@given(data=st.data())
def test_state_gradients_match_complex_step_taps_and_the_recursions(variant, loss, data):
    p = data.draw(problems(variant, loss), label="problem")
    note(p.reproduce())
    num = numeric_state_grads(p)
    bp = bptt(p)
    err = max(
        np.max(np.abs(bp.dh - num["h"])) / max(np.max(np.abs(num["h"])), 1e-300),
        np.max(np.abs(bp.ds - num["s"])) / max(np.max(np.abs(num["s"])), 1e-300),
    )
    target(math.log10(max(err, 1e-300)), label="log10 worst relative error of the state gradients")
    assert close(bp.dh, num["h"]) and close(bp.ds, num["s"])
    tr = trace_of(p)
    T = p.config.steps
    # dh(T-1) is the last step's loss gradient alone, written from the loss's formula
    last = np.zeros(p.config.hidden)
    if loss == "seed":
        last[0] = 2 * (tr.h[-1, 0] - p.ys[-1])
    else:
        last[:] = 2 * (tr.h[-1] - p.ys[-1])
    assert close(num["h"][T - 1], last)
    # ds(t) = o(t) * [tanh'(s(t))] * dh(t) + ds(t+1) * f(t+1), on the numerical derivatives
    dhds = tr.o if variant == "simple" else tr.o * (1 - np.tanh(tr.s) ** 2)
    for t in range(T):
        carry = num["s"][t + 1] * tr.f[t + 1] if t + 1 < T else 0.0
        assert close(num["s"][t], dhds[t] * num["h"][t] + carry, rel=1e-9), f"recursion broken at t={t}"


@pytest.mark.parametrize("variant,loss", CASES)
@given(data=st.data())
def test_truncation_matches_a_run_on_the_prefix(variant, loss, data):
    p = data.draw(problems(variant, loss, min_steps=2), label="problem")
    k = data.draw(st.integers(1, p.config.steps - 1), label="k")
    note(p.reproduce())
    tr = trace_of(p)
    dl = step_loss_grads(tr.h, p.ys, loss)
    dl[k:] = 0.0  # only l(0..k-1) of the T-step run
    full = lstm_ref.backward(p.params, tr, dl)
    L_k, prefix = lstm_ref.loss_and_bptt(
        p.params, p.xs[:k], p.ys[:k], variant=variant, loss=loss, h0=p.h0, s0=p.s0
    )
    assert math.isclose(step_losses(tr.h, p.ys, loss)[:k].sum(), L_k, rel_tol=1e-12)
    for key in PARAM_KEYS:
        assert close(full.param_grads[key], prefix.param_grads[key]), key
    assert close(full.dh[:k], prefix.dh) and close(full.ds[:k], prefix.ds)
    assert not np.any(full.dh[k:]) and not np.any(full.ds[k:])  # later states do not affect l(<k)


@pytest.mark.parametrize("variant,loss", CASES)
@given(data=st.data())
def test_gradient_of_the_sum_is_the_sum_of_per_step_gradients(variant, loss, data):
    p = data.draw(problems(variant, loss), label="problem")
    note(p.reproduce())
    tr = trace_of(p)
    dl = step_loss_grads(tr.h, p.ys, loss)
    whole = lstm_ref.backward(p.params, tr, dl)
    parts = []
    for t in range(p.config.steps):
        only_t = np.zeros_like(dl)
        only_t[t] = dl[t]
        parts.append(lstm_ref.backward(p.params, tr, only_t))
    for key in PARAM_KEYS:
        assert close(whole.param_grads[key], sum(b.param_grads[key] for b in parts)), key
    assert close(whole.dh, sum(b.dh for b in parts)) and close(whole.ds, sum(b.ds for b in parts))
    # and one per-step gradient against the complex step of l(t) alone, on a drawn entry of a drawn block
    t = data.draw(st.integers(0, p.config.steps - 1), label="t")
    key = data.draw(st.sampled_from(PARAM_KEYS), label="block")
    j = data.draw(st.integers(0, p.params[key].size - 1), label="entry")
    params = {k: v.astype(complex) for k, v in p.params.items()}
    params[key].flat[j] += 1j * H
    trc = trace_of(p, params=params)
    num = step_losses(trc.h, p.ys, loss)[t].imag / H
    ana = parts[t].param_grads[key].flat[j]
    assert abs(ana - num) <= 1e-10 * max(np.max(np.abs(parts[t].param_grads[key])), 1e-300)


@pytest.mark.parametrize("variant,loss", CASES)
@given(data=st.data())
def test_zero_error_gives_zero_gradients(variant, loss, data):
    p = data.draw(problems(variant, loss), label="problem")
    note(p.reproduce())
    h = trace_of(p).h
    ys = h[:, 0].copy() if loss == "seed" else h.copy()  # targets = the model's own outputs
    L, grads, dh, ds = lstm_ref.loss_and_grads(
        p.params, p.xs, ys, variant=variant, loss=loss, h0=p.h0, s0=p.s0
    )
    assert L == 0.0
    assert all(not np.any(g) for g in grads.values()) and not np.any(dh) and not np.any(ds)


@pytest.mark.parametrize("variant,loss", CASES)
@given(data=st.data())
def test_permuting_hidden_units_permutes_the_gradients(variant, loss, data):
    p = data.draw(problems(variant, loss), label="problem")
    hidden, x_dim = p.config.hidden, p.config.x_dim
    if loss == "seed":  # the seed loss reads unit 0: keep it in place
        perm = np.array([0] + list(data.draw(st.permutations(range(1, hidden)), label="perm")), dtype=int)
    else:
        perm = np.array(data.draw(st.permutations(range(hidden)), label="perm"), dtype=int)
    xperm = np.array(data.draw(st.permutations(range(x_dim)), label="input perm"), dtype=int)
    note(p.reproduce())
    cols = np.concatenate([xperm, x_dim + perm])  # x_c = [x, h(t-1)]: permute both parts

    def permute(block_key, arr):
        return arr[perm][:, cols] if block_key in WEIGHTS else arr[perm]

    q = {k: permute(k, v) for k, v in p.params.items()}
    ys = p.ys if loss == "seed" else p.ys[:, perm]
    L1, g1, dh1, ds1 = lstm_ref.loss_and_grads(
        p.params, p.xs, p.ys, variant=variant, loss=loss, h0=p.h0, s0=p.s0
    )
    L2, g2, dh2, ds2 = lstm_ref.loss_and_grads(
        q, p.xs[:, xperm], ys, variant=variant, loss=loss, h0=p.h0[perm], s0=p.s0[perm]
    )
    assert math.isclose(L1, L2, rel_tol=1e-12, abs_tol=1e-300)
    for key in PARAM_KEYS:
        assert close(permute(key, g1[key]), g2[key], rel=1e-12), key
    assert close(dh1[:, perm], dh2, rel=1e-12) and close(ds1[:, perm], ds2, rel=1e-12)
