"""The random-projection screen and sampled checks: what they catch, what they report, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
from _planted import Planted, backward_without_ds_next, block_bug, entry_bug
from hypothesis import given
from hypothesis import strategies as st

from gradcheck import ProtocolError, ReferenceLSTM, check
from gradcheck.fast.chunked import ChunkedEvaluator
from gradcheck.fast.screen import NEAR, directions_for
from gradcheck.finite_diff import SerialEvaluator
from gradcheck.tolerance import compare, compare_many


@pytest.mark.parametrize("method", ["central", "complex", "richardson"])
@pytest.mark.parametrize(
    "variant,loss,seed", [("simple", "full", 0), ("tanh", "seed", 1), ("simple", "seed", 2)]
)
def test_screen_passes_the_reference(method, variant, loss, seed):
    r = check(ReferenceLSTM(5, 7, 4, variant=variant, loss=loss, seed=seed), mode="screen", method=method)
    assert r.passed, [(x.label, x.ratio) for x in r.failing]
    assert r.settings["screen"]["escalated_to_full"] == []
    assert all(x.ratio <= NEAR for x in r.rows)
    assert r.settings["coverage"]["entries_checked"] == 0
    assert len(r.settings["coverage"]["rows_screened_only"]) == len(r.rows) == 8 + 2 * 4


def test_screen_of_a_serial_model_matches_the_batched_screen():
    m = ReferenceLSTM(4, 5, 3, seed=3)
    fast, slow = check(m, mode="screen"), check(m, mode="screen", batched=False)
    assert [(a.label, a.passed) for a in fast.rows] == [(b.label, b.passed) for b in slow.rows]
    params = m.parameters()
    shapes = {"h": (3, 5), "s": (3, 5)}
    V = directions_for(0, 1, 6, params["wg"].shape)
    d = np.r_[np.full(6, 1e-6), np.full(6, -1e-6)]
    a = ChunkedEvaluator(m, params, shapes).direction_losses("param", "wg", np.r_[V, V], d)
    b = SerialEvaluator(m, params, shapes).direction_losses("param", "wg", np.r_[V, V], d)
    assert np.max(np.abs(a - b)) <= 64 * np.finfo(float).eps * np.max(np.abs(b))


def test_screen_localises_a_scaled_block_as_spread_and_names_the_scale():
    m = Planted(5, 7, 4, seed=2, plant=block_bug("wf", 1 + 1e-5))
    r = check(m, mode="screen")
    assert r.settings["screen"]["escalated_to_full"] == [] and list(r.settings["screen"]["localised"]) == [
        "wf"
    ]
    assert [x.label for x in r.failing] == ["wf"]
    d = r.failing[0].diagnosis
    assert d["verdict"] == "wrong gradient" and "wf looks scaled by 1.00001" in d["reason"]
    assert abs(d["dense"]["scale"] - (1 + 1e-5)) < 1e-9


def test_screen_localises_a_single_wrong_entry_above_its_threshold():
    m = Planted(5, 7, 4, seed=2, plant=entry_bug("wi", (3, 9), 1e-2))
    r = check(m, mode="screen")
    assert [x.label for x in r.failing] == ["wi"]
    (row,) = r.failing
    assert row.worst_index == [3, 9] and [e["index"] for e in row.wrong_entries] == [[3, 9]]
    g = m.gradients(m.parameters())[0]["wi"]
    assert row.wrong_entries[0]["analytic"] == g[3, 9]  # the model's own (planted) value, named
    assert r.settings["evaluation"]["model_calls"] < 200  # the screen plus a bisection, not a full check


def test_screen_finds_the_dropped_recurrent_term_like_the_full_check():
    m = ReferenceLSTM(3, 5, 5, seed=8, backward=backward_without_ds_next)
    full, scr = check(m), check(m, mode="screen")
    assert {x.label for x in scr.failing} == {x.label for x in full.failing}
    assert scr.first_bad_step == full.first_bad_step == {"name": "s", "t": 3}


def test_screen_directions_are_reproducible_and_recorded():
    m = ReferenceLSTM(4, 5, 3, seed=3)
    a, b, c = (
        check(m, mode="screen", seed=4),
        check(m, mode="screen", seed=4),
        check(m, mode="screen", seed=5),
    )
    assert [x.numeric for x in a.rows] == [x.numeric for x in b.rows]
    assert [x.numeric for x in a.rows] != [x.numeric for x in c.rows]
    s = a.settings["screen"]
    assert s["seed"] == 4 and s["directions"] == 16 and "rademacher" in s["distribution"]
    V = directions_for(4, 1, 16, (5, 9))
    assert V.shape == (16, 5, 9) and set(np.unique(V)) == {-1.0, 1.0}
    assert not np.array_equal(V, directions_for(4, 2, 16, (5, 9)))


def test_more_directions_in_the_report():
    r = check(ReferenceLSTM(3, 4, 2), mode="screen", directions=3)
    assert all(x.checked == 3 for x in r.rows)
    with pytest.raises(ProtocolError, match="directions"):
        check(ReferenceLSTM(3, 4, 2), mode="screen", directions=0)
    with pytest.raises(ProtocolError, match="mode"):
        check(ReferenceLSTM(3, 4, 2), mode="fast")


def test_sample_reports_coverage_and_catches_a_sampled_bad_entry():
    m = ReferenceLSTM(4, 6, 3, seed=1)
    r = check(m, sample=5, seed=9)
    total = sum(v.size for v in m.parameters().values()) + 2 * 3 * 6
    cov = r.settings["coverage"]
    assert cov["entries_total"] == total
    assert cov["entries_checked"] == sum(x.checked for x in r.rows) == 5 * len(r.rows)
    assert cov["fraction"] == pytest.approx(5 * len(r.rows) / total)
    assert cov["sample_per_row"] == 5 and cov["sample_seed"] == 9
    assert r.passed
    # plant a bug at an entry the sample draws: the row fails and names that entry
    rng = np.random.default_rng([9, 11])
    first = np.sort(rng.choice(m.parameters()["wg"].size, size=5, replace=False))[0]
    index = tuple(int(k) for k in np.unravel_index(first, m.parameters()["wg"].shape))
    bad = check(Planted(4, 6, 3, seed=1, plant=entry_bug("wg", index, 1e-3)), sample=5, seed=9)
    assert [x.label for x in bad.failing] == ["wg"] and bad.failing[0].worst_index == list(index)


def test_full_check_coverage_is_everything():
    r = check(ReferenceLSTM(2, 3, 2))
    assert r.settings["coverage"]["fraction"] == 1.0 and r.settings["mode"] == "full"


class OldProtocol(ReferenceLSTM):
    """A model of the older protocol: loss_directions (one request per call), no loss_directions_many."""

    loss_directions_many = None

    def loss_directions(self, params, kind, name, directions, deltas):
        return ReferenceLSTM.loss_directions_many(self, params, [(kind, name, directions, deltas[None, :])])[
            0
        ][0]


def test_a_model_of_the_older_protocol_is_still_read_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="loss_directions_many"):
        old = check(OldProtocol(3, 4, 3), mode="screen")
    new = check(ReferenceLSTM(3, 4, 3), mode="screen")
    assert [(r.label, r.passed) for r in old.rows] == [(r.label, r.passed) for r in new.rows]
    assert all(
        abs(a.numeric - b.numeric) <= 1e-12 * max(1.0, abs(b.numeric)) for a, b in zip(old.rows, new.rows)
    )


def test_screen_directions_are_read_only_for_the_model():
    """The analytic side v^T g is computed from the same direction arrays: a model must not be able to change
    them, through either of the screen's calls."""
    from gradcheck.errors import ModelError

    class Writes(OldProtocol):
        def loss_directions(self, params, kind, name, directions, deltas):
            directions[0] = 0.0
            return super().loss_directions(params, kind, name, directions, deltas)

    class WritesMany(ReferenceLSTM):
        def loss_directions_many(self, params, requests):
            requests[-1][2][0] = 0.0
            return super().loss_directions_many(params, requests)

    with pytest.raises(ModelError, match="read-only"):
        check(WritesMany(3, 4, 2), mode="screen")
    with pytest.raises(ModelError, match="read-only"), pytest.warns(DeprecationWarning):
        check(Writes(3, 4, 2), mode="screen")
    a, b = check(ReferenceLSTM(3, 4, 2), mode="screen"), check(ReferenceLSTM(3, 4, 2), mode="screen")
    assert [x.numeric for x in a.rows] == [x.numeric for x in b.rows]


@given(
    rows=st.integers(1, 6),
    k=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    specials=st.lists(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e300]), max_size=4),
)
def test_compare_many_equals_compare_row_by_row(rows, k, seed, specials):
    """The screen's vectorised comparison gives each row exactly what compare() gives it (pass/fail, ratio,
    worst entry, tolerance, errors, resolution), with NaN, inf, zeros and failing rows among them."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, k)) * 10.0 ** rng.integers(-12, 3, size=(rows, 1))
    n = a * (1 + rng.choice([0.0, 1e-9, 1e-5, 1e-2], size=(rows, k)))
    noise = np.abs(rng.standard_normal((rows, k))) * 1e-14
    for j, v in enumerate(specials):
        (a if j % 2 else n)[rng.integers(rows), rng.integers(k)] = v
    n[0] = 0.0 if rows > 1 else n[0]  # a row whose numeric side is all zero
    many = compare_many(a, n, noise, rtol=1e-6, atol=0.0)
    for i in range(rows):
        one = compare(a[i], n[i], noise[i], rtol=1e-6, atol=0.0)
        got = many[i]
        assert (got.passed, got.worst, got.nonfinite) == (one.passed, one.worst, one.nonfinite)
        for field in ("ratio", "max_abs_err", "max_rel_err", "tolerance", "resolution"):
            assert np.array_equal(getattr(got, field), getattr(one, field), equal_nan=True), field
        assert np.array_equal(got.top, one.top)


def test_auto_screens_with_complex_step_where_the_model_allows_it():
    from user_models import Linear

    assert check(ReferenceLSTM(3, 4, 2), mode="screen").method == "complex"
    assert check(ReferenceLSTM(3, 4, 2)).method == "central"  # a float64 full check
    assert check(ReferenceLSTM(3, 4, 2), mode="screen", method="central").method == "central"
    assert check(Linear(), mode="screen").method == "central"  # no "complex" capability


def test_complex_screen_sees_a_single_entry_error_the_central_screen_cannot():
    """Why auto screens with complex step: a 1e-5 relative error on one of 15,000 weight entries is below the
    central screen row's threshold (~1e-4 here, docs/benchmarks.md) and far above the complex one's."""
    m = Planted(50, 100, 4, seed=0, plant=entry_bug("wi", (7, 120), 1e-5))
    central = check(m, mode="screen", method="central", blocks=["wi"], diagnose=False)
    auto = check(m, mode="screen", blocks=["wi"], diagnose=False)
    assert central.settings["screen"]["screen_ratios"]["wi"] <= 1.0
    assert auto.method == "complex" and auto.settings["screen"]["screen_ratios"]["wi"] > 1.0
    assert [r.label for r in auto.failing] == ["wi"] and auto.failing[0].worst_index == [7, 120]


def test_a_wrong_loss_directions_many_is_a_named_protocol_error():
    class TooFew(ReferenceLSTM):
        def loss_directions_many(self, params, requests):
            return super().loss_directions_many(params, requests)[:-1]

    class WrongLength(ReferenceLSTM):
        def loss_directions_many(self, params, requests):
            return [np.asarray(o).reshape(-1)[:-1] for o in super().loss_directions_many(params, requests)]

    with pytest.raises(ProtocolError, match="loss_directions_many.*one per request"):
        check(TooFew(3, 4, 2), mode="screen")
    with pytest.raises(ProtocolError, match=r"loss_directions_many.*shape \(16,\)"):
        check(WrongLength(3, 4, 2), mode="screen")
