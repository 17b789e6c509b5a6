"""``gradcheck report REPORT.json``: every format rendered again from a saved JSON, byte for byte what the run
wrote, without the model; bad input is a usage error naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gradcheck.cli import main

HERE = Path(__file__).resolve().parent
FORMATS = {"html": "gradcheck.html", "markdown": "gradcheck.md", "junit": "gradcheck.xml"}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    shutil.copy(HERE / "user_models.py", tmp_path / "my_models.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    "argv, code",
    [
        (["--model", "my_models:buggy_lstm"], 1),
        (["--x-dim", "3", "--hidden", "4", "--steps", "3", "--mode", "screen"], 0),
        (["--x-dim", "3", "--hidden", "4", "--steps", "3", "--dtype", "float32", "--sample", "5"], 0),
    ],
)
def test_every_format_round_trips_byte_for_byte(in_tmp, argv, code):
    assert main(["run", *argv, "-q"]) == code
    out = in_tmp / "again"
    flags = [a for kind in FORMATS for a in (f"--{kind}", str(out / FORMATS[kind]))]
    assert main(["report", "reports/gradcheck.json", *flags]) == 0
    for name in FORMATS.values():
        assert (out / name).read_bytes() == (in_tmp / "reports" / name).read_bytes(), name


def test_a_changed_report_renders_differently(in_tmp):
    """The round trip compares something: a report with one row's ratio changed renders other bytes."""
    assert main(["run", "--model", "my_models:buggy_lstm", "-q"]) == 1
    d = json.loads((in_tmp / "reports" / "gradcheck.json").read_text())
    d["rows"][0]["ratio"] = 0.5
    (in_tmp / "edited.json").write_text(json.dumps(d))
    assert main(["report", "edited.json", "--markdown", "e.md", "--html", "e.html"]) == 0
    assert (in_tmp / "e.md").read_bytes() != (in_tmp / "reports" / "gradcheck.md").read_bytes()
    assert (in_tmp / "e.html").read_bytes() != (in_tmp / "reports" / "gradcheck.html").read_bytes()


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "no such file"),
        ("{oops", "not JSON"),
        ("[]", "not a gradcheck report (a JSON list)"),
        ('{"rows": []}', "not a gradcheck report: missing passed"),
        ("NEWER", "is newer than this gradcheck reads"),
    ],
)
def test_bad_input_is_a_usage_error_naming_it(in_tmp, capsys, content, words):
    if content == "NEWER":
        assert main(["run", "--x-dim", "2", "--hidden", "2", "--steps", "2", "-q"]) == 0
        d = json.loads((in_tmp / "reports" / "gradcheck.json").read_text())
        content = json.dumps(d | {"schema": d["schema"] + 1})
    if content is not None:
        (in_tmp / "r.json").write_text(content)
    assert main(["report", "r.json", "--html", "o.html"]) == 2
    err = capsys.readouterr().err
    assert words in err and "r.json" in err and len(err.strip().splitlines()) == 1
    assert not (in_tmp / "o.html").exists()
