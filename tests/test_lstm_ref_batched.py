"""lstm_ref.batched as a package: its public names, its small contracts, and the layout rules of lstm_ref/."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest

import lstm_ref
from gradcheck import ReferenceLSTM
from lstm_ref import batched
from lstm_ref.batched import kernels

LSTM_REF = Path(lstm_ref.__file__).resolve().parent


def _problem(x_dim=3, hidden=4, steps=3, seed=0, **kw):
    m = ReferenceLSTM(x_dim, hidden, steps, seed=seed, **kw)
    args = dict(variant=m.variant, loss=m.loss_kind, h0=m.h0, s0=m.s0)
    return m, m.parameters(), args


def _one_at_a_time(m, params, kind, name, flat_idx, deltas):
    """L by the plain model, one single-entry perturbation per call."""
    out = []
    for j, d in zip(flat_idx, deltas, strict=True):
        p = {k: v.astype(np.result_type(v, d)) for k, v in params.items()}
        taps = None
        if kind == "param":
            p[name].flat[j] += d
        else:
            taps = {"h": np.zeros((m.steps, m.hidden)), "s": np.zeros((m.steps, m.hidden))}
            taps[name].flat[j] = d
        out.append(m.loss(p, taps))
    return np.array(out)


def test_the_names_the_checker_imports_are_there():
    for name in ("entry_losses", "direction_losses", "direction_losses_many", "BaseCache", "DUAL_MAX_STEP"):
        assert hasattr(batched, name), name
    assert batched.BaseCache is batched.UnperturbedCache
    assert batched.DUAL_MAX_STEP == 1e-12


@pytest.mark.parametrize("step", [1e-4, 1e-20j, 1e-3j])
def test_direction_losses_is_the_one_request_case_of_many(step):
    m, params, args = _problem(seed=4)
    rng = np.random.default_rng(1)
    for kind, name, shape in [("param", "wi", params["wi"].shape), ("state", "s", (3, 4))]:
        V = rng.standard_normal((5, *shape))
        d = step * np.array([[1.0, -1.0, 2.0, 0.5, 3.0], [-1.0, 1.0, -2.0, -0.5, -3.0]])
        one = batched.direction_losses(
            params, m.xs, m.ys, kind=kind, name=name, directions=V, deltas=d, **args
        )
        (many,) = batched.direction_losses_many(params, m.xs, m.ys, requests=[(kind, name, V, d)], **args)
        assert one.shape == d.shape and np.array_equal(one, many)


def test_an_empty_request_returns_an_empty_result_of_its_deltas_shape():
    m, params, args = _problem()
    live = ("param", "bg", np.ones((2, 4)), np.array([1e-3, -1e-3]))
    empties = [
        ("param", "bo", np.ones((0, 4)), np.ones(0)),
        ("state", "h", np.ones((0, 3, 4)), np.ones((2, 0))),
        ("param", "wg", (np.ones((0, 4)), np.ones((0, 7))), np.ones((2, 0))),
    ]
    got = batched.direction_losses_many(params, m.xs, m.ys, requests=[*empties, live], **args)
    assert [g.shape for g in got] == [(0,), (2, 0), (2, 0), (2,)]
    (alone,) = batched.direction_losses_many(params, m.xs, m.ys, requests=[live], **args)
    assert np.array_equal(got[-1], alone)
    only_empty = batched.direction_losses_many(params, m.xs, m.ys, requests=empties, **args)
    assert [g.shape for g in only_empty] == [(0,), (2, 0), (2, 0)]


def test_the_cache_reuses_the_pass_only_for_frozen_params_of_the_same_dict():
    _, params, _ = _problem()
    built = []

    def build():
        built.append(1)
        return object()

    cache = batched.UnperturbedCache()
    first = cache.get(params, build)
    assert cache.get(params, build) is not first and len(built) == 2  # writable arrays: never reused
    for v in params.values():
        v.flags.writeable = False
    first = cache.get(params, build)
    assert cache.get(params, build) is first and len(built) == 3
    assert cache.get(dict(params), build) is not first and len(built) == 4  # another dict: rebuilt
    restored = pickle.loads(pickle.dumps(cache))
    assert restored.get(params, build) is not first and len(built) == 5  # pickles empty


def test_a_cached_pass_gives_the_same_losses_and_new_params_are_not_served_stale():
    m, params, args = _problem(seed=2)
    for v in params.values():
        v.flags.writeable = False
    cache = batched.BaseCache()
    idx, d = np.arange(8), np.full(8, 1e-3)
    plain = batched.entry_losses(params, m.xs, m.ys, kind="param", name="wf", flat_idx=idx, deltas=d, **args)
    for _ in range(2):
        cached = batched.entry_losses(
            params, m.xs, m.ys, kind="param", name="wf", flat_idx=idx, deltas=d, cache=cache, **args
        )
        assert np.array_equal(cached, plain)
    moved = {k: v.copy() for k, v in params.items()}
    moved["bf"] += 0.1
    for v in moved.values():
        v.flags.writeable = False
    got = batched.entry_losses(
        moved, m.xs, m.ys, kind="param", name="wf", flat_idx=idx, deltas=d, cache=cache, **args
    )
    want = _one_at_a_time(m, moved, "param", "wf", idx, d)
    assert np.allclose(got, want, rtol=1e-13, atol=0) and not np.allclose(got, plain, rtol=1e-6, atol=0)


@pytest.mark.parametrize("variant", ["simple", "tanh"])
def test_the_unaugmented_recurrence_for_large_hidden_equals_one_at_a_time(monkeypatch, variant):
    # W_h above AUG_MAX_BYTES (hidden > ~360 in float64) takes a GEMM and a separate add; force it at hidden 4
    monkeypatch.setattr(kernels, "AUG_MAX_BYTES", 0)
    m, params, args = _problem(steps=4, seed=7, variant=variant)
    for kind, name, size in [("param", "wo", params["wo"].size), ("param", "bi", 4), ("state", "h", 16)]:
        idx = np.arange(size)
        d = np.full(size, 1e-3)
        got = batched.entry_losses(params, m.xs, m.ys, kind=kind, name=name, flat_idx=idx, deltas=d, **args)
        want = _one_at_a_time(m, params, kind, name, idx, d)
        assert np.max(np.abs(got - want)) <= 64 * np.finfo(float).eps * max(1.0, np.abs(want).max()), name
    V = np.random.default_rng(0).standard_normal((3, *params["wg"].shape))
    (got,) = batched.direction_losses_many(
        params, m.xs, m.ys, requests=[("param", "wg", V, np.full(3, 1e-3))], **args
    )
    want = [m.loss({**params, "wg": params["wg"] + 1e-3 * v}) for v in V]
    assert np.max(np.abs(got - want)) <= 64 * np.finfo(float).eps * max(1.0, np.abs(want).max())


def _modules():
    return sorted(LSTM_REF.rglob("*.py"))


def test_the_shared_constants_are_defined_in_model_only():
    names = {"VARIANTS", "LOSSES", "BIASES", "GATES", "WEIGHTS", "PARAM_KEYS"}
    again = []
    for path in _modules():
        if path == LSTM_REF / "model.py":
            continue
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for t in targets:
                if isinstance(t, ast.Name) and t.id in names:
                    again.append(f"{path.relative_to(LSTM_REF)}:{node.lineno} {t.id}")
    assert not again, again
