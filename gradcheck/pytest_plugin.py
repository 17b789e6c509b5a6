"""pytest plugin: a ``gradcheck`` fixture, ``--gradcheck-*`` options with ini twins, a ``gradcheck`` marker.

Registered through the ``pytest11`` entry point named ``gradcheck.pytest_plugin`` (the module's own name, so
``-p gradcheck.pytest_plugin`` also works, installed or not; ``-p no:gradcheck.pytest_plugin`` disables it).
Importing it is cheap: numpy and the checker are imported only when a test uses the fixture.

    def test_gradients(gradcheck):
        gradcheck(MyLSTM(x_dim=3, hidden=4, steps=3))        # AssertionError with the failing rows' table

    @pytest.mark.gradcheck(method="richardson", rtol=1e-6)  # per-test overrides (closest marker wins)
    def test_gradients_tighter(gradcheck):
        report = gradcheck.check(MyLSTM(...))                # the Report, without asserting

Options, in order of precedence: keyword arguments of the call > the closest ``@pytest.mark.gradcheck(...)``
> ``--gradcheck-method/--gradcheck-rtol/--gradcheck-atol/--gradcheck-seed`` > the ini values ``gradcheck_method``,
``gradcheck_rtol``, ``gradcheck_atol``, ``gradcheck_seed`` > the checker's defaults (seed 0).

Every check records JUnit properties on the test (``--junitxml``): ``gradcheck_passed``, ``gradcheck_method``,
``gradcheck_seed``, and the worst row (highest error/tolerance) with its errors: ``gradcheck_worst_row``,
``gradcheck_worst_abs_err``, ``gradcheck_worst_rel_err``, ``gradcheck_worst_err_over_tol``. They are appended to
``node.user_properties``, as ``record_property`` does, without its warning under ``junit_family=xunit2``.
"""

from __future__ import annotations

import argparse

import pytest

from .options import AUTO, METHODS, argtype, count_text, number_text

MARKER_KEYS = ("method", "eps", "rtol", "atol", "seed", "diagnose")
PLUGIN_METHODS = (AUTO, *METHODS)


def _method(text: str) -> str:
    if text not in PLUGIN_METHODS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(PLUGIN_METHODS)}, got {text!r}")
    return text


OPTIONS = {  # name -> (parser, help)
    "method": (
        _method,
        f"finite-difference method: {', '.join(PLUGIN_METHODS)} (default auto, as gradcheck run)",
    ),
    "rtol": (argtype(number_text), "relative tolerance (default: per method and dtype)"),
    "atol": (argtype(number_text, allow_zero=True), "absolute tolerance floor (default 0)"),
    "seed": (argtype(count_text, lowest=0), "seed recorded in the report (default 0)"),
}


def pytest_addoption(parser):
    group = parser.getgroup("gradcheck", "gradient checks (gradcheck fixture)")
    for name, (conv, help_) in OPTIONS.items():
        group.addoption(
            f"--gradcheck-{name}",
            dest=f"gradcheck_{name}",
            type=conv,
            default=None,
            help=f"{help_}; ini: gradcheck_{name}",
        )
        parser.addini(f"gradcheck_{name}", f"gradcheck fixture: {help_}", default=None)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "gradcheck(method=..., eps=..., rtol=..., atol=..., seed=...): options of the gradcheck fixture for this test",
    )
    config.stash[_OPTIONS_KEY] = session_options(config)


_OPTIONS_KEY = pytest.StashKey[dict]()


def session_options(config) -> dict:
    """Options from the command line, else from the ini file; ini values are validated here (usage error)."""
    out = {}
    for name, (conv, _) in OPTIONS.items():
        value = config.getoption(f"gradcheck_{name}")
        if value is None:
            raw = config.getini(f"gradcheck_{name}")
            if raw not in (None, ""):
                try:
                    value = conv(str(raw).strip())
                except argparse.ArgumentTypeError as exc:
                    raise pytest.UsageError(f"ini option gradcheck_{name}: {exc}") from None
        if value is not None:
            out[name] = value
    return out


def marker_options(node) -> dict:
    """The ``@pytest.mark.gradcheck(...)`` keywords, the closest marker winning."""
    out: dict = {}
    for mark in node.iter_markers("gradcheck"):  # closest first
        if mark.args:
            raise pytest.UsageError(
                f"{node.nodeid}: @pytest.mark.gradcheck takes keyword arguments only ({', '.join(MARKER_KEYS)})"
            )
        for key, value in mark.kwargs.items():
            if key not in MARKER_KEYS:
                import difflib

                hint = difflib.get_close_matches(key, MARKER_KEYS, n=1)
                raise pytest.UsageError(
                    f"{node.nodeid}: @pytest.mark.gradcheck: unknown option {key!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else f" (valid: {', '.join(MARKER_KEYS)})")
                )
            out.setdefault(key, value)
    return out


class GradcheckFixture:
    """What the ``gradcheck`` fixture returns. ``options``: the effective options of this test."""

    def __init__(self, node, options: dict):
        self.node, self.options = node, dict(options)

    def check(self, model, **overrides):
        """Run the check and record its JUnit properties; return the Report (no assertion)."""
        from .checker import check
        from .output.text import sci

        report = check(model, **{**self.options, **overrides})
        worst = report.worst_first()[0] if report.rows else None
        props = [
            ("gradcheck_passed", str(report.passed).lower()),
            ("gradcheck_method", report.method),
            ("gradcheck_seed", str(report.seed)),
        ]
        if worst is not None:
            props += [
                ("gradcheck_worst_row", worst.label),
                ("gradcheck_worst_abs_err", sci(worst.max_abs_err)),
                ("gradcheck_worst_rel_err", sci(worst.max_rel_err)),
                ("gradcheck_worst_err_over_tol", sci(worst.ratio)),
            ]
        self.node.user_properties.extend(props)
        return report

    def __call__(self, model, **overrides):
        """Run the check; raise ``AssertionError`` with the failing rows' table if a row fails; return the Report."""
        __tracebackhide__ = True
        from .testing import failure_text

        report = self.check(model, **overrides)
        if not report.passed:
            raise AssertionError(failure_text(report))
        return report


@pytest.fixture
def gradcheck(request) -> GradcheckFixture:
    """Check a model's gradients with the session's ``--gradcheck-*`` options and this test's marker."""
    options = {**request.config.stash[_OPTIONS_KEY], **marker_options(request.node)}
    return GradcheckFixture(request.node, options)
