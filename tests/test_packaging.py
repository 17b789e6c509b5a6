"""The wheel really contains both packages (a flat layout makes it easy to ship gradcheck without lstm_ref)."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree")
def test_wheel_contains_both_packages_and_the_console_script(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("gradcheck-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in (
        "lstm_ref/__init__.py",
        "lstm_ref/model.py",
        "lstm_ref/demo.py",
        "gradcheck/__init__.py",
        "gradcheck/__main__.py",
        "gradcheck/cli/app.py",
        "gradcheck/fast/chunked.py",
        "gradcheck/output/text.py",
        "gradcheck/lstm/reference.py",
        "gradcheck/checker.py",
    ):
        assert module in names, f"{module} missing from {wheel.name}"
    assert not any(n.startswith("tests/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gradcheck = gradcheck.__main__:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
