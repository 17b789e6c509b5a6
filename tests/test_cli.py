"""`gradcheck run`: exit codes, the JSON contract, --model loading, usage errors that write nothing."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradcheck.cli import main

SMALL = ["--x-dim", "3", "--hidden", "4", "--steps", "3"]
HERE = Path(__file__).parent


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty directory holding a copy of the outside-written user models."""
    shutil.copy(HERE / "user_models.py", tmp_path / "my_models.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_reference_passes_exit_0(in_tmp, capsys):
    assert main(["run", *SMALL, "--json", "r.json"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "\nreproduce: gradcheck run " in out and out.rstrip().endswith("--seed 0")
    data = json.loads((in_tmp / "r.json").read_text())
    assert data["passed"] is True and data["seed"] == 0 and data["method"] == "central"
    assert data["first_bad_step"] is None
    kinds = [(r["kind"], r["name"], r["t"]) for r in data["rows"]]
    assert ("param", "wg", None) in kinds and ("state", "s", 2) in kinds and len(kinds) == 8 + 6
    for r in data["rows"]:
        assert set(r) >= {
            "kind",
            "name",
            "t",
            "passed",
            "max_abs_err",
            "max_rel_err",
            "worst_index",
            "analytic",
            "numeric",
        }
        assert isinstance(r["worst_index"], list) and all(isinstance(k, int) for k in r["worst_index"])


def test_buggy_user_model_exit_1_with_rows(in_tmp, capsys):
    assert main(["run", "--model", "my_models:buggy_lstm", "--json", "r.json"]) == 1
    out = capsys.readouterr().out
    assert "first divergence going back in time: s at t=3" in out
    data = json.loads((in_tmp / "r.json").read_text())
    assert data["passed"] is False and data["first_bad_step"] == {"name": "s", "t": 3}
    bad = {(r["name"], r["t"]) for r in data["rows"] if not r["passed"]}
    assert bad == {
        ("Wx", None),
        ("Wh", None),
        ("b", None),
        ("h", 0),
        ("h", 1),
        ("h", 2),
        ("s", 0),
        ("s", 1),
        ("s", 2),
        ("s", 3),
    }


def test_correct_user_models_exit_0(in_tmp):
    assert main(["run", "--model", "my_models:correct_lstm"]) == 0
    assert main(["run", "--model", "my_models:linear"]) == 0


def test_errors_printed_in_scientific_notation(in_tmp, capsys):
    main(["run", *SMALL])
    out = capsys.readouterr().out
    assert "e-" in out and " 0.000 " not in out and "0.0000 " not in out


@pytest.mark.parametrize(
    "argv,match",
    [
        (["run", "--hidden", "0"], "--hidden"),
        (["run", "--steps", "-3"], "--steps"),
        (["run", "--eps", "nan"], "--eps"),
        (["run", "--rtol", "0"], "--rtol"),
        (["run", "--method", "secant"], "--method"),
        (["run", "--model", "no_such_module:f"], "cannot import"),
        (["run", "--model", "my_models:no_factory"], "no 'no_factory'"),
        (["run", "--model", "my_models"], "MODULE:FACTORY"),
        (["run", "--model", "my_models:not_a_model"], "protocol"),
        (["run", "--model", "my_models:linear", "--method", "complex"], "complex"),
        (["run", *SMALL, "--eps", "1e-30"], "x \\+ eps == x"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_one_line_nothing_written(in_tmp, capsys, argv, match):
    assert main([*argv, "--json", "r.json"] if argv[0] == "run" else argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert pytest.importorskip("re").search(match, err), err
    assert not (in_tmp / "r.json").exists()


def test_model_that_raises_exit_3(in_tmp, capsys):
    assert main(["run", "--model", "my_models:raising", "--json", "r.json"]) == 3
    err = capsys.readouterr().err
    assert "boom: the user's loss failed" in err and "Traceback" not in err
    assert not (in_tmp / "r.json").exists()


def test_help_lists_exit_codes(capsys):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for code in ("0", "1", "2", "3"):
        assert f"  {code}  " in out


def test_python_dash_m_works(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gradcheck", "run", *SMALL], capture_output=True, text=True, cwd=HERE.parent
    )
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout
