"""``gradcheck selftest`` and the mutant catalog: every mutant caught with the expected rows, in float64 and float32.

The expected rows are written here from the issue's text where it states them (the dropped dL(t+1)/ds(t) in a T=5
run), independently of the catalog, and the self-test itself must fail when the checker is made blind or trigger-
happy.
"""

import json
import os

import numpy as np
import pytest

from gradcheck import check, cli
from gradcheck.lstm import mutants as mut
from gradcheck.lstm import selftest
from gradcheck.lstm.reference import ReferenceLSTM
from gradcheck.report import Report, Row

ISSUE_BUGS = {  # the bugs the issue lists, by the catalog's name
    "drop_ds_next",
    "drop_dh_next",
    "forget_uses_s_t",
    "tanh_prime_one_minus_g",
    "sigmoid_prime_on_preactivation",
    "bias_last_step_only",
    "xc_columns_swapped",
    "gates_swapped",
    "forget_off_by_one",
    "loss_grad_missing_factor_2",
    "tanh_variant_missing_tanh_prime",
    "initial_state_ignored",
    "tiny_scale_one_block",
}


def test_catalog_has_the_issues_bugs_and_at_least_twelve():
    assert selftest.MIN_STEPS == mut.MIN_STEPS
    names = [m.name for m in mut.CATALOG]
    assert len(names) >= 12 and len(set(names)) == len(names)
    assert ISSUE_BUGS <= set(names)


@pytest.fixture(scope="module")
def result64():
    return selftest.run_selftest(selftest.SelftestConfig(), demo=False)


@pytest.fixture(scope="module")
def result32():
    return selftest.run_selftest(selftest.SelftestConfig(dtype="float32"), demo=False)


def test_float64_reference_passes_and_every_mutant_is_caught_strictly(result64):
    assert result64.config.strict and result64.config.resolved_method == "central"
    assert result64.cases[0].name == "reference" and result64.cases[0].ok
    missed = {c.name: c.problems for c in result64.cases if not c.ok}
    assert not missed
    assert result64.caught == result64.mutants == len(mut.CATALOG)
    assert result64.passed


def test_float32_with_complex_step_catches_every_mutant(result32):
    assert result32.config.resolved_method == "complex" and not result32.config.strict
    missed = {c.name: c.problems for c in result32.cases if not c.ok}
    assert not missed and result32.passed


def test_dropped_carry_in_a_T5_run_names_exactly_the_issues_rows():
    """Issue 4's statement: rows s(t<=3) fail; s(4), h(4), h(3) pass; first divergence s at t=3."""
    m = mut.BY_NAME["drop_ds_next"]
    report = check(ReferenceLSTM(3, 4, 5, seed=0, backward=m.backward))
    state = {(r.name, r.t): r.passed for r in report.rows if r.kind == "state"}
    assert not any(state[("s", t)] for t in range(4))
    assert state[("s", 4)] and state[("h", 4)] and state[("h", 3)]
    assert report.first_bad_step == {"name": "s", "t": 3}
    assert "first divergence going back in time: s at t=3" in report.verdict()


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("m", mut.CATALOG, ids=lambda m: m.name)
def test_other_seeds_catch_every_mutant_with_the_direct_rows(m, seed):
    """Away from the self-test's configuration: the directly written rows fail, untouched rows pass."""
    model = ReferenceLSTM(2, 3, 4, variant=m.variant, seed=seed, backward=m.backward)
    ok, problems = mut.outcome(check(model, diagnose=False), m.expected(4), strict=False)
    assert ok, problems


def test_mutants_only_change_what_they_claim():
    """A mutant's backward differs from the reference exactly in the blocks/rows its expectation names."""
    import lstm_ref
    from lstm_ref.model import step_loss_grads

    for m in mut.CATALOG:
        model = ReferenceLSTM(3, 4, 5, variant=m.variant, seed=3)
        p = model.parameters()
        tr = lstm_ref.forward(p, model.xs, variant=m.variant, h0=model.h0, s0=model.s0)
        dl = step_loss_grads(tr.h, model.ys, "full")
        good, bad = lstm_ref.backward(p, tr, dl), m.backward(p, tr, dl)
        exp = m.expected(5)
        changed = {
            k for k in p if not np.allclose(good.param_grads[k], bad.param_grads[k], rtol=1e-12, atol=0)
        }
        assert changed == set(exp.params), m.name
        rows = {
            (n, t)
            for n, a, b in (("h", good.dh, bad.dh), ("s", good.ds, bad.ds))
            for t in range(5)
            if not np.allclose(a[t], b[t], rtol=1e-12, atol=0)
        }
        assert rows == set(exp.states), m.name


def _fake_report(failing: set[str], first=None) -> Report:
    rows = []
    for name in mut.PARAM_KEYS:
        rows.append(Row("param", name, None, name not in failing, 0.0, 0.0, [0], 0.0, 0.0, 1.0, 0.0, 1))
    for s in ("h", "s"):
        for t in range(5):
            label = f"{s}[t={t}]"
            rows.append(Row("state", s, t, label not in failing, 0.0, 0.0, [0], 0.0, 0.0, 1.0, 0.0, 1))
    return Report(rows, 0, "central", {}, "fake", 0.0, first)


def test_outcome_flags_extra_missing_and_misplaced_rows():
    exp = mut.BY_NAME["gates_swapped"].expected(5)
    assert mut.outcome(_fake_report({"wi", "bi", "wf", "bf"}), exp) == (True, [])
    ok, problems = mut.outcome(_fake_report({"wi", "bi", "wf", "bf", "wg"}), exp)
    assert not ok and problems == ["wg failed but must pass"]
    ok, problems = mut.outcome(_fake_report({"wi", "bi", "wf"}), exp)
    assert not ok and problems == ["bf passed but must fail"]
    exp = mut.BY_NAME["drop_ds_next"].expected(5)
    blamed = {
        "wg",
        "wi",
        "wf",
        "wo",
        "bg",
        "bi",
        "bf",
        "bo",
        "s[t=0]",
        "s[t=1]",
        "s[t=2]",
        "s[t=3]",
        "h[t=0]",
        "h[t=1]",
        "h[t=2]",
    }
    assert mut.outcome(_fake_report(blamed, {"name": "s", "t": 3}), exp)[0]
    ok, problems = mut.outcome(_fake_report(blamed, {"name": "s", "t": 2}), exp)
    assert not ok and "first divergence" in problems[0]


def test_selftest_fails_when_the_checker_is_blind(monkeypatch):
    real = selftest.check
    monkeypatch.setattr(selftest, "check", lambda model, **kw: real(model, **kw, rtol=1e-2))
    result = selftest.run_selftest(
        selftest.SelftestConfig(), names=["tiny_scale_one_block", "forget_off_by_one"], demo=False
    )
    assert not result.passed
    assert not next(c for c in result.cases if c.name == "tiny_scale_one_block").ok


def test_selftest_fails_when_the_checker_fails_a_right_gradient(monkeypatch):
    real = selftest.check

    def trigger_happy(model, **kw):  # blames wg on every model
        report = real(model, **kw)
        report.rows[0].passed = False
        return report

    monkeypatch.setattr(selftest, "check", trigger_happy)
    result = selftest.run_selftest(selftest.SelftestConfig(), names=["gates_swapped"], demo=False)
    assert not result.cases[0].ok and not result.passed
    assert not result.cases[1].ok  # gates_swapped: the untouched blocks now fail too


def test_demo_wrong_fix_trains_lower_but_is_rejected():
    """The write-up's numbers: 2.611e-06 with the right gradient, 6.078e-09 with the wrong 'fix'."""
    d = selftest.run_demo(wrong_fix_caught=True)
    assert f"{d.right_loss:.3e}" == "2.611e-06" and f"{d.wrong_fix_loss:.3e}" == "6.078e-09"
    assert "lower" in d.line() and "rejects it" in d.line()


def test_cli_writes_both_reports_and_exits_0(tmp_path, capsys):
    rc = cli.main(
        [
            "selftest",
            "--mutant",
            "drop_ds_next",
            "--mutant",
            "gates_swapped",
            "--no-demo",
            "--report-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "2 of 2 mutants caught" in out
    data = json.loads((tmp_path / "selftest.json").read_text())
    assert data["passed"] is True and data["config"] == {
        "x_dim": 3,
        "hidden": 4,
        "steps": 5,
        "seed": 0,
        "loss": "full",
        "dtype": "float64",
        "method": "central",
        "lenient": False,
    }
    assert [c["name"] for c in data["cases"]] == ["reference", "drop_ds_next", "gates_swapped"]
    assert data["cases"][1]["first_divergence"] == {"name": "s", "t": 3}
    md = (tmp_path / "selftest.md").read_text()
    assert "| drop_ds_next" in md and "PASS" in md


def test_cli_exit_1_when_a_mutant_slips_through(tmp_path, monkeypatch, capsys):
    real = selftest.check
    monkeypatch.setattr(selftest, "check", lambda model, **kw: real(model, **kw, rtol=1e-2))
    rc = cli.main(["selftest", "--mutant", "tiny_scale_one_block", "--no-demo", "--no-reports"])
    out = capsys.readouterr().out
    assert rc == 1 and "tiny_scale_one_block: wo passed but must fail" in out and "FAIL" in out
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["--steps", "2"], "--steps must be >= 3"),
        (["--hidden", "0"], "expected an integer >= 1"),
        (["--mutant", "nope"], "--mutant: unknown 'nope'; the catalog has drop_ds_next"),
        (["--dtype", "float16"], "invalid choice"),
    ],
)
def test_cli_usage_errors_write_nothing(tmp_path, capsys, argv, msg):
    rc = cli.main(["selftest", *argv, "--report-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_cli_report_dir_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert cli.main(["selftest", "--report-dir", str(f), "--mutant", "gates_swapped", "--no-demo"]) == 2
    assert "--report-dir" in capsys.readouterr().err


def test_cli_modules_are_cheap_to_import():
    """selftest and fuzz are registered in the CLI: importing them must not import numpy or hypothesis."""
    import subprocess
    import sys

    code = (
        "import sys, gradcheck; heavy = ('numpy', 'hypothesis', 'tabulate'); "
        "before = {m for m in heavy if m in sys.modules}; import gradcheck.cli.selftest, gradcheck.cli.fuzz; "
        "print(sorted(m for m in heavy if m in sys.modules and m not in before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
