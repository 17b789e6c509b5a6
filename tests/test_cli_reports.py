"""`gradcheck run` as a CI gate: report files, --format, exit codes, GitHub summary/annotations, no progress or
colour in pipes. Runs ``cli.main`` in-process in a temporary directory (small models only)."""

import io
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from gradcheck import cli
from gradcheck.cli.progress import Progress, progress_enabled
from gradcheck.output.text import color_enabled

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--x-dim", "3", "--hidden", "4", "--steps", "3"]
FILES = ("gradcheck.html", "gradcheck.json", "gradcheck.xml", "gradcheck.md")

USER_MODELS = textwrap.dedent("""
    import lstm_ref
    from gradcheck.lstm.reference import ReferenceLSTM

    def _wrong_wi(params, trace, dl_dh):
        bp = lstm_ref.backward(params, trace, dl_dh)
        bp.param_grads["wi"] = bp.param_grads["wi"] * 1.01
        return bp

    def buggy():
        return ReferenceLSTM(3, 4, 3, backward=_wrong_wi)

    def correct():
        return ReferenceLSTM(3, 4, 3)

    class Raises:
        def parameters(self):
            import numpy as np
            return {"w": np.ones(3)}
        def loss(self, params, taps=None):
            return float((params["w"] ** 2).sum())
        def gradients(self, params):
            raise RuntimeError("backward exploded")

    def raising():
        return Raises()

    def not_a_model():
        return 42
""")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """Each test in its own directory, with no CI or gradcheck variables from the outside."""
    for name in list(os.environ):
        if name.startswith(("GRADCHECK_", "GITHUB_")) or name == "NO_COLOR":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def models(tmp_path, monkeypatch, request):
    """A user module in the current directory, under a name unique to the test (no import cache clashes)."""
    name = "usermodels_" + request.node.name.replace("[", "_").replace("]", "_").replace("-", "_")
    (tmp_path / f"{name}.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def run(*argv):
    return cli.main(["run", *argv])


def files_in(d):
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# ------------------------------------------------------------------------------------------ exit codes


def test_a_correct_model_exits_0_and_writes_the_four_reports(tmp_path, capsys):
    assert run(*SMALL) == 0
    assert files_in(tmp_path / "reports") == sorted(FILES)
    out, err = capsys.readouterr()
    assert "PASS" in out and "reports written" in err
    d = json.loads((tmp_path / "reports" / "gradcheck.json").read_text())
    assert d["passed"] is True


def test_a_buggy_user_model_exits_1_with_junit_matching_json_rows(tmp_path, models, capsys):
    assert run("--model", f"{models}:buggy") == 1
    d = json.loads((tmp_path / "reports" / "gradcheck.json").read_text())
    ts = ET.parse(tmp_path / "reports" / "gradcheck.xml").getroot().find("testsuite")
    cases = ts.findall("testcase")
    assert len(cases) == len(d["rows"])
    assert len(ts.findall("testcase/failure")) == sum(not r["passed"] for r in d["rows"]) == 1
    assert [c.get("name") for c in cases if c.find("failure") is not None] == ["wi"]
    md = (tmp_path / "reports" / "gradcheck.md").read_text()
    assert md.count("\n|") == 2 + len(d["rows"]) and "FAIL" in md


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--hidden", "0"], "--hidden"),
        (["--steps", "-3"], "--steps"),
        (["--eps", "nan"], "--eps"),
        (["--format", "yaml"], "--format"),
        (["--model", "no_such_module:make"], "cannot import"),
        (["--model", "{models}:missing"], "has no 'missing'"),
        (["--model", "{models}:not_a_model"], "protocol"),
        (["--json", "."], "is a directory"),
        (["--junit", "reports/gradcheck.json"], "both write"),
    ],
)
def test_usage_errors_exit_2_with_one_line_and_write_nothing(tmp_path, models, capsys, argv, needle):
    old = tmp_path / "reports" / "gradcheck.json"
    old.parent.mkdir()
    old.write_text("previous report\n")
    argv = [a.replace("{models}", models) for a in argv]
    assert run(*SMALL, *argv) == 2
    out, err = capsys.readouterr()
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert files_in(tmp_path / "reports") == ["gradcheck.json"] and old.read_text() == "previous report\n"


def test_a_model_that_raises_exits_3_shows_its_message_and_writes_nothing(tmp_path, models, capsys):
    assert run("--model", f"{models}:raising") == 3
    err = capsys.readouterr().err
    assert "backward exploded" in err and "Traceback" not in err
    assert not (tmp_path / "reports").exists()


def test_help_lists_the_exit_codes(capsys):
    assert cli.main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for code in (
        "0  every row passes",
        "1  a row fails",
        "2  usage or configuration error",
        "3  the model raised",
        "130  interrupted",
    ):
        assert code in out


# ----------------------------------------------------------------------------------------------- output


def test_format_json_puts_only_json_on_stdout_and_the_human_text_on_stderr(tmp_path, models, capsys):
    assert run("--model", f"{models}:buggy", "--format", "json") == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == json.loads((tmp_path / "reports" / "gradcheck.json").read_text())
    assert "FAIL: 1 of" in err and "max abs err" in err


def test_format_markdown_prints_the_markdown_report(tmp_path, capsys):
    assert run(*SMALL, "--format", "markdown") == 0
    out = capsys.readouterr().out
    assert out == (tmp_path / "reports" / "gradcheck.md").read_text()


def test_no_reports_writes_nothing_but_explicit_paths(tmp_path, capsys):
    assert run(*SMALL, "--no-reports") == 0
    assert files_in(tmp_path) == []
    assert run(*SMALL, "--no-reports", "--junit", "out/j.xml") == 0
    assert files_in(tmp_path) == ["out"] and files_in(tmp_path / "out") == ["j.xml"]


def test_report_dir_and_explicit_paths(tmp_path):
    assert run(*SMALL, "--report-dir", "ci/gc", "--json", "g.json") == 0
    assert files_in(tmp_path / "ci" / "gc") == ["gradcheck.html", "gradcheck.md", "gradcheck.xml"]
    assert json.loads((tmp_path / "g.json").read_text())["passed"] is True


def test_no_progress_or_colour_characters_in_pipes(tmp_path, models, capsys):
    assert run("--model", f"{models}:buggy") == 1
    out, err = capsys.readouterr()
    for text in (out, err, *(p.read_text() for p in (tmp_path / "reports").iterdir())):
        assert "\r" not in text and "\033" not in text


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_only_on_a_terminal_and_not_when_quiet():
    assert progress_enabled(FakeTTY(), quiet=False)
    assert not progress_enabled(FakeTTY(), quiet=True)
    assert not progress_enabled(io.StringIO(), quiet=False)


def test_progress_line_counts_evaluations_and_is_erased():
    ticks = iter(range(100))
    stream = FakeTTY()
    p = Progress(stream, interval=1.0, clock=lambda: float(next(ticks)))
    for _ in range(3):
        p(5)
    assert "15 loss evaluations" in stream.getvalue().split("\r")[-1]
    p.close()
    assert stream.getvalue().endswith("\r\033[K")


def test_progress_line_with_a_total_shows_the_share_and_the_time_left():
    ticks = iter([0.0, 0.0, 1.0, 3.0, 5.0, 7.0])
    stream = FakeTTY()
    p = Progress(stream, total=1000, interval=0.5, clock=lambda: next(ticks))
    p(100)  # at 1 s (reading the model took that long) the first 100: no rate yet
    assert stream.getvalue().split("\r\033[K")[-1] == "gradcheck: 100 of 1,000 loss evaluations (10%), 1.0 s"
    p(400)  # 400 more in the 2 s since: 500 left at 200/s
    assert stream.getvalue().split("\r\033[K")[-1].endswith("(50%), 3.0 s, about 2.5 s left")
    p(600)  # past the total (a failing row's diagnosis): the count and the rate, no estimate
    assert stream.getvalue().split("\r\033[K")[-1] == "gradcheck: 1,100 loss evaluations, 5.0 s (220/s)"
    assert Progress(FakeTTY(), total=10).line(3725.0).endswith("1 h 02 min")  # long runs read in h and min


@pytest.mark.parametrize(
    "kw", [{}, {"dtype": "float32"}, {"method": "richardson"}, {"sample": 5}, {"method": "complex"}]
)
def test_the_total_told_up_front_is_the_count_a_full_check_makes(kw):
    from gradcheck import ReferenceLSTM, check
    from gradcheck.cli.progress import Progress

    model = ReferenceLSTM(3, 4, 3, dtype=kw.pop("dtype", "float64"))
    progress = Progress(io.StringIO())
    check(model, progress=progress, mode="full", diagnose=False, **kw)
    assert progress.total == progress.count > 0


def test_no_total_when_screening_and_a_note_when_a_full_check_exceeds_the_budget(models):
    from gradcheck import ReferenceLSTM, check
    from gradcheck.cli.progress import Progress

    notes = io.StringIO()
    progress = Progress(io.StringIO(), notes=notes)
    check(ReferenceLSTM(3, 4, 3), progress=progress, mode="screen")
    assert progress.total is None and notes.getvalue() == ""
    check(ReferenceLSTM(3, 4, 3), progress=progress, mode="full", budget=1e-9)
    assert (
        "this full check is 304 loss evaluations" in notes.getvalue() and "--mode screen" in notes.getvalue()
    )


def test_the_command_line_shows_the_total_on_a_terminal(monkeypatch):
    from gradcheck.cli import progress

    class EveryCall(progress.Progress):  # redraws at every call, so that a short run shows a line
        def __init__(self, stream, **kw):
            super().__init__(stream, **kw | {"interval": 0.0})

    stream = FakeTTY()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(progress, "Progress", EveryCall)
    assert run(*SMALL, "--no-reports") == 0
    assert "of 304 loss evaluations" in stream.getvalue()


def test_colour_only_on_a_terminal_without_no_color():
    assert color_enabled(FakeTTY(), {})
    assert not color_enabled(FakeTTY(), {"NO_COLOR": "1"})
    assert not color_enabled(io.StringIO(), {})


# ------------------------------------------------------------------------------------------------- GitHub


def test_github_summary_is_appended_and_annotations_printed(tmp_path, models, capsys, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert run("--model", f"{models}:buggy") == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "## gradcheck: FAIL" in text and "| FAIL" in text
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1 and errors[0].startswith("::error title=gradcheck%3A wi::")


def test_no_annotations_outside_github_actions(tmp_path, models, capsys):
    assert run("--model", f"{models}:buggy") == 1
    assert "::error" not in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_annotations_go_to_stderr_when_stdout_carries_a_report(tmp_path, models, capsys, monkeypatch, fmt):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert run("--model", f"{models}:buggy", "--format", fmt) == 1
    out, err = capsys.readouterr()
    assert "::error" not in out and "::error title=gradcheck%3A wi::" in err
    if fmt == "json":
        json.loads(out)


# ------------------------------------------------------------------------------------- the real command


def test_the_installed_command_line_end_to_end(tmp_path):
    (tmp_path / "e2e_models.py").write_text(USER_MODELS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADCHECK_", "GITHUB_"))}
    env["PYTHONPATH"] = ROOT
    proc = subprocess.run(
        [sys.executable, "-m", "gradcheck", "run", "--model", "e2e_models:buggy", "--format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    d = json.loads(proc.stdout)
    ts = ET.parse(tmp_path / "reports" / "gradcheck.xml").getroot().find("testsuite")
    assert len(ts.findall("testcase")) == len(d["rows"])
    assert len(ts.findall("testcase/failure")) == sum(not r["passed"] for r in d["rows"])
    proc = subprocess.run(
        [sys.executable, "-m", "gradcheck", "run", "--model", "e2e_models:correct", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stderr == ""


# ------------------------------------------------------------------------------------ docs/ci.md stays true

DOC = os.path.join(ROOT, "docs", "ci.md")


@pytest.mark.skipif(not os.path.exists(DOC), reason="needs the source tree")
def test_the_documented_commands_run(tmp_path, capsys):
    import re
    import shlex

    text = open(DOC).read()
    commands = re.findall(r"^\s*(?:- |run: )?(gradcheck run(?!:)[^\n#|]*)", text, flags=re.M)
    assert len(commands) >= 3
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "lstm.py").write_text(
        "from gradcheck.lstm.reference import ReferenceLSTM\n"
        "def make_model():\n    return ReferenceLSTM(2, 3, 2)\n"
    )
    for command in commands:
        argv = shlex.split(command)[1:]
        if "--model" not in argv:
            argv += ["--x-dim", "2", "--hidden", "3", "--steps", "2"]
        assert cli.main(argv) == 0, (command, capsys.readouterr().err)
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        if "def test_" not in block:  # the pytest example runs in test_pytest_plugin.py
            exec(compile(block, DOC, "exec"), {})
    assert "PASS: all 14 rows" in capsys.readouterr().out
