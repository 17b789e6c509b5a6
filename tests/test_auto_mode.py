"""mode "auto": a full check when its estimated cost fits the budget, else the screen; the estimate is told up
front to a progress callback that asks for it."""

from __future__ import annotations

import pytest
from _planted import Planted, entry_bug

from gradcheck import ProtocolError, ReferenceLSTM, check


def test_auto_checks_every_entry_when_the_full_check_fits_the_budget():
    report = check(ReferenceLSTM(3, 4, 3), budget=1e9)
    s = report.settings
    assert (s["mode_requested"], s["mode"]) == ("auto", "full")
    assert s["coverage"]["entries_checked"] == s["coverage"]["entries_total"]
    assert s["cost"]["evaluations_full"] == 2 * s["coverage"]["entries_total"]  # central: 2 per entry
    assert report.timings["estimate_full_check"] > 0


def test_auto_screens_when_the_full_check_would_exceed_the_budget():
    report = check(ReferenceLSTM(3, 4, 3), budget=1e-12)
    assert report.settings["mode"] == "screen" and report.method == "complex"  # auto screens by complex step
    assert report.passed and report.settings["coverage"]["rows_screened_only"]


def test_auto_screen_still_catches_a_planted_error():
    model = Planted(3, 4, 3, plant=entry_bug("wi", (1, 2), rel=1e-3))
    report = check(model, budget=1e-12)
    assert report.settings["mode"] == "screen" and not report.passed
    assert [r.label for r in report.failing] == ["wi"]


def test_progress_start_is_told_the_total_and_the_estimate():
    seen = {}

    class Progress:
        def __call__(self, n=1):
            seen["count"] = seen.get("count", 0) + n

        def start(self, evaluations, seconds, budget):
            seen.update(evaluations=evaluations, seconds=seconds, budget=budget)

    report = check(ReferenceLSTM(3, 4, 3), mode="full", progress=Progress(), batched=False, diagnose=False)
    assert seen["evaluations"] == seen["count"] == 2 * report.settings["coverage"]["entries_total"]
    assert seen["seconds"] > 0 and seen["budget"] == 10.0


@pytest.mark.parametrize("budget", [0, -1, float("nan"), "soon"])
def test_a_bad_budget_is_a_protocol_error(budget):
    with pytest.raises(ProtocolError, match="budget"):
        check(ReferenceLSTM(3, 4, 3), budget=budget)
