"""Before any row: the analytic side is validated, and every mistake in shapes or taps is a usage error that names
the method, the key and the shapes (never a failure deep inside a later loss call, never a misleading row)."""

from __future__ import annotations

import numpy as np
import pytest
from user_models import UserLSTM

from gradcheck import ProtocolError, check
from gradcheck.cli import main


class Transposed(UserLSTM):
    """State gradients returned step-last: (hidden, T) instead of (T, hidden)."""

    def gradients(self, params):
        pg, sg = super().gradients(params)
        return pg, {k: v.T.copy() for k, v in sg.items()}


class IgnoresTaps(UserLSTM):
    def loss(self, params, taps=None):
        return super().loss(params, None)


class ZeroTapMoves(UserLSTM):
    def loss(self, params, taps=None):
        return super().loss(params, taps) + (1e-3 if taps is not None else 0.0)


def test_a_transposed_state_gradient_is_a_usage_error_naming_the_shapes():
    with pytest.raises(ProtocolError) as err:
        check(Transposed())
    msg = str(err.value)
    assert "loss(params, taps) with zero taps" in msg and "h: (4, 5)" in msg and "(T, *state_shape)" in msg


def test_a_loss_that_ignores_taps_is_a_usage_error_not_a_wall_of_failing_rows():
    with pytest.raises(ProtocolError, match=r"loss\(\) ignores taps\['h'\]"):
        check(IgnoresTaps())


def test_a_zero_tap_that_changes_the_loss_is_a_usage_error():
    with pytest.raises(ProtocolError, match="a zero tap must change nothing"):
        check(ZeroTapMoves())


def test_the_correct_model_passes_the_validation():
    assert check(UserLSTM()).passed


def test_state_gradient_that_is_not_an_array_is_named():
    class Bad(UserLSTM):
        def gradients(self, params):
            pg, sg = super().gradients(params)
            return pg, {**sg, "s": "oops"}

    with pytest.raises(ProtocolError, match=r"gradients\(params\)\[1\]\['s'\]: a state gradient must be"):
        check(Bad())


def test_parameter_gradient_of_a_wrong_dtype_is_named():
    class Bad(UserLSTM):
        def gradients(self, params):
            pg, sg = super().gradients(params)
            return {**pg, "b": np.array([["x"] * 4] * 4)}, sg

    with pytest.raises(ProtocolError, match=r"\['b'\]: expected a numeric array"):
        check(Bad())


def test_validation_errors_exit_2_on_the_command_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "bad_models.py").write_text(
        "from user_models import UserLSTM\n"
        "class IgnoresTaps(UserLSTM):\n"
        "    def loss(self, params, taps=None):\n"
        "        return super().loss(params, None)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["run", "--model", "bad_models:IgnoresTaps", "--no-reports"]) == 2
    err = capsys.readouterr().err
    assert "ignores taps['h']" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "reports").exists()
