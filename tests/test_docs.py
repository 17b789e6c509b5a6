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


def _samples_module():
    import importlib.util
    import sys

    if "doc_samples" not in sys.modules:
        spec = importlib.util.spec_from_file_location("doc_samples", README.parent / "docs" / "samples.py")
        sys.modules["doc_samples"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["doc_samples"])
    return sys.modules["doc_samples"]


def _all_samples():
    mod = _samples_module()
    return [(s.path, s) for path in mod.FILES for s in mod.samples(path)]


@pytest.mark.parametrize(
    "path, sample", _all_samples(), ids=lambda v: v if isinstance(v, str) else v.command[:60]
)
def test_every_sample_output_is_what_its_command_prints(path, sample):
    """Regenerate with `python docs/samples.py` after a change that alters what a command prints."""
    assert _samples_module().run(sample) == sample.body, (
        f"{path}: `{sample.command}` prints something else now"
    )


def test_a_drifted_sample_is_detected(tmp_path):
    mod = _samples_module()
    (s,) = [x for x in mod.samples("README.md") if "--variant tanh" in x.command][:1]
    drifted = mod.Sample(s.path, s.command, s.options, s.body.replace("PASS", "FAIL"), s.span)
    assert mod.run(drifted) != drifted.body
