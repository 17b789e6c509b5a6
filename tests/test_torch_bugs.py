"""The bug catalogue of custom ``torch.autograd.Function``s (``examples/torch_cells.py``): every correct twin
passes, every bug is caught and localised (the input, the worst entry, the first bad step), and whatever
``torch.autograd.gradcheck`` catches (exact or fast mode) we catch too."""

from __future__ import annotations

import pytest

from tests._torch import torch_or_skip

torch = torch_or_skip()

from examples import torch_cells as tc  # noqa: E402
from gradcheck import check  # noqa: E402

T = 4
ALL_LSTM_ROWS = {
    *(f"x[t={t}]" for t in range(T)),
    "h0",
    "c0",
    *(f"{w}:{g}" for w in ("Wx", "Wh", "b") for g in tc.GATES),
}


def ours(bug, **kw):
    return check(tc.make(bug, steps=T, **kw), mode="full")


def _theirs(bug, fast: bool) -> bool:
    """torch.autograd.gradcheck's verdict on the same function at the same point (True: it passes)."""
    inputs = tc.problem(tc.BUGS[bug][0] if bug else "lstm", steps=T)
    args = tuple(a.clone().requires_grad_(True) for a in inputs.values())
    return torch.autograd.gradcheck(tc.function(bug), args, raise_exception=False, fast_mode=fast)


_VERDICTS: dict = {}


def theirs(bug, fast: bool) -> bool:
    if (bug, fast) not in _VERDICTS:
        _VERDICTS[bug, fast] = _theirs(bug, fast)
    return _VERDICTS[bug, fast]


def failing(report) -> set[str]:
    return {r.label for r in report.rows if not r.passed}


@pytest.fixture(scope="module")
def reports():
    return {bug: ours(bug) for bug in [None, *tc.BUGS]}


def test_the_catalogue_has_the_eight_bugs_of_the_issue():
    assert set(tc.BUGS) >= {
        "dropped_carry",
        "wrong_transpose",
        "sign_entry",
        "batch_reduction",
        "wrong_input",
        "scaled_block",
        "saved_inplace",
        "wrong_activation",
    }


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_the_correct_twins_pass_ours_and_torchs(cell):
    fn = tc.lstm_seq if cell == "lstm" else tc.rnn_seq
    inputs = tc.problem(cell, steps=T)
    import gradcheck.torch as gt

    report = gt.check_function(fn, inputs, time_axis={"x": 0}, mode="full")
    assert report.passed, report.verdict()
    assert max(r.ratio for r in report.rows) < 0.1
    args = tuple(a.clone().requires_grad_(True) for a in inputs.values())
    assert torch.autograd.gradcheck(fn, args)


@pytest.mark.parametrize("bug", list(tc.BUGS))
def test_every_bug_is_caught_and_whatever_torch_catches_we_catch(bug, reports):
    report = reports[bug]
    assert not report.passed, f"{bug}: {report.verdict()}"
    for fast in (False, True):
        if not theirs(bug, fast):
            assert not report.passed  # torch caught it: so did we (the catalogue's claim, per bug)
    assert reports[None].passed, reports[None].verdict()


def test_torch_fast_mode_misses_the_scaled_block_that_we_catch(reports):
    """The 1% scaled block is caught by torch's exact mode and by us, not by its fast mode (one projection)."""
    assert not theirs("scaled_block", fast=False)
    assert theirs("scaled_block", fast=True)
    assert failing(reports["scaled_block"]) == {"Wh:o"}


@pytest.mark.parametrize("bug", ["dropped_carry", "saved_inplace", "wrong_input"])
def test_bugs_in_what_flows_back_a_step_are_located_at_T_minus_2(bug, reports):
    report = reports[bug]
    assert report.first_bad_step == {"name": "x", "t": T - 2}
    assert f"x[t={T - 1}]" not in failing(report)
    assert {f"x[t={T - 2}]", "h0", "c0"} <= failing(report)


def test_a_wrong_activation_derivative_fails_the_last_step_and_with_one_step_only_its_gate(reports):
    assert reports["wrong_activation"].first_bad_step == {"name": "x", "t": T - 1}
    one = check(tc.make("wrong_activation", steps=1), mode="full")
    assert {r for r in failing(one) if ":" in r} == {"Wx:g", "Wh:g", "b:g"}
    assert "c0" not in failing(one)


@pytest.mark.parametrize(
    "bug, rows, worst",
    [
        ("sign_entry", {"Wx:i"}, [0, 0]),
        ("batch_reduction", {"b:i", "b:f", "b:o", "b:g"}, None),
        ("scaled_block", {"Wh:o"}, None),
        ("wrong_transpose", {"Wh"}, None),
    ],
)
def test_bugs_confined_to_one_block_fail_that_block_alone(bug, rows, worst, reports):
    report = reports[bug]
    assert failing(report) == rows
    assert report.first_bad_step is None  # no input row fails: nothing to locate in time
    top = report.worst_first()[0]
    if worst is not None:
        assert top.worst_index == worst
    if bug == "wrong_transpose":  # the transpose is right on the diagonal: the worst entry is off it
        assert top.worst_index[0] != top.worst_index[1]


def test_every_lstm_row_is_reported_by_name(reports):
    assert {r.label for r in reports[None].rows} == ALL_LSTM_ROWS


def test_the_catalogue_table_in_docs_torch_md_is_what_the_code_gives(reports):
    """Regenerate with `python -m examples.torch_compare --table` (the default sizes are these tests' own)."""
    from pathlib import Path

    from examples.torch_compare import table

    doc = (Path(__file__).resolve().parent.parent / "docs" / "torch.md").read_text()
    lines = table(reports, lambda bug, fast: not theirs(bug, fast))
    assert "\n".join(lines) in doc
