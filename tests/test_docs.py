"""The README's Python examples run, and its first code block is the two-line contract CI relies on."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
pytestmark = pytest.mark.skipif(not README.exists(), reason="needs the source tree")


def blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_first_block_has_two_commands():
    first = re.search(r"```\w*\n(.*?)```", README.read_text(), flags=re.S).group(1)
    lines = [ln for ln in first.splitlines() if ln.strip()]
    assert len(lines) == 2
    assert lines[0].startswith("pip install .") and "gradcheck run" in lines[0]
    assert "pytest" in lines[1]


@pytest.mark.parametrize("code", blocks("python"))
def test_python_examples_run(code, capsys):
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    for expected in re.findall(r"# (PASS: [^.]*)", code):
        assert expected in out
