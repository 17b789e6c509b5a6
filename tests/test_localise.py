"""Localising wrong entries by adaptive group testing (gradcheck.fast.localise): what it finds, what it never
reports, dense errors, determinism across evaluators, costs it reports, bad input."""

from __future__ import annotations

import concurrent.futures as cf

import numpy as np
import pytest
from _planted import Counting, backward_without_ds_next
from hypothesis import given
from hypothesis import strategies as st

from gradcheck import ProtocolError, ReferenceLSTM
from gradcheck import finite_diff as fd
from gradcheck.fast import localise as lz
from gradcheck.fast.chunked import ChunkedEvaluator
from gradcheck.tolerance import default_rtol

RTOL = {m: default_rtol(np.float64, m) for m in fd.METHODS}


def evaluator(model, method="complex", **kw):
    params = model.parameters()
    _, sg = model.gradients(params)
    shapes = {k: v.shape for k, v in sg.items()}
    if kw:
        return ChunkedEvaluator(model, params, shapes, complex_=method == "complex", **kw)
    return fd.SerialEvaluator(model, params, shapes, complex_=method == "complex")


def row(model, ev, kind, name, t=None, method="complex"):
    """(correct analytic row, directional, entries) of one row of the model."""
    params = model.parameters()
    pg, sg = model.gradients(params)
    step = fd.default_step(method, np.float64)
    if kind == "param":
        g = np.array(pg[name])
        d, e = lz.probes(ev, "param", name, method=method, step=step, dtype=np.float64, x=params[name])
    else:
        g = np.array(sg[name][t])
        d, e = lz.probes(
            ev, "state", name, method=method, step=step, dtype=np.float64, shape=sg[name].shape, t=t
        )
    return g, d, e


def run(g, d, e, *, method="complex", seed=0, **kw):
    return lz.localise(g, d, e, rtol=RTOL[method], rng=lz.rng_for(seed, 1), cost=fd.EVALUATIONS[method], **kw)


def exact(g):
    """Callables of an exact row: numeric = the true gradient ``g`` (flat), no round-off."""

    def directional(V):
        return np.sum(V * g, axis=1), np.zeros(len(V))

    def entries(idx):
        return g[idx], np.zeros(len(idx))

    return directional, entries


def flat_found(res, shape):
    return {int(np.ravel_multi_index(w.index, shape)) for w in res.wrong_entries}


# ---- a correct gradient: no wrong entry, ever


@given(
    x_dim=st.integers(2, 9),
    hidden=st.integers(3, 12),
    steps=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    variant=st.sampled_from(["simple", "tanh"]),
    name=st.sampled_from(["wg", "wi", "wf", "wo", "bi", "h", "s"]),
    method=st.sampled_from(["complex", "central"]),
)
def test_a_correct_row_has_no_wrong_entry(x_dim, hidden, steps, seed, variant, name, method):
    m = ReferenceLSTM(x_dim, hidden, steps, variant=variant, seed=seed)
    kind = "state" if name in ("h", "s") else "param"
    g, d, e = row(
        m, evaluator(m, method), kind, name, t=steps - 1 if kind == "state" else None, method=method
    )
    res = run(g, d, e, method=method, seed=seed)
    assert res.outcome == "passed" and res.count == 0 and res.dense is None, res


@pytest.mark.parametrize("method", ["complex", "central"])
def test_a_correct_row_whose_screen_direction_failed_reports_nothing(method):
    """A screen flake: the row is right, but the screen's worst direction says otherwise. Bisection follows it
    to the leaves, the entries pass their own check, fresh directions pass: no entry, outcome passed."""
    m = ReferenceLSTM(6, 10, 3, seed=4)
    g, d, e = row(m, evaluator(m, method), "param", "wo", method=method)
    V = np.random.default_rng(0).integers(0, 2, size=(16, g.size)) * 2.0 - 1.0
    numeric, noise = d(V)
    numeric[3] += 1e3 * RTOL[method] * np.max(np.abs(numeric))
    res = run(g, d, e, method=method, screen=(V, numeric, noise))
    assert res.outcome == "passed" and res.count == 0
    assert res.rounds == 2  # the flake's round, then one on fresh directions


# ---- planted wrong entries: found exactly


def test_one_wrong_entry_is_found_with_its_own_values():
    m = ReferenceLSTM(8, 12, 3, seed=2)
    g, d, e = row(m, evaluator(m), "param", "wi")
    ga = g.copy()
    ga[5, 7] += 1e-3 * np.max(np.abs(g))
    res = run(ga, d, e)
    assert res.outcome == "entries" and res.verified
    (w,) = res.wrong_entries
    assert w.index == (5, 7) and res.more == 0
    assert w.analytic == ga[5, 7]
    assert w.numeric == pytest.approx(g[5, 7], rel=1e-9)  # the entry's own difference: the true gradient
    assert w.abs_err == pytest.approx(1e-3 * np.max(np.abs(g)), rel=1e-6)
    assert w.to_json() == {
        "index": [5, 7],
        "analytic": w.analytic,
        "numeric": w.numeric,
        "abs_err": w.abs_err,
    }


@pytest.mark.parametrize("method", ["complex", "central"])
def test_five_wrong_entries_with_a_cancelling_pair_are_all_found(method):
    """Entries (2, 3) and (2, 4) are equal and opposite and adjacent: they share every subset down to the
    leaves, where half of all sign draws cancel them."""
    m = ReferenceLSTM(10, 12, 3, seed=5)
    g, d, e = row(m, evaluator(m, method), "param", "wf", method=method)
    ga = g.copy()
    big = 1e-3 * np.max(np.abs(g))
    planted = {(2, 3): big, (2, 4): -big, (0, 0): 2 * big, (7, 19): -big, (11, 21): 3 * big}
    for ix, err in planted.items():
        ga[ix] += err
    for seed in range(4):
        res = run(ga, d, e, method=method, seed=seed)
        assert res.outcome == "entries" and res.verified
        assert {w.index for w in res.wrong_entries} == set(planted)
        worst_first = [w.abs_err for w in res.wrong_entries]
        assert worst_first == sorted(worst_first, reverse=True)
        assert res.wrong_entries[0].index == (11, 21)


def test_a_pair_hidden_by_the_root_direction_is_found_by_verification_and_by_the_guard():
    """Root direction with equal signs on an equal-and-opposite pair: the pair contributes nothing along it,
    so the first round finds only the lone entry. Without the guard the verification's fresh directions catch
    the pair in a later round; with it, a fresh re-test of the pair's subset can catch it in the first
    round."""
    n = 4096
    g = np.random.default_rng(3).normal(size=n)
    ga = g.copy()
    ga[[1000, 1001, 3000]] += [1e-3, -1e-3, 2e-3]
    d, e = exact(g)
    V = np.ones((1, n))
    screen = (V, d(V)[0], np.zeros(1))
    rounds = {}
    for guard in (0, 1):
        rounds[guard] = []
        for seed in range(8):
            res = lz.localise(ga, d, e, rtol=1e-9, rng=lz.rng_for(seed, 1), guard=guard, screen=screen)
            assert flat_found(res, (n,)) == {1000, 1001, 3000} and res.verified
            rounds[guard].append(res.rounds)
    assert min(rounds[0]) >= 3  # root round (lone entry), a round for the pair, the verification
    assert min(rounds[1]) == 2  # some seeds: all three in the first round


def test_a_near_threshold_row_yields_the_entry_the_full_check_fails():
    """An error between the whole row's tolerance (~rtol ||g||) and one entry's (~rtol max|g|): the screen
    passes the row but is near its threshold (error/tolerance > 0.1); the full check would fail the entry,
    and so does localisation."""
    n = 4096
    g = np.random.default_rng(4).normal(size=n)
    j = int(np.argmin(np.abs(g)))
    ga = g.copy()
    ga[j] += 20e-9  # ||g|| ~ 64, max|g| ~ 3.5: entry ratio ~ 5, row ratio ~ 0.1-0.3
    d, e = exact(g)
    res = lz.localise(ga, d, e, rtol=1e-9, rng=lz.rng_for(0, 1))
    assert res.outcome == "entries" and flat_found(res, (n,)) == {j}


def test_one_wrong_entry_costs_a_derivative_per_level():
    """One wrong entry of 2^14: 16 root directions, one measured subset per level (the other half is
    inferred), its leaf's 4 entries and 16 verification directions."""
    n = 2**14
    g = np.random.default_rng(5).normal(size=n)
    for j in (0, 5000, n - 1):
        ga = g.copy()
        ga[j] += 1e-3
        d, e = exact(g)
        res = lz.localise(ga, d, e, rtol=1e-9, rng=lz.rng_for(j, 1))
        assert flat_found(res, (n,)) == {j}
        assert res.derivatives <= 16 + 12 + 4 + 16 and res.calls <= 1 + 12 + 1 + 1


@pytest.mark.parametrize("kind,name,t", [("state", "h", 1), ("state", "s", 0), ("param", "bf", None)])
def test_a_wrong_entry_of_a_state_or_a_bias_is_found(kind, name, t):
    m = ReferenceLSTM(5, 40, 3, seed=7)
    g, d, e = row(m, evaluator(m), kind, name, t=t)
    ga = g.copy()
    ga[17] += 1e-3 * np.max(np.abs(g))
    res = run(ga, d, e)
    assert res.outcome == "entries" and [w.index for w in res.wrong_entries] == [(17,)]


def test_more_than_twenty_wrong_entries_are_listed_worst_first_and_counted():
    n = 4000
    g = np.random.default_rng(1).normal(size=n)
    ga = g.copy()
    ga[100:125] += 1e-3 * np.arange(1, 26)  # a contiguous run of 25: a wrong row of a weight block
    d, e = exact(g)
    res = lz.localise(ga, d, e, rtol=1e-9, rng=lz.rng_for(0, 1))
    assert res.outcome == "entries" and res.count == 25
    assert len(res.wrong_entries) == 20 and res.more == 5
    assert [w.index for w in res.wrong_entries] == [(j,) for j in range(124, 104, -1)]
    j = res.to_json()
    assert j["more"] == 5 and len(j["wrong_entries"]) == 20
    assert set(j["wrong_entries"][0]) == {"index", "analytic", "numeric", "abs_err"}


# ---- dense errors


def test_many_entries_in_one_region_are_entries_not_dense():
    """17 wrong entries within an eighth of the row: at every depth they occupy far less than half of the
    parts, so they are listed one by one, not called spread."""
    n = 2**15
    g = np.random.default_rng(7).normal(size=n)
    idx = np.sort(np.random.default_rng(8).choice(n // 8, 17, replace=False)) + n // 2
    ga = g.copy()
    ga[idx] += 1e-3 * np.random.default_rng(9).uniform(1, 2, 17)
    d, e = exact(g)
    res = lz.localise(ga, d, e, rtol=1e-9, rng=lz.rng_for(0, 1))
    assert res.outcome == "entries" and flat_found(res, (n,)) == set(idx.tolist())


@pytest.mark.parametrize("method", ["complex", "central", "richardson"])
def test_a_scaled_block_is_dense_with_its_scale(method):
    m = ReferenceLSTM(8, 12, 3, seed=1)
    g, d, e = row(m, evaluator(m, method), "param", "wg", method=method)
    res = run(g * (1 + 1e-5), d, e, method=method)
    assert res.outcome == "dense" and res.count == 0
    assert res.dense.scale == pytest.approx(1 + 1e-5, abs=1e-10) and not res.dense.sign_flip
    assert res.dense.rel_size == pytest.approx(1e-5, rel=0.5)
    assert "wg looks scaled by 1.00001" in res.describe("wg")
    assert res.derivatives < g.size // 4  # it stopped early: not an entry-by-entry check


def test_a_scale_the_full_check_passes_is_not_reported():
    """A block scaled by 1 + 1.5 rtol: every entry within its tolerance (|a - n| <= rtol (max|n| + |n_j|)), so
    the full check passes it; the screen may come near its threshold, and localisation must pass it too."""
    n = 3000
    g = np.random.default_rng(6).normal(size=n)
    d, e = exact(g)
    for seed in range(5):
        res = lz.localise(g * (1 + 1.5e-9), d, e, rtol=1e-9, rng=lz.rng_for(seed, 1))
        assert res.outcome == "passed" and res.count == 0, res
    assert lz.localise(g * (1 + 3e-9), d, e, rtol=1e-9, rng=lz.rng_for(0, 1)).outcome == "dense"


@pytest.mark.parametrize("method", ["complex", "central"])
def test_a_sign_flipped_block_is_reported_as_such(method):
    m = ReferenceLSTM(8, 12, 3, seed=1)
    g, d, e = row(m, evaluator(m, method), "param", "wo", method=method)
    res = run(-g, d, e, method=method)
    assert res.outcome == "dense" and res.dense.sign_flip
    assert res.dense.scale == pytest.approx(-1.0, abs=1e-9)
    assert "wo looks sign-flipped" in res.describe("wo")


def test_a_dense_error_that_is_not_a_scale_has_no_scale():
    n = 3000
    g = np.random.default_rng(2).normal(size=n)
    d, e = exact(g)
    res = lz.localise(
        g + 1e-6 * np.random.default_rng(3).normal(size=n), d, e, rtol=1e-9, rng=lz.rng_for(0, 1)
    )
    assert res.outcome == "dense" and res.dense.scale is None and not res.dense.sign_flip
    # 16 directions: the estimate is within 0.55x..1.78x of ||e||/||g|| in 98% of rows (docs/localise.md)
    assert 0.5e-6 < res.dense.rel_size < 2e-6


def test_a_small_row_with_most_entries_wrong_is_dense_and_lists_them():
    g = np.array([1.0, -2.0, 0.5, 3.0, -1.5])
    d, e = exact(g)
    res = lz.localise(g * 1.001, d, e, rtol=1e-9, rng=lz.rng_for(0, 1))
    assert res.outcome == "dense" and res.count == 5 and res.derivatives == 5
    assert res.dense.scale == pytest.approx(1.001)


def test_the_dropped_carry_fails_the_rows_the_full_check_fails():
    """The write-up's wrong "fix" at T = 4: every parameter block is dense; the state rows the full check
    fails are exactly the ones localisation does not pass, so the first bad step is the same (s at t = 2)."""
    from gradcheck import check

    m = ReferenceLSTM(6, 20, 4, seed=8, backward=backward_without_ds_next)
    full = check(m)
    ev = evaluator(m)
    failing = set()
    for name in m.parameters():
        g, d, e = row(m, ev, "param", name)
        res = run(g, d, e)
        assert res.outcome == "dense", (name, res)
        failing.add(name)
    for name in ("h", "s"):
        for t in range(4):
            g, d, e = row(m, ev, "state", name, t=t)
            if run(g, d, e).outcome != "passed":
                failing.add(f"{name}[t={t}]")
    assert failing == {r.label for r in full.failing}
    assert full.first_bad_step == {"name": "s", "t": 2}


# ---- determinism, evaluators, counts


def _localised_with(model, **kw):
    """Two planted entries of wi localised through a ChunkedEvaluator built with ``kw`` (the SerialEvaluator
    when ``kw`` is empty)."""
    ev = evaluator(model, **kw)
    g, d, e = row(model, ev, "param", "wi")
    ga = g.copy()
    ga[[1, 4], [2, 9]] += 1e-3 * np.max(np.abs(g))
    res = run(ga, d, e, seed=11)
    if hasattr(ev, "close"):
        ev.close()
    return res


@pytest.mark.parametrize("batched", [False, True])
def test_same_seed_same_result_whatever_the_evaluator(batched):
    m = ReferenceLSTM(6, 10, 3, seed=3)
    with cf.ProcessPoolExecutor(2) as pool:
        seen = [
            _localised_with(m, batched=batched, threads=1),
            _localised_with(m, batched=batched, threads=2),
            _localised_with(m, batched=batched, executor=pool),
        ]
    if not batched:
        seen.append(_localised_with(m))  # one loss() per evaluation, in this thread
    assert all(r == seen[0] for r in seen)  # equal dataclasses: every number bit-identical
    assert {w.index for w in seen[0].wrong_entries} == {(1, 2), (4, 9)}


def test_a_dask_cluster_gives_the_same_result():
    distributed = pytest.importorskip("distributed")
    m = ReferenceLSTM(6, 10, 3, seed=3)
    inline = _localised_with(m, batched=True, threads=1)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        assert _localised_with(m, batched=True, executor=client.get_executor()) == inline


def test_the_directions_drawn_depend_on_the_seed_only():
    n = 2000
    g = np.random.default_rng(0).normal(size=n)
    ga = g.copy()
    ga[[10, 1500]] += 1e-3
    d, e = exact(g)
    drawn = {}
    for label, seed in [("a", 5), ("b", 5), ("c", 6)]:
        calls = []

        def recording(V, calls=calls):
            calls.append(np.array(V))
            return d(V)

        res = lz.localise(ga, recording, e, rtol=1e-9, rng=lz.rng_for(seed, 3))
        drawn[label] = (calls, res)
    (ca, ra), (cb, rb), (cc, _) = drawn["a"], drawn["b"], drawn["c"]
    assert ra == rb and len(ca) == len(cb) and all(np.array_equal(x, y) for x, y in zip(ca, cb))
    assert not np.array_equal(ca[0], cc[0])


def test_reported_evaluations_are_the_loss_calls_made():
    m = Counting(6, 12, 3, seed=2)
    ev = evaluator(m)
    g, d, e = row(m, ev, "param", "wi")
    ga = g.copy()
    ga[3, 3] += 1e-3 * np.max(np.abs(g))
    for method in ("complex", "central"):
        ev = evaluator(m, method)
        g, d, e = row(m, ev, "param", "wi", method=method)
        m.calls = 0
        res = run(ga, d, e, method=method)
        assert res.evaluations == m.calls > 0
        assert [w.index for w in res.wrong_entries] == [(3, 3)]


def test_one_wrong_entry_at_the_write_ups_size_within_the_issue_budget():
    """(50, 100, 4), complex step, one loss() per evaluation: screen (256) + localisation <= 1,000."""
    from gradcheck.fast.blas_threads import single_threaded_blas

    m = Counting(50, 100, 4, seed=0)
    with single_threaded_blas():
        g, d, e = row(m, evaluator(m), "param", "wi")
        ga = g.copy()
        ga[37, 81] += 1e-3 * np.max(np.abs(g))
        m.calls = 0
        res = run(ga, d, e)
    assert [w.index for w in res.wrong_entries] == [(37, 81)] and res.verified
    assert 256 + m.calls <= 1000 and res.evaluations == m.calls


def test_a_budget_stops_it_with_what_was_found():
    n = 5000
    g = np.random.default_rng(0).normal(size=n)
    ga = g.copy()
    ga[[7, 4000]] += 1e-3
    d, e = exact(g)
    res = lz.localise(ga, d, e, rtol=1e-9, rng=lz.rng_for(0, 1), budget=20)
    assert res.outcome == "incomplete" and not res.verified and res.evaluations <= 20
    assert "stopped after" in res.describe("w")
    assert lz.localise(ga, d, e, rtol=1e-9, rng=lz.rng_for(0, 1)).outcome == "entries"


def test_a_level_is_one_call():
    """All subset tests of one bisection level go to ``directional`` together: calls grow with the depth
    (log n), not with the number of subsets."""
    n = 2**14
    g = np.random.default_rng(0).normal(size=n)
    ga = g.copy()
    ga[np.random.default_rng(1).choice(n, 5, replace=False)] += 1e-3
    d, e = exact(g)
    res = lz.localise(ga, d, e, rtol=1e-9, rng=lz.rng_for(0, 1))
    assert res.count == 5
    assert res.calls <= 3 * 14 and res.derivatives > 3 * res.calls


def test_format_scale_shows_the_distance_from_one():
    assert lz.format_scale(1.00001) == "1.00001"
    assert lz.format_scale(1 + 2.5e-9) == "1.0000000025"
    assert lz.format_scale(-1.0) == "-1"
    assert lz.format_scale(0.5) == "0.5"


# ---- bad input


def _ok():
    g = np.arange(1.0, 41.0)
    d, e = exact(g)
    return g, d, e


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda a: a | {"analytic": np.array(["x", "y"])}, "analytic: expected a numeric array"),
        (lambda a: a | {"analytic": np.zeros((0, 3))}, "analytic: the row has no entries"),
        (lambda a: a | {"rtol": 0.0}, "rtol: expected a finite number > 0"),
        (lambda a: a | {"atol": -1.0}, "atol: expected a finite number >= 0"),
        (lambda a: a | {"cost": 0}, "cost: expected an integer >= 1"),
        (lambda a: a | {"budget": 1.5}, "budget: expected an integer >= 0"),
        (lambda a: a | {"directional": None}, "directional: expected a callable"),
        (lambda a: a | {"rng": 3}, "rng: expected a numpy Generator"),
        (
            lambda a: a | {"screen": (np.ones((2, 39)), np.ones(2), np.zeros(2))},
            r"screen: directions .* \(m, 40\)",
        ),
        (
            lambda a: a | {"screen": (np.ones((2, 40)), np.ones(3), np.zeros(2))},
            r"screen: has 3 numerical derivatives \(shape \(3,\)\) for 2 directions",
        ),
        (
            lambda a: a | {"directional": lambda V: (np.zeros(len(V) + 1), np.zeros(len(V)))},
            r"directional\(V\) with V of shape \(16, 40\) returned 17 numerical derivatives .* for 16 "
            r"directions",
        ),
        (lambda a: a | {"directional": lambda V: np.zeros(len(V))}, r"must return a pair \(numeric, noise\)"),
        (
            lambda a: a | {"analytic": np.arange(1.0, 11.0), "entries": lambda i: (np.zeros(2), np.zeros(2))},
            r"entries\(flat_idx\) with flat_idx of shape \(10,\) returned 2 numerical derivatives .* for 10 "
            r"entries",
        ),
    ],
)
def test_bad_input_is_a_protocol_error_naming_it(change, match):
    g, d, e = _ok()
    args = change(
        {
            "analytic": g + 1.0,
            "directional": d,
            "entries": e,
            "rtol": 1e-9,
            "atol": 0.0,
            "rng": lz.rng_for(0, 1),
            "cost": 1,
            "budget": None,
            "screen": None,
        }
    )
    with pytest.raises(ProtocolError, match=match):
        lz.localise(args.pop("analytic"), args.pop("directional"), args.pop("entries"), **args)


def test_probes_need_a_state_step_inside_the_run():
    m = ReferenceLSTM(3, 4, 2)
    with pytest.raises(ProtocolError, match=r"0 <= t < T"):
        lz.probes(
            evaluator(m), "state", "h", method="complex", step=1e-20, dtype=np.float64, shape=(2, 4), t=2
        )
    with pytest.raises(ProtocolError, match="kind: expected 'param' or 'state'"):
        lz.probes(evaluator(m), "tap", "h", method="complex", step=1e-20, dtype=np.float64)


@pytest.mark.parametrize("method", ["complex", "central", "richardson"])
@pytest.mark.parametrize("kind,name,t", [("param", "wi", None), ("param", "bo", None), ("state", "s", 1)])
def test_probes_measure_the_true_directional_derivative(method, kind, name, t):
    """The integrator's hook: directional(V) is v^T g_true for any subset direction, entries(j) is g_true[j]
    (to the method's accuracy; the reference's analytic gradient is the truth here)."""
    m = ReferenceLSTM(5, 6, 3, seed=9)
    g, d, e = row(m, evaluator(m, method), kind, name, t=t, method=method)
    gf = g.reshape(-1)
    V = np.zeros((3, gf.size))
    V[0] = 1.0
    V[1, : gf.size // 2] = np.random.default_rng(0).integers(0, 2, gf.size // 2) * 2.0 - 1.0
    V[2, 3] = -1.0
    numeric, noise = d(V)
    tol = {"complex": 1e-12, "central": 1e-7, "richardson": 1e-8}[method]
    assert np.allclose(numeric, np.sum(V * gf, axis=1), rtol=tol, atol=tol * np.max(np.abs(gf)))
    n_e, _ = e(np.array([0, 3]))
    assert np.allclose(n_e, gf[[0, 3]], rtol=tol, atol=tol * np.max(np.abs(gf)))
    assert noise.shape == (3,) and np.all(noise >= 0)
