"""The checker: correct models pass; planted wrong gradients fail with the right row, index and time step."""

import numpy as np
import pytest
from user_models import Linear, Raising, UserLSTM

from gradcheck import ModelError, ProtocolError, ReferenceLSTM, check


def rows_by_label(report):
    return {r.label: r for r in report.rows}


def failing(report):
    return {r.label for r in report.rows if not r.passed}


# ------------------------------------------------------------------------------------------ correct models


@pytest.mark.parametrize("variant", ["simple", "tanh"])
@pytest.mark.parametrize("loss", ["seed", "full"])
@pytest.mark.parametrize("method", ["central", "richardson", "complex"])
def test_reference_passes(variant, loss, method):
    report = check(ReferenceLSTM(4, 5, 4, variant=variant, loss=loss, seed=3), method=method)
    assert report.passed, report.verdict()
    assert len(report.rows) == 8 + 2 * 4
    assert report.first_bad_step is None


def test_reference_passes_in_float32():
    report = check(ReferenceLSTM(3, 4, 3, dtype=np.float32, seed=1))
    assert report.settings["dtype"] == "float32" and report.passed, report.verdict()


def test_user_models_pass():
    assert check(UserLSTM()).passed
    report = check(Linear())
    assert report.passed and [r.name for r in report.rows] == ["w", "c"]  # no state, no state rows


def test_every_entry_is_checked():
    report = check(ReferenceLSTM(3, 4, 5))
    by = rows_by_label(report)
    assert by["wg"].checked == 4 * 7 and by["bo"].checked == 4
    assert by["h[t=4]"].checked == 4 and by["s[t=0]"].checked == 4


# ------------------------------------------------------------------------------------------ planted errors


def scaled(model_cls, name, factor, entry=None):
    class Planted(model_cls):
        def gradients(self, params):
            pg, sg = super().gradients(params)
            g = np.array(pg[name], copy=True)
            if entry is None:
                g = g * factor
            else:
                g[entry] *= factor
            return {**pg, name: g}, sg

    return Planted


@pytest.mark.parametrize("block", ["wg", "wi", "wf", "wo", "bg", "bi", "bf", "bo"])
def test_relative_error_1e5_in_one_block_is_caught(block):
    model = scaled(ReferenceLSTM, block, 1 + 1e-5)(4, 5, 3, seed=2)
    report = check(model)
    assert failing(report) == {block}


def test_one_wrong_entry_is_named():
    model = ReferenceLSTM(4, 5, 3, seed=2)
    g = model.gradients(model.parameters())[0]["wf"]
    entry = np.unravel_index(np.argsort(np.abs(g).ravel())[g.size // 2], g.shape)  # a median-sized entry
    report = check(scaled(ReferenceLSTM, "wf", 1.001, entry)(4, 5, 3, seed=2))
    assert failing(report) == {"wf"}
    row = rows_by_label(report)["wf"]
    assert tuple(row.worst_index) == tuple(int(k) for k in entry)
    assert row.analytic == pytest.approx(g[entry] * 1.001, rel=1e-12)
    assert row.numeric == pytest.approx(g[entry], rel=1e-6)


def test_wrong_entry_in_user_model_named_with_index():
    report = check(UserLSTM(bug="wrong_entry", block="Wx", entry=(2, 1, 0), factor=1.01))
    assert failing(report) == {"Wx"}
    assert rows_by_label(report)["Wx"].worst_index == [2, 1, 0]


def test_dropped_ds_carry_localised_in_time():
    # Dropping dL(t+1)/ds(t) in a T=5 run: s(t<=3) wrong, h(t<=2) wrong, s(4), h(4), h(3) right.
    report = check(UserLSTM(steps=5, bug="drop_ds_carry"))
    bad = failing(report)
    assert {f"s[t={t}]" for t in range(4)} <= bad
    assert {f"h[t={t}]" for t in range(3)} <= bad
    assert not bad & {"s[t=4]", "h[t=4]", "h[t=3]"}
    assert report.first_bad_step == {"name": "s", "t": 3}
    assert "first divergence going back in time: s at t=3" in report.verdict()


def test_dropped_dh_carry_enters_at_h():
    report = check(UserLSTM(steps=4, bug="drop_dh_carry"))
    bad = failing(report)
    assert "h[t=3]" not in bad and "s[t=3]" not in bad and "h[t=2]" in bad
    assert report.first_bad_step == {"name": "h", "t": 2}


def test_non_recurrent_model_wrong_block():
    report = check(Linear(bug="transpose"))
    assert failing(report) == {"c"} and report.first_bad_step is None


# ------------------------------------------------------------------------------- never pass NaN, shapes, ...


def test_nan_in_analytic_never_passes():
    report = check(UserLSTM(bug="nan", block="b", entry=(1, 2)))
    row = rows_by_label(report)["b"]
    assert not row.passed and row.worst_index == [1, 2]


def test_nan_in_numeric_never_passes():
    class NanLoss(Linear):
        def loss(self, params, taps=None):
            return float("nan") if params["w"][0] > self.w[0] else super().loss(params)

    report = check(NanLoss())
    assert not rows_by_label(report)["w"].passed


def test_wrong_shape_is_a_protocol_error_naming_block_and_shapes():
    with pytest.raises(
        ProtocolError, match=r"gradients\(params\)\[0\]\['Wh'\]: expected shape \(4, 4, 4\).*got \(64,\)"
    ):
        check(UserLSTM(bug="wrong_shape", block="Wh"))


def test_missing_gradient_is_a_protocol_error_naming_it():
    with pytest.raises(ProtocolError, match=r"no gradient for \['b'\]"):
        check(UserLSTM(bug="missing", block="b"))


def test_extra_gradient_is_a_protocol_error():
    class Extra(Linear):
        def gradients(self, params):
            pg, sg = super().gradients(params)
            return {**pg, "zz": np.zeros(2)}, sg

    with pytest.raises(ProtocolError, match="zz"):
        check(Extra())


@pytest.mark.parametrize(
    "obj,match",
    [
        (object(), "missing method"),
        (
            type(
                "P",
                (),
                {
                    "parameters": lambda s: [1],
                    "loss": lambda s, p, taps=None: 0.0,
                    "gradients": lambda s, p: ({}, {}),
                },
            )(),
            "dict",
        ),
        (type("G", (Linear,), {"gradients": lambda s, p: {"w": 1}})(), "pair"),
        (type("L", (Linear,), {"loss": lambda s, p, taps=None: np.ones(3)})(), "scalar"),
    ],
)
def test_not_a_model_is_a_protocol_error(obj, match):
    with pytest.raises(ProtocolError, match=match):
        check(obj)


def test_model_that_raises_is_a_model_error():
    with pytest.raises(ModelError, match="boom"):
        check(Raising())


def test_model_arrays_are_never_changed():
    model = UserLSTM()
    before = {k: v.copy() for k, v in model.p.items()}
    check(model, method="richardson")
    assert all(np.array_equal(before[k], model.p[k]) for k in before)


def test_model_writing_into_its_arguments_fails_loudly():
    class Writer(Linear):
        def loss(self, params, taps=None):
            params["w"][0] = 0.0
            return super().loss(params)

    with pytest.raises(ModelError, match="read-only"):
        check(Writer())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"method": "forward"}, "method"),
        ({"eps": 0.0}, "eps"),
        ({"eps": float("nan")}, "eps"),
        ({"rtol": -1.0}, "rtol"),
        ({"atol": float("inf")}, "atol"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ProtocolError, match=match):
        check(Linear(), **kwargs)


def test_complex_step_needs_the_capability():
    with pytest.raises(ProtocolError, match="complex"):
        check(UserLSTM(), method="complex")


def test_complex_capability_with_real_loss_is_caught():
    class Liar(Linear):
        capabilities = {"complex"}

        def loss(self, params, taps=None):
            return float(np.real(super().loss(params)))

    with pytest.raises((ProtocolError, ModelError)):
        check(Liar(), method="complex")


def test_step_below_resolution_is_an_error():
    with pytest.raises(ValueError, match="x \\+ eps == x"):
        check(ReferenceLSTM(2, 2, 2), eps=1e-30)
    with pytest.raises(ValueError, match="float32"):
        check(ReferenceLSTM(2, 2, 2, dtype=np.float32), eps=1e-9, method="central")


# ----------------------------------------------------------------------------- wrong gradient vs bad step


def test_diagnosis_says_wrong_gradient():
    report = check(UserLSTM(bug="scale_block", block="b", factor=1.01))
    d = rows_by_label(report)["b"].diagnosis
    assert d["verdict"] == "wrong gradient"
    assert len(d["steps"]) >= 3


def test_diagnosis_says_bad_step_for_a_correct_gradient():
    report = check(UserLSTM(), eps=0.3)  # a correct gradient, a step far too large
    assert not report.passed
    verdicts = {r.diagnosis["verdict"] for r in report.rows if not r.passed}
    assert verdicts == {"finite-difference error"}


def test_diagnosis_uses_complex_step_when_allowed():
    report = check(ReferenceLSTM(3, 3, 3, variant="tanh"), eps=0.3)
    d = next(r.diagnosis for r in report.rows if not r.passed)
    assert d["verdict"] == "finite-difference error" and d["complex_step_error"] < 1e-12

    wrong = check(scaled(ReferenceLSTM, "bi", 1.01)(3, 3, 3))
    assert rows_by_label(wrong)["bi"].diagnosis["verdict"] == "wrong gradient"


def test_report_is_deterministic():
    a = check(ReferenceLSTM(3, 4, 3, seed=5)).to_dict()
    b = check(ReferenceLSTM(3, 4, 3, seed=5)).to_dict()
    a.pop("timings"), b.pop("timings")
    assert a == b


# ------------------------------------------------------------------------------------------------ float32


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("block", ["wg", "bf"])
def test_float32_default_catches_a_5_percent_block_error(seed, block):
    # auto -> complex step for a float32 model that declares "complex": no cancellation, so even blocks whose
    # gradient is small next to the loss are checked to ~1e-4.
    model = scaled(ReferenceLSTM, block, 1.05)(
        3, 4, 3, seed=seed, loss=["seed", "full"][seed % 2], dtype=np.float32
    )
    report = check(model)
    assert report.method == "complex" and report.settings["method_requested"] == "auto"
    assert failing(report) == {block}


@pytest.mark.parametrize("seed", range(12))
def test_float32_central_never_passes_an_error_silently(seed):
    # float32 central cannot resolve rows whose gradient is small next to the loss; when a planted 5% error
    # passes, the report must name that row as unable to resolve it.
    model = scaled(ReferenceLSTM, "bf", 1.05)(
        3, 4, 3, seed=seed, loss=["seed", "full"][seed % 2], dtype=np.float32
    )
    report = check(model, method="central", diagnose=False)
    if "bf" not in failing(report):
        assert "bf" in {r.label for r in report.insensitive}
        assert "cannot resolve relative errors below" in report.verdict()


def test_float64_reference_has_no_insensitive_rows():
    report = check(ReferenceLSTM(4, 5, 4, loss="seed"))
    assert report.passed and report.insensitive == [] and "cannot resolve" not in report.verdict()


def test_verdict_states_coverage_when_not_every_entry_is_checked():
    full = check(ReferenceLSTM(3, 4, 3))
    assert "coverage" not in full.verdict()
    sampled = check(ReferenceLSTM(3, 4, 3), sample=5)
    total = sum(r.checked for r in full.rows)
    assert f"coverage: {sum(r.checked for r in sampled.rows)} of {total} entries" in sampled.verdict()
    screened = check(ReferenceLSTM(3, 4, 3), mode="screen")
    assert "random directions only" in screened.verdict()
