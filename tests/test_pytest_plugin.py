"""The pytest plugin (through ``pytester``) and ``gradcheck.testing.assert_gradients``."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import lstm_ref
from gradcheck import ModelError, check
from gradcheck.lstm.reference import ReferenceLSTM
from gradcheck.options import METHODS
from gradcheck.testing import assert_gradients

pytest_plugins = ["pytester"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = ("-p", "gradcheck.pytest_plugin")

MODELS = """
import lstm_ref
from gradcheck.lstm.reference import ReferenceLSTM

def _wrong_bo(params, trace, dl_dh):
    bp = lstm_ref.backward(params, trace, dl_dh)
    bp.param_grads["bo"] = bp.param_grads["bo"] * 1.01
    return bp

def correct():
    return ReferenceLSTM(2, 3, 2)

def buggy():
    return ReferenceLSTM(2, 3, 2, backward=_wrong_bo)
"""


def wrong_bo(params, trace, dl_dh):
    bp = lstm_ref.backward(params, trace, dl_dh)
    bp.param_grads["bo"] = bp.param_grads["bo"] * 1.01
    return bp


@pytest.fixture
def tester(pytester):
    pytester.makepyfile(gc_models=MODELS)
    pytester.syspathinsert()
    return pytester


# ------------------------------------------------------------------------------------------ assert_gradients


def test_assert_gradients_passes_a_correct_model_and_returns_the_report():
    report = assert_gradients(ReferenceLSTM(2, 3, 2), seed=4)
    assert report.passed and report.seed == 4


def test_assert_gradients_fails_with_the_failing_rows_table_naming_each_side():
    with pytest.raises(AssertionError) as info:
        assert_gradients(ReferenceLSTM(2, 3, 2, backward=wrong_bo))
    msg = str(info.value)
    assert "1 of" in msg and "rows fail" in msg
    assert "analytic (model's gradient)" in msg and "numerical (finite differences)" in msg
    table_rows = [line.strip() for line in msg.splitlines() if line.strip().startswith("FAIL ")]
    assert len(table_rows) == 1 and table_rows[0].split()[1] == "bo"


def test_assert_gradients_lets_a_raising_model_raise():
    def boom(params, trace, dl_dh):
        raise RuntimeError("boom")

    with pytest.raises(ModelError, match="boom"):
        assert_gradients(ReferenceLSTM(2, 3, 2, backward=boom))


# ---------------------------------------------------------------------------------------------- the plugin


def test_plugin_import_is_cheap():
    code = "import sys, gradcheck.pytest_plugin; print(sorted(m for m in ('numpy', 'tabulate') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]"


def test_plugin_methods_match_the_checker():
    from gradcheck import pytest_plugin

    assert pytest_plugin.METHODS == tuple(METHODS)


def test_fixture_passes_a_correct_model_and_fails_a_buggy_one(tester):
    tester.makepyfile(
        test_models="""
        from gc_models import buggy, correct

        def test_correct(gradcheck):
            assert gradcheck(correct()).passed

        def test_buggy(gradcheck):
            gradcheck(buggy())

        def test_report_without_assert(gradcheck):
            assert not gradcheck.check(buggy()).passed
    """
    )
    result = tester.runpytest(*PLUGIN)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: gradcheck: 1 of * rows fail*",
            "*analytic = the model's gradient*numerical = finite differences*",
            "*FAIL*bo*",
        ]
    )


def test_options_come_from_command_line_over_ini_and_the_marker_wins(tester):
    tester.makeini("[pytest]\ngradcheck_method = richardson\ngradcheck_seed = 3\ngradcheck_rtol = 1e-5\n")
    tester.makepyfile(
        test_opts="""
        import pytest
        from gc_models import correct

        def test_session(gradcheck):
            r = gradcheck(correct())
            print("SESSION", r.method, r.seed, r.settings["rtol"])

        @pytest.mark.gradcheck(method="complex", seed=9)
        def test_marker(gradcheck):
            r = gradcheck(correct())
            print("MARKER", r.method, r.seed, r.settings["rtol"])

        def test_call_override(gradcheck):
            print("CALL", gradcheck(correct(), seed=21).seed)
    """
    )
    result = tester.runpytest(*PLUGIN, "-s", "--gradcheck-seed", "5")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*SESSION richardson 5 1e-05*"])
    result.stdout.fnmatch_lines(["*MARKER complex 9 1e-05*"])
    result.stdout.fnmatch_lines(["*CALL 21*"])


def test_bad_option_values_are_usage_errors(tester):
    tester.makepyfile(test_x="def test_x(gradcheck): pass")
    result = tester.runpytest(*PLUGIN, "--gradcheck-rtol", "-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gradcheck-rtol*expected a finite number > 0*"])
    result = tester.runpytest(*PLUGIN, "--gradcheck-method", "forward")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    tester.makeini("[pytest]\ngradcheck_seed = minus one\n")
    result = tester.runpytest(*PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*gradcheck_seed*expected an integer >= 0*"])


def test_a_misspelt_marker_option_is_reported(tester):
    tester.makepyfile(
        test_x="""
        import pytest
        from gc_models import correct

        @pytest.mark.gradcheck(rtoll=1e-3)
        def test_x(gradcheck):
            gradcheck(correct())
    """
    )
    result = tester.runpytest(*PLUGIN)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown option 'rtoll'*did you mean 'rtol'*"])


def test_options_are_one_group_with_ini_twins_and_the_marker_is_registered(tester):
    result = tester.runpytest(*PLUGIN, "--help")
    text = result.stdout.str()
    group = text[text.index("gradient checks (gradcheck fixture):") :]
    group = group[: group.index("\n\n")]
    for name in ("method", "rtol", "atol", "seed"):
        assert f"--gradcheck-{name}" in group
        assert f"gradcheck_{name} (string):" in text or f"gradcheck_{name} (string)" in text
    result = tester.runpytest(*PLUGIN, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.gradcheck(*"])
    tester.makepyfile(
        test_strict="""
        import pytest

        @pytest.mark.gradcheck(seed=1)
        def test_x(): pass
    """
    )
    tester.runpytest(*PLUGIN, "--strict-markers").assert_outcomes(passed=1)


def test_the_worst_error_is_a_junit_property_of_the_test(tester):
    tester.makepyfile(
        test_props="""
        from gc_models import buggy, correct

        def test_good(gradcheck):
            gradcheck(correct())

        def test_bad(gradcheck):
            gradcheck(buggy())
    """
    )
    tester.runpytest(*PLUGIN, "--junitxml=out.xml").assert_outcomes(passed=1, failed=1)
    root = ET.parse(tester.path / "out.xml").getroot()
    props = {
        c.get("name"): {p.get("name"): p.get("value") for p in c.findall("properties/property")}
        for c in root.iter("testcase")
    }
    expected = check(__import__("gc_models").buggy()).worst_first()[0]
    bad = props["test_bad"]
    assert bad["gradcheck_passed"] == "false" and bad["gradcheck_worst_row"] == expected.label == "bo"
    assert float(bad["gradcheck_worst_rel_err"]) == pytest.approx(expected.max_rel_err, rel=1e-3)
    assert float(bad["gradcheck_worst_err_over_tol"]) > 1
    good = props["test_good"]
    assert good["gradcheck_passed"] == "true" and float(good["gradcheck_worst_err_over_tol"]) < 1


DOC = os.path.join(ROOT, "docs", "ci.md")


@pytest.mark.skipif(not os.path.exists(DOC), reason="needs the source tree")
def test_the_documented_plugin_example_passes(pytester):
    import re

    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", open(DOC).read(), flags=re.S) if "def test_" in b
    ]
    pytester.makepyfile(test_doc_example=block)
    pytester.runpytest(
        *PLUGIN, "--strict-markers", "-W", "error::pytest.PytestUnknownMarkWarning"
    ).assert_outcomes(passed=2)
