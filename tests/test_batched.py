"""The batched (fast) path: equal to one-at-a-time losses to rounding, and the same verdicts as the serial path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcheck import ProtocolError, ReferenceLSTM, check
from gradcheck.batched import ChunkedEvaluator, auto_batch
from gradcheck.protocol import ModelError
from lstm_ref.batched import DUAL_MAX_STEP

from _planted import Planted, backward_without_ds_next, block_bug, entry_bug


def _one_at_a_time(model, kind, name, flat_idx, deltas):
    """L by the model's plain loss(), one perturbation per call: the reference the batch must match."""
    dt = np.result_type(*model.parameters().values(), np.asarray(deltas).dtype)
    out = []
    for j, d in zip(flat_idx, deltas):
        params = {k: v.astype(dt) for k, v in model.parameters().items()}
        taps = None
        if kind == "param":
            params[name].flat[j] += d
        else:
            taps = {s: np.zeros((model.steps, model.hidden), dt) for s in ("h", "s")}
            taps[name].flat[j] = d
        out.append(model.loss(params, taps))
    return np.array(out)



def directions_one_at_a_time(m, params, kind, name, V, deltas):
    """The plain model's loss at ``params[name] + d_k V_k`` (or with that tap), one call per direction."""
    want = []
    for v, d in zip(V, deltas):
        p = {k: a.astype(deltas.dtype) for k, a in params.items()}
        taps = None
        if kind == "param":
            p[name] = p[name] + d * v
        else:
            taps = {s: np.zeros(v.shape, deltas.dtype) for s in ("h", "s")}
            taps[name] = d * v
        want.append(m.loss(p, taps))
    return np.array(want)

def _close(a, b, scale):
    return np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0) <= 64 * np.finfo(float).eps * scale


def _close_losses(got, want, step) -> bool:
    """Batched losses against one-at-a-time ones, to 64 ulp of max(1, their size): for a complex step the real
    part (L: a tiny seed loss is a difference of O(1) terms) and the imaginary part / step (the derivative)."""
    if np.iscomplexobj(want):
        h = abs(step)
        return (_close(got.real, want.real, max(1.0, np.abs(want.real).max()))
                and _close(got.imag / h, want.imag / h, max(1.0, np.abs(want.imag / h).max())))
    return _close(got, want, max(1.0, np.abs(want).max()))


@given(x_dim=st.integers(1, 4), hidden=st.integers(1, 5), steps=st.integers(1, 4),
       variant=st.sampled_from(["simple", "tanh"]), loss=st.sampled_from(["full", "seed"]),
       seed=st.integers(0, 2**16), step=st.sampled_from([1e-5, -3e-3, 0.2]), nonzero_init=st.booleans())
def test_entry_losses_equal_one_at_a_time(x_dim, hidden, steps, variant, loss, seed, step, nonzero_init):
    # h0 = s0 = 0: recurrent-column and forget-gate copies do not move at step 0 and start at step 1 (a path of
    # their own); nonzero h0, s0: every copy moves at step 0
    m = ReferenceLSTM(x_dim, hidden, steps, variant=variant, loss=loss, seed=seed, nonzero_init=nonzero_init)
    params = m.parameters()
    scale = max(1.0, abs(m.loss(params)))
    for kind, names in (("param", list(params)), ("state", ["h", "s"])):
        for name in names:
            size = params[name].size if kind == "param" else steps * hidden
            idx = np.arange(size)
            deltas = step * (1 + np.arange(size) % 3)
            batch = m.loss_batch(params, kind, name, idx, deltas)
            assert _close(batch, _one_at_a_time(m, kind, name, idx, deltas), scale), (kind, name)


@pytest.mark.parametrize("variant", ["simple", "tanh"])
@pytest.mark.parametrize("step", [1e-20, 1e-3])      # dual-number path and general complex arithmetic
def test_complex_step_batch_equals_one_at_a_time(variant, step):
    assert (step <= DUAL_MAX_STEP) == (step == 1e-20)
    m = ReferenceLSTM(3, 4, 3, variant=variant, seed=3)
    params = m.parameters()
    for kind, names in (("param", list(params)), ("state", ["h", "s"])):
        for name in names:
            size = params[name].size if kind == "param" else 12
            idx = np.arange(size)
            deltas = np.full(size, 1j * step)
            batch = m.loss_batch(params, kind, name, idx, deltas)
            serial = _one_at_a_time(m, kind, name, idx, deltas)
            assert batch.dtype.kind == "c"
            assert _close(batch.real, serial.real, abs(serial.real).max())
            # the imaginary part carries the derivative: compare relative to its own size
            assert _close(batch.imag / step, serial.imag / step, np.abs(serial.imag / step).max())


def test_direction_losses_equal_one_at_a_time():
    m = ReferenceLSTM(3, 4, 3, seed=5)
    params = m.parameters()
    rng = np.random.default_rng(0)
    for kind, name, shape in [("param", "wf", params["wf"].shape), ("param", "bo", (4,)), ("state", "s", (3, 4)),
                              ("state", "h", (3, 4))]:
        V = rng.standard_normal((4, *shape))
        if kind == "state" and name == "h":
            V[:, [0, 2]] = 0.0                  # a tap direction that starts at step 1 (copies share step 0)
        for deltas in (np.array([1e-4, -1e-4, 2e-3, 0.0]), np.full(4, 1e-20j)):
            got = m.loss_directions_many(params, [(kind, name, V, deltas[None, :])])[0][0]
            want = directions_one_at_a_time(m, params, kind, name, V, deltas)
            if deltas.dtype.kind == "c":
                assert _close(got.imag / 1e-20, want.imag / 1e-20, np.abs(want.imag / 1e-20).max())
            else:
                assert _close(got, want, abs(want).max())


def test_batched_is_the_default_for_models_declaring_it_and_passes_the_reference():
    for variant in ("simple", "tanh"):
        for loss in ("full", "seed"):
            r = check(ReferenceLSTM(4, 6, 4, variant=variant, loss=loss, seed=11))
            assert r.settings["evaluation"]["batched"] is True
            assert r.passed, [x.label for x in r.failing]
    r = check(ReferenceLSTM(4, 6, 3, seed=2, dtype=np.float32))
    assert r.settings["evaluation"]["batched"] and r.passed


def _same_verdicts(model, **kw):
    fast = check(model, **kw)
    slow = check(model, batched=False, **kw)
    assert fast.settings["evaluation"]["batched"] and not slow.settings["evaluation"]["batched"]
    assert [(r.label, r.passed) for r in fast.rows] == [(r.label, r.passed) for r in slow.rows]
    for a, b in zip(fast.rows, slow.rows):
        if not b.passed:
            assert a.worst_index == b.worst_index, a.label
            assert a.numeric == pytest.approx(b.numeric, rel=1e-6, abs=1e-9)
    assert fast.first_bad_step == slow.first_bad_step
    return fast


@pytest.mark.parametrize("method", ["central", "complex", "richardson"])
def test_planted_single_entry_caught_like_serial(method):
    m = Planted(3, 5, 3, seed=4, plant=entry_bug("wi", (2, 6), 1e-3))
    r = _same_verdicts(m, method=method)
    assert [x.label for x in r.failing] == ["wi"]
    assert r.failing[0].worst_index == [2, 6]


def test_planted_scaled_block_caught_like_serial():
    r = _same_verdicts(Planted(3, 5, 3, seed=6, plant=block_bug("bf", 1 + 1e-5)))
    assert [x.label for x in r.failing] == ["bf"]


def test_dropped_recurrent_term_caught_like_serial():
    m = ReferenceLSTM(3, 5, 5, seed=8, backward=backward_without_ds_next)
    r = _same_verdicts(m)
    bad = {x.label for x in r.failing if x.kind == "state"}
    assert {"s[t=0]", "s[t=1]", "s[t=2]", "s[t=3]"} <= bad
    assert not bad & {"s[t=4]", "h[t=4]", "h[t=3]"}
    assert r.first_bad_step == {"name": "s", "t": 3}


def test_chunk_size_does_not_change_the_verdict():
    m = Planted(3, 5, 3, seed=4, plant=entry_bug("wo", (1, 1), 1e-3))
    a, b = check(m, batch=7), check(m, batch=1000)
    assert a.settings["evaluation"]["batch"] == 7
    assert [(r.label, r.passed, r.worst_index) for r in a.rows] == [(r.label, r.passed, r.worst_index) for r in b.rows]


def test_auto_batch_bounds_memory():
    small = auto_batch({"h": (4, 100), "s": (4, 100)})
    big = auto_batch({"h": (4, 1024), "s": (4, 1024)})
    assert big < small and 32 <= big
    assert big * 16 * 2048 * 8 <= 64 * 2**20


class _BrokenBatch(ReferenceLSTM):
    def __init__(self, how):
        super().__init__(2, 3, 2)
        self.how = how

    def loss_batch(self, params, kind, name, flat_idx, deltas):
        if self.how == "raise":
            raise FloatingPointError("batch blew up")
        if self.how == "shape":
            return np.zeros(len(flat_idx) + 1)
        return np.zeros(len(flat_idx))     # real losses for complex deltas


def test_batched_model_errors_are_named():
    with pytest.raises(ModelError, match="batch blew up"):
        check(_BrokenBatch("raise"))
    with pytest.raises(ProtocolError, match="shape"):
        check(_BrokenBatch("shape"))
    with pytest.raises(ProtocolError, match="complex"):
        check(_BrokenBatch("real"), method="complex")


class _NoBatch:
    capabilities = {"batched"}

    def parameters(self):
        return {"w": np.ones(2)}

    def loss(self, params, taps=None):
        return float(np.sum(params["w"] ** 2))

    def gradients(self, params):
        return {"w": 2 * params["w"]}, {}


def test_declared_batched_without_loss_batch_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="loss_batch"):
        check(_NoBatch())
    assert check(_NoBatch(), batched=False).passed


def test_forcing_batched_on_a_plain_model_is_a_usage_error():
    class Plain(_NoBatch):
        capabilities = ()
    with pytest.raises(ProtocolError, match="batched"):
        check(Plain(), batched=True)


def test_chunked_evaluator_without_loss_batch_matches_serial_loop():
    m = ReferenceLSTM(3, 4, 2, seed=1)
    shapes = {"h": (2, 4), "s": (2, 4)}
    ev = ChunkedEvaluator(m, m.parameters(), shapes, batched=False, batch=5)
    idx = np.arange(m.parameters()["wg"].size)
    d = np.full(idx.size, 1e-3)
    assert _close(ev.param_losses("wg", idx, d), _one_at_a_time(m, "param", "wg", idx, d), 10.0)


@given(x_dim=st.integers(1, 4), hidden=st.integers(1, 5), steps=st.integers(1, 4),
       variant=st.sampled_from(["simple", "tanh"]), loss=st.sampled_from(["full", "seed"]),
       seed=st.integers(0, 2**16), step=st.sampled_from([1e-5, -3e-3, 0.2, 1e-20j, 1e-3j]))
def test_direction_losses_equal_one_at_a_time_any_first_step(x_dim, hidden, steps, variant, loss, seed, step):
    """Every block and both taps; tap copies touch different first steps (in any order, some none at all)."""
    m = ReferenceLSTM(x_dim, hidden, steps, variant=variant, loss=loss, seed=seed)
    params = m.parameters()
    rng = np.random.default_rng(seed)
    deltas = step * np.array([1.0, -1.0, 0.5, -2.0, 1.0, 3.0])
    blocks = [("param", k, params[k].shape) for k in params] + [("state", s, (steps, hidden)) for s in "hs"]
    for kind, name, shape in blocks:
        V = rng.choice([-1.0, 1.0, 0.7], size=(deltas.size, *shape))
        if kind == "state":
            for k in range(deltas.size):         # copy k starts at a random step (== steps: untouched)
                V[k, :rng.integers(0, steps + 1)] = 0.0
        got = m.loss_directions_many(params, [(kind, name, V, deltas[None, :])])[0][0]
        want = directions_one_at_a_time(m, params, kind, name, V, deltas)
        assert _close_losses(got, want, step), (kind, name)


@given(x_dim=st.integers(1, 4), hidden=st.integers(1, 5), steps=st.integers(1, 4),
       variant=st.sampled_from(["simple", "tanh"]), loss=st.sampled_from(["full", "seed"]),
       seed=st.integers(0, 2**16), step=st.sampled_from([1e-5, -3e-3, 0.2, 1e-20j, 1e-3j]),
       stencil=st.booleans(), nonzero_init=st.booleans())
def test_direction_losses_many_equal_one_at_a_time(x_dim, hidden, steps, variant, loss, seed, step, stencil,
                                                   nonzero_init):
    """Every block and both taps in ONE call (the screen's), in a shuffled order, with (K,) or (S, K) deltas:
    each request's losses equal one loss() call per copy."""
    m = ReferenceLSTM(x_dim, hidden, steps, variant=variant, loss=loss, seed=seed, nonzero_init=nonzero_init)
    params = m.parameters()
    rng = np.random.default_rng(seed)
    K = 3
    deltas = step * (np.array([[1.0, 0.5, -2.0], [-1.0, -0.5, 2.0]]) if stencil else np.array([1.0, -0.5, 3.0]))
    blocks = [("param", k, params[k].shape) for k in params] + [("state", s, (steps, hidden)) for s in "hs"]
    requests = []
    for n in rng.permutation(len(blocks)):
        kind, name, shape = blocks[n]
        V = rng.choice([-1.0, 1.0, 0.7], size=(K, *shape))
        if kind == "state":
            for k in range(K):                   # copy k starts at a random step (== steps: untouched)
                V[k, :rng.integers(0, steps + 1)] = 0.0
        if len(shape) == 2 and kind == "param" and rng.random() < 0.5:     # rank-1 factors of a weight block
            V = (rng.choice([-1.0, 1.0, 0.7], size=(K, shape[0])), rng.choice([-1.0, 1.0, 0.3], size=(K, shape[1])))
        requests.append((kind, name, V, deltas))
    got = m.loss_directions_many(params, requests)
    assert len(got) == len(requests)
    for (kind, name, V, d), g in zip(requests, got):
        assert g.shape == d.shape, (kind, name)
        V = np.einsum("ki,kj->kij", *V) if isinstance(V, tuple) else V
        flat_d = d.reshape(-1)
        want = directions_one_at_a_time(m, params, kind, name, np.concatenate([V] * (d.size // K)), flat_d)
        assert _close_losses(g.reshape(-1), want, step), (kind, name)


def test_direction_losses_many_rejects_bad_requests_by_name():
    m = ReferenceLSTM(2, 3, 2)
    params = m.parameters()
    V = np.ones((2, *params["wg"].shape))
    with pytest.raises(ValueError, match="directions, deltas"):
        m.loss_directions_many(params, [("param", "wg", V, np.ones(3))])
    with pytest.raises(ValueError, match="not a parameter block"):
        m.loss_directions_many(params, [("param", "nope", V, np.ones(2))])
    assert m.loss_directions_many(params, []) == []
    A, B = np.ones((2, 3)), np.ones((2, 5))
    with pytest.raises(ValueError, match="rank-1 factors"):
        m.loss_directions_many(params, [("param", "wg", (A, B[:, :4]), np.ones(2))])
    with pytest.raises(ValueError, match="rank-1 factors"):
        m.loss_directions_many(params, [("param", "wg", (A, B * np.nan), np.ones(2))])
