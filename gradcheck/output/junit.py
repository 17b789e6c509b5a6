"""The JUnit XML report, as pytest writes it: one testcase per row, a failure per failing row."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ..report import Report
from .text import diagnosis_text, failure_message, index_str, sci

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(s) -> str:
    """Text XML can carry (characters XML 1.0 forbids become \\xNN, as pytest does)."""
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(s))


STAGES = ("analytic", "numeric", "diagnosis")  # the check's own time (timings also hold cost estimates)


def junit(report: Report, *, suite: str = "gradcheck") -> str:
    """JUnit XML as pytest writes it: ``<testsuites><testsuite>`` with ``<properties>`` (seed, method, settings)
    and one ``<testcase classname name>`` per row; failing rows carry ``<failure message=...>``."""
    rows = report.rows
    failures = sum(1 for r in rows if not r.passed)
    total_time = sum(report.timings.get(stage, 0.0) for stage in STAGES)
    ts = ET.Element(
        "testsuite",
        name=suite,
        errors="0",
        failures=str(failures),
        skipped="0",
        tests=str(len(rows)),
        time=f"{total_time:.3f}",
    )
    props = ET.SubElement(ts, "properties")
    pairs = [
        ("seed", report.seed),
        ("method", report.method),
        ("model", report.model),
        *((k, v) for k, v in (("model_spec", report.model_spec), ("rerun", report.rerun)) if v is not None),
        ("passed", str(report.passed).lower()),
        ("verdict", report.verdict()),
    ]
    pairs += [(f"settings.{k}", v) for k, v in report.settings.items()]
    if report.first_bad_step:
        pairs.append(
            ("first_bad_step", f"{report.first_bad_step.get('name')} at t={report.first_bad_step.get('t')}")
        )
    for name, value in pairs:
        value = str(value).lower() if isinstance(value, bool) else value
        ET.SubElement(props, "property", name=xml_text(name), value=xml_text(value))
    for r in rows:
        classname = f"{suite}.{r.kind}" if r.kind == "param" else f"{suite}.{r.kind}.{r.name}"
        tc = ET.SubElement(ts, "testcase", classname=xml_text(classname), name=xml_text(r.label))
        tp = ET.SubElement(tc, "properties")
        for name, value in (
            ("max_abs_err", sci(r.max_abs_err)),
            ("max_rel_err", sci(r.max_rel_err)),
            ("worst_index", index_str(r.worst_index)),
            ("analytic", sci(r.analytic)),
            ("numeric", sci(r.numeric)),
            ("tolerance", sci(r.tolerance)),
            ("checked", r.checked),
        ):
            ET.SubElement(tp, "property", name=name, value=xml_text(value))
        if not r.passed:
            body = [failure_message(r), "analytic = the model's gradient, numeric = finite differences"]
            if diagnosis_text(r, report.hints):
                body.append(f"step-size re-check: {diagnosis_text(r, report.hints)}")
            fail = ET.SubElement(tc, "failure", message=xml_text(failure_message(r)))
            fail.text = xml_text("\n".join(body))
    root = ET.Element("testsuites", name="gradcheck")
    root.append(ts)
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode") + "\n"
