"""Gradient checks inside test suites: ``assert_gradients(model, **options)``.

    from gradcheck.testing import assert_gradients

    def test_my_lstm_gradients():
        assert_gradients(MyLSTM(x_dim=3, hidden=4, steps=3), method="central", seed=0)

On failure the ``AssertionError`` message is the table of failing rows, worst first, with the analytic side (the
model's ``gradients()``) and the numerical side (finite differences of ``loss()``) named in the headers, the
step-size re-check of each failing row, and the verdict. A model that raises, or that does not follow the protocol,
is an error (:class:`gradcheck.ModelError`, :class:`gradcheck.ProtocolError`), not a failed assertion.
"""

from __future__ import annotations


def assert_gradients(model, **options):
    """Check ``model`` with :func:`gradcheck.check` (``options``: its keywords, e.g. ``method``, ``eps``, ``rtol``,
    ``atol``, ``seed``) and raise ``AssertionError`` listing the failing rows if any fails; return the Report."""
    __tracebackhide__ = True
    from .checker import check

    report = check(model, **options)
    if not report.passed:
        raise AssertionError(failure_text(report))
    return report


def failure_text(report) -> str:
    """The assertion message: what was compared, the failing rows' table, their diagnoses, the verdict."""
    from .output.text import details, failing_table, sci

    s = report.settings
    bad = report.failing
    lines = [
        f"gradcheck: {len(bad)} of {len(report.rows)} rows fail for {report.model}",
        "analytic = the model's gradient, from gradients(params); "
        "numerical = finite differences of loss(params, taps)",
        f"method {report.method}, {s.get('dtype', '?')}, eps {sci(s.get('eps'))}, rtol {sci(s.get('rtol'))}, "
        f"atol {sci(s.get('atol'))}, seed {report.seed}",
        "",
        failing_table(report),
    ]
    det = details(report)
    if det:
        lines += [""] + det
    lines += ["", report.verdict()]
    return "\n".join(lines)
