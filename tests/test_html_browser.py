"""The HTML report in a real browser: headless Chromium (Debian's ``chromium``, installed by ``.ci/run``).

The page of the README's dropped-carry example is opened at 1280x800 over the DevTools protocol (a pipe, the
standard library only): no console error or exception, every figure of non-zero size, and the verdict, the
reproduce command and the time-step map's outlined first bad step inside the first screen. Its screenshot is
kept as ``reports/gradcheck-html.png`` (a CI artifact), beside ``reports/gradcheck-html.html``.

Where Chromium is absent the tests skip with the reason, except under CI (``CI=true``), where that is a
failure. ``GRADCHECK_CHROMIUM`` names another binary.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from user_models import UserLSTM

import gradcheck
from gradcheck.output.html import html_page
from gradcheck.output.json_report import json_text
from gradcheck.output.selftest_html import selftest_page

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports"
WIDTH, HEIGHT = 1280, 800
TIMEOUT = 20.0  # seconds for any one browser operation
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-extensions",
    "--mute-audio",
    "--disable-default-apps",
    "--remote-debugging-pipe",
]


def chromium_or_skip(exe: str | None, environ) -> str:
    """``exe``, or skip the test saying why; under CI (``CI`` set) a missing browser fails instead."""
    if exe:
        return exe
    reason = (
        "Chromium not found (Debian: apt-get install -y chromium, as .ci/run does; or set "
        "GRADCHECK_CHROMIUM to a Chromium binary)"
    )
    if environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI is set, so the browser test may not skip: {reason}")
    pytest.skip(reason)


def find_chromium() -> str | None:
    return (
        os.environ.get("GRADCHECK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )


# Run argv[3:] with fd argv[1] as its fd 3 and fd argv[2] as its fd 4 (what --remote-debugging-pipe reads and
# writes), without a shell (dash cannot name fds above 9) and without preexec_fn (unsafe with threads).
ONTO_3_AND_4 = (
    "import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); os.dup2(r, 3); os.dup2(w, 4); os.close(r); "
    "os.close(w); os.execv(sys.argv[3], sys.argv[3:])"
)


class Browser:
    """Headless Chromium driven over ``--remote-debugging-pipe``: commands on the child's fd 3, replies and
    events (NUL-terminated JSON) on its fd 4."""

    def __init__(self, exe: str, profile: Path):
        to_child, self._out = os.pipe()
        self._in, from_child = os.pipe()
        # The child's ends as fds >= 10, so that moving them to 3 and 4 cannot overwrite one with the other.
        r, w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child))
        os.close(to_child)
        os.close(from_child)
        self.log = profile / "chromium.log"
        argv = [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", ONTO_3_AND_4, str(r), str(w), *argv],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                pass_fds=(r, w),
            )
        os.close(r)
        os.close(w)
        self._buf, self._next, self.events = b"", 0, []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer within {TIMEOUT} s (log: {self.log})")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe (log: {self.log})")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, *, session: bool = False, **params):
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._read(deadline))

    def open(self, path: Path) -> None:
        self.events = []
        self.call("Page.navigate", session=True, url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors since the last :meth:`open`."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(
                    "console." + p["type"] + ": " + " ".join(str(a.get("value")) for a in p.get("args", []))
                )
            elif e.get("method") == "Runtime.exceptionThrown":
                out.append("exception: " + p.get("exceptionDetails", {}).get("text", ""))
            elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + p["entry"].get("text", ""))
        return out

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", session=True, format="png")["data"])

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._out)
        os.close(self._in)


MEASURE = """(() => {
  const box = e => { if (!e) return null; const r = e.getBoundingClientRect();
                     return {x: r.x, y: r.y, w: r.width, h: r.height, bottom: r.bottom, right: r.right}; };
  return {
    figures: [...document.querySelectorAll('figure svg')].map(s => Object.assign({id: s.id}, box(s))),
    header: box(document.querySelector('header')),
    reproduce: box(document.querySelector('.reproduce code')),
    firstBad: box(document.querySelector('.first-bad')),
    firstBadText: (document.querySelector('.first-bad .enters-label') || {}).textContent || null,
    pageWidth: document.documentElement.scrollWidth,
    scripts: document.scripts.length,
  };
})()"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    exe = chromium_or_skip(find_chromium(), os.environ)
    b = Browser(exe, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def failing_page() -> Path:
    """The README's dropped-carry example (5 steps) as a page, kept under reports/ as a CI artifact."""
    d = json.loads(json_text(gradcheck.check(UserLSTM(steps=5, bug="drop_ds_carry"))))
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / "gradcheck-html.html"
    path.write_text(html_page(d), encoding="utf-8")
    return path


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_failing_page_in_chromium(browser, failing_page):
    """No console error, every figure drawn with a size, no sideways scrolling, and the first screen holds the
    verdict, the reproduce command and the outlined first bad step (s, t=3)."""
    browser.open(failing_page)
    m = browser.evaluate(MEASURE)
    assert browser.errors() == []
    assert m["scripts"] == 0
    assert len(m["figures"]) >= 3
    for f in m["figures"]:
        assert f["w"] > 0 and f["h"] > 0, f"figure {f['id']} has no size"
    assert m["pageWidth"] <= WIDTH
    for what in ("header", "reproduce", "firstBad"):
        assert m[what]["bottom"] <= HEIGHT and m[what]["right"] <= WIDTH, f"{what} is not on the first screen"
    assert m["firstBadText"] == "error enters here: s, t=3"
    png = browser.screenshot()
    assert png_size(png) == (WIDTH, HEIGHT)
    (REPORTS / "gradcheck-html.png").write_bytes(png)


def test_long_run_fits_the_first_screen(browser, tmp_path):
    """T = 200, failing as the famous wrong "fix" does (s up to t=198, h up to 197): the whole map fits the
    width and the first bad step is on the first screen. (The rows are written by hand: checking a 200-step
    model takes 35 s here, and the layout depends only on the dict.)"""
    rows = [
        {"kind": "state", "name": name, "t": t, "passed": t > last, "ratio": 1e-5 if t > last else 1e5}
        for name, last in (("h", 197), ("s", 198))
        for t in range(200)
    ]
    d = {"rows": rows, "passed": False, "first_bad_step": {"name": "s", "t": 198}, "seed": 0}
    path = tmp_path / "long.html"
    path.write_text(html_page(d), encoding="utf-8")
    browser.open(path)
    m = browser.evaluate(MEASURE)
    assert browser.errors() == []
    assert m["pageWidth"] <= WIDTH
    assert m["firstBad"]["bottom"] <= HEIGHT and m["firstBad"]["right"] <= WIDTH
    assert m["firstBadText"] == "error enters here: s, t=198"


def test_selftest_page_in_chromium(browser, tmp_path):
    from gradcheck.lstm.selftest import SelftestConfig, run_selftest

    result = run_selftest(SelftestConfig(), names=["drop_ds_next", "gates_swapped"], demo=False)
    path = tmp_path / "selftest.html"
    path.write_text(selftest_page(json.loads(json.dumps(result.to_dict()))), encoding="utf-8")
    browser.open(path)
    m = browser.evaluate(MEASURE)
    assert browser.errors() == []
    assert m["figures"] and all(f["w"] > 0 and f["h"] > 0 for f in m["figures"])
    assert m["header"]["bottom"] <= HEIGHT


def test_the_harness_sees_errors_and_empty_figures(browser, tmp_path):
    """The checks above can fail: a console error and a zero-size figure are seen."""
    path = tmp_path / "bad.html"
    path.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"/><title>x</title></head><body>'
        '<figure><svg width="0" height="0"></svg></figure><script>console.error("planted")</script>'
        "</body></html>"
    )
    browser.open(path)
    m = browser.evaluate(MEASURE)
    assert browser.errors() == ["console.error: planted"]
    assert [(f["w"], f["h"]) for f in m["figures"]] == [(0, 0)]


@pytest.mark.parametrize("ci, outcome", [("true", "fail"), ("", "skip"), ("false", "skip")])
def test_missing_chromium_skips_except_under_ci(ci, outcome):
    kind = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with pytest.raises(kind, match="Chromium not found"):
        chromium_or_skip(None, {"CI": ci})
    assert chromium_or_skip("/usr/bin/chromium", {"CI": ci}) == "/usr/bin/chromium"
