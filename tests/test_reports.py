"""The report formats (JUnit XML, Markdown, JSON), the atomic writes, and the GitHub annotations.

Formats are read back with the standard library (xml.etree, json) and compared with the Report they came from.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

import lstm_ref
from gradcheck import check
from gradcheck.errors import UsageError
from gradcheck.lstm.reference import ReferenceLSTM
from gradcheck.output.files import report_paths, write_all
from gradcheck.output.github import ANNOTATION_CAP, annotations, escape_data, escape_property
from gradcheck.output.json_report import json_text
from gradcheck.output.junit import junit
from gradcheck.output.markdown import markdown
from gradcheck.output.text import sci, table
from gradcheck.report import Report, Row

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def scaled(block, factor=1.01):
    """A BPTT whose gradient of ``block`` is off by ``factor`` (a planted bug)."""

    def backward(params, trace, dl_dh):
        bp = lstm_ref.backward(params, trace, dl_dh)
        bp.param_grads[block] = bp.param_grads[block] * factor
        return bp

    return backward


def small(**kw):
    return ReferenceLSTM(3, 4, 3, **kw)


@pytest.fixture(scope="module")
def good():
    return check(small(), seed=0)


@pytest.fixture(scope="module")
def bad():
    return check(small(backward=scaled("wi")), seed=0)


def suite(xml_text):
    root = ET.fromstring(xml_text.encode())
    assert root.tag == "testsuites"
    (ts,) = root.findall("testsuite")
    return ts


def make_row(name="w", t=None, passed=False, **kw):
    base = dict(
        kind="param" if t is None else "state",
        name=name,
        t=t,
        passed=passed,
        max_abs_err=1e-3,
        max_rel_err=1e-2,
        worst_index=[0],
        analytic=1.0,
        numeric=0.99,
        tolerance=1e-6,
        ratio=1e3,
        checked=4,
    )
    base.update(kw)
    return Row(**base)


def make_report(rows, **kw):
    base = dict(
        rows=rows,
        seed=3,
        method="central",
        settings={"dtype": "float64", "eps": 1e-5, "rtol": 1e-6, "atol": 0.0},
        model="Handmade",
        loss=1.0,
        first_bad_step=None,
        timings={"numeric": 0.5},
    )
    base.update(kw)
    return Report(**base)


# ------------------------------------------------------------------------------------------------ JUnit XML


def test_junit_has_one_testcase_per_json_row_and_one_failure_per_failing_row(bad):
    rows = json.loads(json_text(bad))["rows"]
    ts = suite(junit(bad))
    cases = ts.findall("testcase")
    assert len(cases) == len(rows) == int(ts.get("tests"))
    failing = [c for c in cases if c.find("failure") is not None]
    assert len(failing) == sum(not r["passed"] for r in rows) == int(ts.get("failures")) >= 1
    assert {c.get("name") for c in failing} == {r.label for r in bad.rows if not r.passed}


def test_junit_of_a_correct_model_has_no_failures(good):
    ts = suite(junit(good))
    assert ts.get("failures") == "0" and ts.get("errors") == "0"
    assert len(ts.findall("testcase")) == len(good.rows)
    assert not ts.findall("testcase/failure")


def test_junit_suite_has_pytest_attributes_and_seed_method_properties():
    report = check(small(seed=7, backward=scaled("bf")), method="richardson", seed=7)
    ts = suite(junit(report))
    assert set(ts.attrib) >= {"name", "tests", "failures", "errors", "skipped", "time"}
    props = {p.get("name"): p.get("value") for p in ts.findall("properties/property")}
    assert props["seed"] == "7" and props["method"] == "richardson"
    for case in ts.findall("testcase"):
        assert case.get("classname") and case.get("name")


def test_junit_failure_message_carries_worst_entry_values_and_tolerance(bad):
    ts = suite(junit(bad))
    by_name = {c.get("name"): c for c in ts.findall("testcase")}
    for row in bad.rows:
        if row.passed:
            continue
        msg = by_name[row.label].find("failure").get("message")
        idx = "(" + ", ".join(map(str, row.worst_index)) + ")"
        for piece in (idx, sci(row.analytic), sci(row.numeric), sci(row.tolerance)):
            assert piece in msg, (piece, msg)
        assert "analytic" in msg and "numeric" in msg


def test_junit_stays_well_formed_with_markup_and_control_characters():
    row = make_row(name='a<b>&"c\x01\nd', note="missing\x07 gradient <&>", analytic=float("nan"))
    ts = suite(junit(make_report([row, make_row(name="ok", passed=True)])))
    (case, _) = ts.findall("testcase")
    assert case.get("name").startswith('a<b>&"c')
    assert "missing" in case.find("failure").get("message")


# --------------------------------------------------------------------------------------------------- JSON


def test_json_keeps_the_checker_schema_plus_settings_versions_timings(bad):
    d = json.loads(json_text(bad))
    for key in ("passed", "seed", "method", "rows", "first_bad_step", "settings", "versions", "timings"):
        assert key in d
    assert d["passed"] is False and d["seed"] == 0 and d["method"] == "central"
    for r in d["rows"]:
        assert {
            "kind",
            "name",
            "t",
            "passed",
            "max_abs_err",
            "max_rel_err",
            "worst_index",
            "analytic",
            "numeric",
        } <= set(r)
        assert r["kind"] in ("param", "state") and (r["t"] is None) == (r["kind"] == "param")
    assert set(d["versions"]) >= {"python", "numpy", "gradcheck", "tabulate"}
    assert list(d)[-1] == "timings"


def test_json_stays_valid_json_when_values_are_nan_or_inf():
    row = make_row(max_abs_err=float("nan"), ratio=float("inf"), diagnosis={"max_errors": [float("nan")]})
    text = json_text(make_report([row], settings={"dtype": "float64", "eps": float("inf")}))

    def reject(token):
        raise ValueError(f"non-standard JSON constant {token}")

    d = json.loads(text, parse_constant=reject)
    assert d["rows"][0]["max_abs_err"] == "nan" and d["passed"] is False


def test_same_seed_and_settings_give_identical_json_and_markdown_apart_from_timings():
    a = check(small(seed=4, backward=scaled("wo")), seed=4)
    b = check(small(seed=4, backward=scaled("wo")), seed=4)
    ja, jb = json.loads(json_text(a)), json.loads(json_text(b))
    ja.pop("timings"), jb.pop("timings")
    assert ja == jb
    strip = lambda t: t[: t.index('  "timings"')]  # noqa: E731  the bytes before the timings field
    assert strip(json_text(a)) == strip(json_text(b))
    assert markdown(a) == markdown(b)
    c = check(small(seed=5, backward=scaled("wo")), seed=5)
    assert markdown(c) != markdown(a)  # the comparison can fail


# ----------------------------------------------------------------------------------------------- Markdown


def table_lines(md):
    return [line for line in md.splitlines() if line.startswith("|")]


def test_markdown_is_a_pipe_table_worst_first_with_a_verdict_line(bad):
    md = markdown(bad)
    lines = table_lines(md)
    assert len(lines) == 2 + len(bad.rows)  # header, separator, one line per row
    assert set(lines[1].replace("|", "").replace(":", "").replace(" ", "")) == {"-"}
    labels = [line.split("|")[2].strip().replace("\\", "") for line in lines[2:]]
    assert labels == [r.label for r in bad.worst_first()]
    assert lines[2].split("|")[1].strip() == "FAIL"
    assert md.rstrip().splitlines()[-1].replace("\\", "").strip("*") == bad.verdict()


def test_markdown_escapes_a_pipe_in_a_name():
    md = markdown(make_report([make_row(name="a|b"), make_row(name="c", passed=True)]))
    cols = {line.replace("\\|", "").count("|") for line in table_lines(md)}
    assert len(cols) == 1


def test_markdown_folds_long_tables_in_details_and_keeps_failing_rows_visible():
    rows = [make_row(name=f"p{k}", passed=k != 3) for k in range(30)]
    md = markdown(make_report(rows), fold_after=20)
    head, folded = md.split("<details>")
    assert "p3" in head and "p7" not in head and "</details>" in folded and "p7" in folded
    assert "<details>" not in markdown(make_report(rows[:5]), fold_after=20)


def test_errors_are_in_scientific_notation_and_indices_are_not_parsed_as_numbers():
    row = make_row(
        max_abs_err=1.234e-300, max_rel_err=5e-17, worst_index=[3], analytic=-2.5e-310, numeric=0.0
    )
    report = make_report([row])
    for text in (table(report), markdown(report), junit(report)):
        assert "1.234e-300" in text and "5.000e-17" in text and "(3)" in text and "-2.500e-310" in text
    assert " 0 " not in table(report).splitlines()[-1].replace("0.000e+00", "")


# ----------------------------------------------------------------------------------------------- writing


def test_report_paths_default_to_reports_dir_and_explicit_paths_win(tmp_path):
    p = report_paths(report_dir=str(tmp_path / "r"), json=str(tmp_path / "x.json"))
    assert p == {
        "json": str(tmp_path / "x.json"),
        "junit": str(tmp_path / "r" / "gradcheck.xml"),
        "markdown": str(tmp_path / "r" / "gradcheck.md"),
        "html": str(tmp_path / "r" / "gradcheck.html"),
    }
    assert report_paths(report_dir="r", no_reports=True) == {}
    assert report_paths(report_dir="r", no_reports=True, junit="j.xml") == {"junit": "j.xml"}


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"json": "DIR"}, "is a directory"),
        ({"junit": "FILE/sub.xml"}, "is not a directory"),
        ({"json": "same", "markdown": "same"}, "both write"),
        ({"json": ""}, "empty path"),
    ],
)
def test_report_paths_reject_paths_that_cannot_be_written(tmp_path, kw, needle):
    (tmp_path / "DIR").mkdir()
    (tmp_path / "FILE").write_text("x")
    kw = {k: (str(tmp_path / v) if v else v) for k, v in kw.items()}
    with pytest.raises(UsageError, match=needle):
        report_paths(report_dir=str(tmp_path / "r"), **kw)


def test_a_failed_write_leaves_every_previous_report_intact_and_no_temporaries(tmp_path, monkeypatch):
    a, b = tmp_path / "a.json", tmp_path / "b.xml"
    a.write_text("old a")
    b.write_text("old b")
    calls = []

    def failing_fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr("gradcheck.output.files.os.fsync", failing_fsync)
    with pytest.raises(OSError):
        write_all({str(a): "new a", str(b): "new b"})
    assert a.read_text() == "old a" and b.read_text() == "old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.xml"]
    monkeypatch.undo()
    write_all({str(a): "new a", str(b): "new b"})  # and the same call works when nothing fails
    assert a.read_text() == "new a" and b.read_text() == "new b"


KILLER = textwrap.dedent("""
    import os, signal, sys
    import gradcheck.output.files as reports
    target, data = sys.argv[1], "x" * 200_000
    real_fdopen = os.fdopen
    class HalfThenDie:                # writes half the data to disk, then the process is killed
        def __init__(self, fh): self.fh = fh
        def __enter__(self): return self
        def __exit__(self, *exc): return False
        def write(self, text):
            self.fh.write(text[: len(text) // 2]); self.fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    os.fdopen = lambda *a, **k: HalfThenDie(real_fdopen(*a, **k))
    reports.write_all({target: data})
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("existing", [True, False])
def test_a_run_killed_mid_write_leaves_the_previous_file_or_none(tmp_path, existing):
    target = tmp_path / "reports" / "gradcheck.json"
    if existing:
        target.parent.mkdir()
        target.write_text('{"old": true}\n')
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(target)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    if existing:
        assert target.read_text() == '{"old": true}\n'
    else:
        assert not target.exists()
    leftovers = [p for p in target.parent.iterdir() if p.name != "gradcheck.json"]
    assert leftovers, "the kill should have struck while the temporary was being written"
    assert all(p.name.startswith(".gradcheck.json.") and p.name.endswith(".tmp") for p in leftovers)
    assert all(p.stat().st_size == 100_000 for p in leftovers)  # the half-written data went there


# ------------------------------------------------------------------------------------- GitHub annotations


def unescape(s):
    return (
        s.replace("%0A", "\n")
        .replace("%0D", "\r")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
    )


def test_annotations_are_escaped_and_capped_with_a_count_of_the_rest():
    rows = [make_row(name=f"w{k},x:y%z", ratio=100.0 + k, note=f"broken\r\nrow {k} 50%") for k in range(13)]
    rows.append(make_row(name="fine", passed=True))
    lines = annotations(make_report(rows))
    errors = [line for line in lines if line.startswith("::error ")]
    assert len(errors) == ANNOTATION_CAP
    assert all("\n" not in line and "\r" not in line for line in lines)
    title, message = errors[0][len("::error title=") :].split("::", 1)
    assert "," not in title and ":" not in title
    assert unescape(title) == "gradcheck: w12,x:y%z"  # worst (highest err/tol) first
    assert unescape(message) == "broken\r\nrow 12 50%"
    assert lines[-1].startswith("::notice") and "3 more failing rows" in lines[-1]


def test_no_annotations_for_a_passing_report(good):
    assert annotations(good) == []


def test_escapes_match_the_github_toolkit():
    assert escape_data("a%b\r\nc:d,e") == "a%25b%0D%0Ac:d,e"
    assert escape_property("a%b\r\nc:d,e") == "a%25b%0D%0Ac%3Ad%2Ce"
