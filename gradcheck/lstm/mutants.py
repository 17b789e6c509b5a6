"""A catalog of realistic BPTT bugs: mutants of :func:`lstm_ref.backward`, each with the rows it must fail.

Every mutant is a replacement backward with the reference's signature ``backward(params, trace, dl_dh) -> BPTT``
(plug it into :class:`gradcheck.reference.ReferenceLSTM` with ``backward=``). Each one changes one line of the
reference's BPTT (see :func:`_mutated_backward`), the way people actually get BPTT wrong.

For each mutant, :meth:`Mutant.expected` says which rows a correct checker must fail and which it must pass, for a
run of T steps. The expectations are derived from the equations (``../shared/reference/simple-lstm.md``), not from
what the checker printed. The backward pass goes from t = T-1 down to 0; at step t it computes, in this order,

    dh(t) = dl(t)/dh(t) + dh_next             dh_next = dL(t+1)/dh(t), from step t+1's gate gradients
    ds(t) = o(t)*dh(t) + ds_next              ds_next = dL(t+1)/ds(t) = ds(t+1)*f(t+1)
    gate gradients at t  ->  dW_*, db_* (+= over t), and dh_next, ds_next for step t-1.

So a bug in the *gate gradients* at step t first corrupts dh(t-1) (and through it ds(t-1)); a bug in *ds_next*
first corrupts ds(t-1) and then, one step later, dh(t-2); a bug in how dh(t) or ds(t) itself is formed shows at t.
A bug confined to one parameter block's accumulation (never fed back into dh_next / ds_next) fails that block
only and no state row. The state rows are named ``("h", t)`` / ``("s", t)``; ``first_bad_step`` is the latest
failing state row (h before s at equal t), which is where the checker says the error enters.

All expectations assume generic random problems (nonzero h0, s0 and independent draws per block, as
:class:`ReferenceLSTM` makes them) and ``T >= 3`` (``MIN_STEPS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from lstm_ref.model import BIASES, BPTT, GATES, PARAM_KEYS, WEIGHTS, Trace

from ..errors import ProtocolError
from . import MIN_STEPS

TINY_SCALE = 1e-3  # the "tiny scale error in one block": 0.1% (caught by float64 central and float32 complex)


def _mutated_backward(params, trace: Trace, dl_dh, *, bug: str | None = None) -> BPTT:
    """The reference BPTT (:func:`lstm_ref.backward`, written out again) with one bug switched in by name."""
    if bug is not None and bug not in BY_NAME:
        raise ProtocolError(f"bug: unknown mutant {bug!r}; the catalog has {sorted(BY_NAME)}")
    tr = trace
    T, hidden = tr.h.shape
    x_dim = tr.x_c.shape[1] - hidden
    dt = tr.h.dtype
    p = {k: np.asarray(v, dtype=dt) for k, v in params.items()}
    wg, wi, wf, wo = (p[k] for k in WEIGHTS)
    grads = {k: np.zeros_like(p[k]) for k in PARAM_KEYS}
    dh_all = np.empty((T, hidden), dt)
    ds_all = np.empty((T, hidden), dt)
    dpre = {k: np.empty((T, hidden), dt) for k in GATES}
    dh_next = np.zeros(hidden, dt)
    ds_next = np.zeros(hidden, dt)
    for t in reversed(range(T)):
        x_c, g, i, f, o, s = tr.x_c[t], tr.g[t], tr.i[t], tr.f[t], tr.o[t], tr.s[t]
        s_prev = tr.s[t - 1] if t > 0 else tr.s0
        if bug == "initial_state_ignored" and t == 0:
            s_prev = np.zeros(hidden, dt)  # s(-1) taken as 0
            x_c = np.concatenate([x_c[:x_dim], np.zeros(hidden, dt)])  # h(-1) taken as 0 in dW
        dl = dl_dh[t] / 2 if bug == "loss_grad_missing_factor_2" else dl_dh[t]  # d(h-y)^2/dh written as (h-y)
        dh = dl if bug == "drop_dh_next" else dl + dh_next
        if tr.variant == "simple":
            ds = o * dh if bug == "drop_ds_next" else o * dh + ds_next
            do = s * dh
        else:
            tanh_s = np.tanh(s)
            if bug == "tanh_variant_missing_tanh_prime":
                ds = o * dh + ds_next  # tanh'(s) factor forgotten
            elif bug == "drop_ds_next":
                ds = o * (1.0 - tanh_s**2) * dh
            else:
                ds = o * (1.0 - tanh_s**2) * dh + ds_next
            do = tanh_s * dh
        dg = i * ds
        di = g * ds
        df = (s if bug == "forget_uses_s_t" else s_prev) * ds
        if bug == "tanh_prime_one_minus_g":
            dg_in = (1.0 - g) * dg  # tanh' written as 1 - g
        else:
            dg_in = (1.0 - g**2) * dg
        if bug == "sigmoid_prime_on_preactivation":  # z(1-z) with z = W x_c + b
            zi, zf, zo = (p[w] @ x_c + p[b] for w, b in (("wi", "bi"), ("wf", "bf"), ("wo", "bo")))
            di_in, df_in, do_in = zi * (1.0 - zi) * di, zf * (1.0 - zf) * df, zo * (1.0 - zo) * do
        else:
            di_in = i * (1.0 - i) * di
            df_in = f * (1.0 - f) * df
            do_in = o * (1.0 - o) * do
        blocks = [("wg", "bg", dg_in), ("wi", "bi", di_in), ("wf", "bf", df_in), ("wo", "bo", do_in)]
        if bug == "gates_swapped":  # i and f gradients exchanged
            blocks = [("wg", "bg", dg_in), ("wi", "bi", df_in), ("wf", "bf", di_in), ("wo", "bo", do_in)]
        x_c_w = np.concatenate([x_c[x_dim:], x_c[:x_dim]]) if bug == "xc_columns_swapped" else x_c
        for w, b, d_in in blocks:
            grads[w] += np.outer(d_in, x_c_w)
            if bug != "bias_last_step_only" or t == T - 1:
                grads[b] += d_in
        dx_c = wg.T @ dg_in + wi.T @ di_in + wf.T @ df_in + wo.T @ do_in
        dh_next = dx_c[:hidden] if bug == "dh_next_wrong_slice" else dx_c[x_dim:]
        if bug == "forget_off_by_one":
            ds_next = ds * tr.f[t - 1]  # f(t-1) instead of f(t)
        else:
            ds_next = ds * f
        dh_all[t], ds_all[t] = dh, ds
        for k, d_in in zip(GATES, (dg_in, di_in, df_in, do_in)):
            dpre[k][t] = d_in
    if bug == "tiny_scale_one_block":
        grads["wo"] = grads["wo"] * (1.0 + TINY_SCALE)
    return BPTT(param_grads=grads, dh=dh_all, ds=ds_all, dpre=dpre, dh0=dh_next, ds0=ds_next)


def _states(T: int, *, h_upto: int, s_upto: int) -> frozenset[tuple[str, int]]:
    """State rows h(t) for t <= h_upto and s(t) for t <= s_upto (an upper bound of -1 means none)."""
    return frozenset(
        [("h", t) for t in range(min(h_upto, T - 1) + 1)] + [("s", t) for t in range(min(s_upto, T - 1) + 1)]
    )


@dataclass(frozen=True)
class Expectation:
    """What a correct checker must report for a mutant run over T steps.

    ``params`` / ``states``: every parameter block / (state, t) row the bug changes; all other rows must pass.
    ``core_params`` / ``core_states``: the rows the bug writes *directly*. The other changed rows receive the
    error only through a recurrent weight matrix (dh_next = W^T dpre, entries ~0.1 here) or after further steps
    back in time, each shrinking it by a factor that depends on the problem (W^T dpre, f, s(t) - s(t-1)): a
    float64 check must still fail them at the self-test's configuration (strict); a float32 check, whose
    resolution is ~1e-7 of a row instead of ~1e-16, may miss them, and so may float64 on other problems (e.g.
    hidden 1, where a single small recurrent weight carries everything).
    ``first_bad_step``: ``{"name", "t"}`` or None: the latest changed state row. Not strict, it is only required
    when it is a core row (otherwise any failing state row is an earlier changed row, never a later one).
    """

    params: frozenset[str]
    states: frozenset[tuple[str, int]]
    first_bad_step: dict | None
    core_params: frozenset[str] | None = None
    core_states: frozenset[tuple[str, int]] | None = None

    def must_fail(self, *, strict: bool) -> tuple[frozenset[str], frozenset[tuple[str, int]]]:
        if strict:
            return self.params, self.states
        return (
            self.params if self.core_params is None else self.core_params,
            self.states if self.core_states is None else self.core_states,
        )


@dataclass(frozen=True)
class Mutant:
    """One realistic BPTT bug. ``variant``: the reference variant it needs (the bug sits on that code path).

    ``why``: the derivation of the expected rows, from the backward equations (see the module docstring).
    """

    name: str
    description: str
    why: str
    expect: Callable[[int], Expectation] = field(repr=False)
    variant: str = "simple"

    @property
    def backward(self):
        """The replacement for :func:`lstm_ref.backward` (same signature)."""
        return partial(_mutated_backward, bug=self.name)

    def expected(self, steps: int) -> Expectation:
        if steps < MIN_STEPS:
            raise ProtocolError(f"steps: the catalog's expectations need T >= {MIN_STEPS}, got {steps}")
        return self.expect(steps)


ALL = frozenset(PARAM_KEYS)
GATE_GIF = frozenset({"wg", "bg", "wi", "bi", "wf", "bf"})  # the blocks fed by ds directly


def _fb(name: str, t: int) -> dict:
    return {"name": name, "t": t}


CATALOG: tuple[Mutant, ...] = (
    Mutant(
        "drop_ds_next",
        "the famous wrong 'fix': dL(t)/ds(t) = o*dh, the carried dL(t+1)/ds(t) = ds(t+1)*f(t+1) dropped",
        "ds(T-1) has nothing to carry, so s(T-1) and h(T-1) pass; s(T-2) misses ds(T-1)*f(T-1); h(T-2) comes from "
        "step T-1's gates (right) and passes; h(T-3) comes from step T-2's gates, fed by the wrong s(T-2): fails. "
        "Every block sums the wrong gate gradients of t <= T-2.",
        lambda T: Expectation(
            ALL,
            _states(T, h_upto=T - 3, s_upto=T - 2),
            _fb("s", T - 2),
            GATE_GIF,
            _states(T, h_upto=-1, s_upto=T - 2),
        ),
    ),
    Mutant(
        "drop_dh_next",
        "dL(t)/dh(t) = dl(t)/dh(t): the recurrent dL(t+1)/dh(t) (through h(t) in x_c(t+1)) dropped",
        "h(T-1) has no later step and passes, so does s(T-1); h(T-2) misses step T-1's W^T dpre, and s(T-2) reads it; "
        "every gate's dpre(T-2) is off by the same relative amount as h(T-2), so every block is core.",
        lambda T: Expectation(
            ALL, _states(T, h_upto=T - 2, s_upto=T - 2), _fb("h", T - 2), ALL, frozenset({("h", T - 2)})
        ),
    ),
    Mutant(
        "forget_uses_s_t",
        "the forget gate's gradient uses s(t) instead of s(t-1): df = s(t)*ds",
        "dh(t), ds(t) are formed before df(t), so step T-1 passes; step T-1's wrong df feeds dh_next: h(T-2) and "
        "s(T-2) fail, and all earlier steps. wf, bf directly; the others through the wrong states.",
        lambda T: Expectation(
            ALL, _states(T, h_upto=T - 2, s_upto=T - 2), _fb("h", T - 2), frozenset({"wf", "bf"}), frozenset()
        ),
    ),
    Mutant(
        "tanh_prime_one_minus_g",
        "tanh' written as 1 - g instead of 1 - g^2 (g = tanh of the cell input's pre-activation)",
        "the cell input's pre-activation gradient is wrong from step T-1 on: wg, bg directly, and dh_next from "
        "step T-1, so h, s at t <= T-2 and through them every block.",
        lambda T: Expectation(
            ALL, _states(T, h_upto=T - 2, s_upto=T - 2), _fb("h", T - 2), frozenset({"wg", "bg"}), frozenset()
        ),
    ),
    Mutant(
        "sigmoid_prime_on_preactivation",
        "sigmoid' applied to the pre-activation: z(1-z) with z = W x_c + b, instead of sigma(z)(1 - sigma(z))",
        "the i, f, o pre-activation gradients are wrong from step T-1 on: every block, and dh_next from step T-1, "
        "so h, s at t <= T-2.",
        lambda T: Expectation(
            ALL, _states(T, h_upto=T - 2, s_upto=T - 2), _fb("h", T - 2), ALL - {"wg", "bg"}, frozenset()
        ),
    ),
    Mutant(
        "bias_last_step_only",
        "the bias gradients are accumulated only at the last step (db = dpre(T-1), not the sum over t)",
        "no state reads the bias gradients and the weights are summed right: only the four bias blocks fail.",
        lambda T: Expectation(frozenset(BIASES), frozenset(), None),
    ),
    Mutant(
        "xc_columns_swapped",
        "the x and h columns of x_c swapped in dW: dW += dpre [h(t-1), x(t)]^T instead of dpre [x(t), h(t-1)]^T",
        "only the outer product into the weights is wrong; dh_next uses W^T dpre (right): the four weight blocks "
        "fail, the biases and every state row pass.",
        lambda T: Expectation(frozenset(WEIGHTS), frozenset(), None),
    ),
    Mutant(
        "gates_swapped",
        "the input and forget gates' gradients swapped when accumulated (dW_i gets dpre_f and dW_f gets dpre_i)",
        "dh_next still uses the right pairs, so every state row passes; wi, bi, wf, bf fail, wg, bg, wo, bo pass. "
        "(With the write-up's re-seeded init all gates share weights, but dpre_i != dpre_f, so it still shows.)",
        lambda T: Expectation(frozenset({"wi", "bi", "wf", "bf"}), frozenset(), None),
    ),
    Mutant(
        "forget_off_by_one",
        "off by one in time: dL(t)/ds(t-1) = ds(t)*f(t-1) instead of ds(t)*f(t)",
        "like the dropped carry: s(T-1), h(T-1) and h(T-2) pass; s(T-2) gets ds(T-1)*f(T-2): fails; h(T-3) is fed "
        "by it: fails; every block (g, i, f directly through ds(T-2), o only through h(T-3)).",
        lambda T: Expectation(
            ALL, _states(T, h_upto=T - 3, s_upto=T - 2), _fb("s", T - 2), GATE_GIF, frozenset({("s", T - 2)})
        ),
    ),
    Mutant(
        "loss_grad_missing_factor_2",
        "a missing factor 2 in the loss gradient: d(h-y)^2/dh written as (h - y)",
        "every gradient is halved: every row fails, starting at the last step (h at T-1).",
        lambda T: Expectation(ALL, _states(T, h_upto=T - 1, s_upto=T - 1), _fb("h", T - 1)),
    ),
    Mutant(
        "tanh_variant_missing_tanh_prime",
        "the tanh variant (h = tanh(s)*o) missing its tanh'(s) factor: ds = o*dh + ds_next",
        "h(T-1) is the loss gradient alone and passes; s(T-1) lacks 1 - tanh(s)^2 and fails, and everything that "
        "reads it: h, s at t <= T-2, every block (g, i, f directly through ds(T-1)).",
        lambda T: Expectation(
            ALL, _states(T, h_upto=T - 2, s_upto=T - 1), _fb("s", T - 1), GATE_GIF, frozenset({("s", T - 1)})
        ),
        variant="tanh",
    ),
    Mutant(
        "initial_state_ignored",
        "h0/s0 ignored in the first step: s(-1) = 0 in df(0) and h(-1) = 0 in dW at t = 0",
        "no state row reads step 0's parameter terms: every state passes. dW_* at t=0 lose dpre(0) h0^T (all four "
        "weights fail); df(0) = s(-1)*ds(0) is lost, so bf fails; bg, bi, bo pass. Needs nonzero h0 and s0.",
        lambda T: Expectation(frozenset({"wg", "wi", "wf", "wo", "bf"}), frozenset(), None),
    ),
    Mutant(
        "tiny_scale_one_block",
        f"a tiny scale error in one block: dW_o multiplied by 1 + {TINY_SCALE:g}",
        "only wo's accumulated gradient is scaled, after the states are done: wo fails, nothing else.",
        lambda T: Expectation(frozenset({"wo"}), frozenset(), None),
    ),
    Mutant(
        "dh_next_wrong_slice",
        "dL(t)/dh(t-1) sliced from the wrong end of dL/dx_c: dx_c[:hidden] instead of dx_c[x_dim:]",
        "like the dropped dh_next: step T-1 passes, h(T-2) and s(T-2) fail and everything before, every block. "
        "(x_dim >= 1, so the two slices differ.)",
        lambda T: Expectation(
            ALL, _states(T, h_upto=T - 2, s_upto=T - 2), _fb("h", T - 2), ALL, frozenset({("h", T - 2)})
        ),
    ),
)

BY_NAME = {m.name: m for m in CATALOG}


def outcome(report, expectation: Expectation, *, strict: bool = True) -> tuple[bool, list[str]]:
    """Compare a check's report with a mutant's expectation: ``(matches, problems)``.

    ``strict`` (float64): every row the bug changes must fail. Not strict (float32): the core rows must fail and
    the attenuated ones may (see :class:`Expectation`). Either way every row the bug leaves alone must pass and the
    first divergence must be the expected one. ``problems`` lists each mismatch in words; empty means the checker
    named exactly the expected blocks and time steps.
    """
    must_params, must_states = expectation.must_fail(strict=strict)
    problems = []
    for r in report.rows:
        key = r.name if r.kind == "param" else (r.name, r.t)
        changed = key in (expectation.params if r.kind == "param" else expectation.states)
        must = key in (must_params if r.kind == "param" else must_states)
        if must and r.passed:
            problems.append(f"{r.label} passed but must fail")
        elif not changed and not r.passed:
            problems.append(f"{r.label} failed but must pass")
    fb = expectation.first_bad_step
    core = expectation.core_states
    fb_required = strict or core is None or (fb is not None and (fb["name"], fb["t"]) in core)
    if fb_required and report.first_bad_step != fb:
        problems.append(f"first divergence {report.first_bad_step} but expected {expectation.first_bad_step}")
    return not problems, problems
