"""Sample outputs in README.md and docs/*.md are generated from the command shown above them, never typed.

A sample is an HTML comment naming the command, followed by a fenced block holding what the command prints::

    <!-- sample: gradcheck run --x-dim 4 --hidden 3 --steps 3 -->
    ```
    ...what it prints...
    ```

Options go before the colon, separated by semicolons: ``setup=CMD`` runs first (e.g. copying a file),
``lines=1-4,-3`` keeps lines 1 to 4 and the last 3, ``match=REGEX`` the lines it finds (both: either; a line
``...`` stands where lines were left out),
``exit=1`` states the exit code the command must end with (default 0), ``stream=stderr`` shows stderr instead
of stdout. Commands run in a fresh temporary directory (the repository's ``tests/`` files are at ``$REPO``),
with ``NO_COLOR=1`` and no CI variables, so what they print does not depend on where they run.

    python docs/samples.py            # rewrite every sample in place
    python docs/samples.py --check    # exit 1 naming every sample that differs from what its command prints
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
SAMPLE = re.compile(r"<!-- sample(?P<opts>[^:]*): (?P<cmd>.*?) -->\n```[^\n]*\n(?P<body>.*?)```", re.S)


@dataclass
class Sample:
    path: str
    command: str
    options: dict
    body: str
    span: tuple[int, int]


def samples(path: str) -> list[Sample]:
    text = (ROOT / path).read_text()
    out = []
    for m in SAMPLE.finditer(text):
        opts = dict(o.strip().split("=", 1) for o in m.group("opts").split(";") if o.strip())
        out.append(Sample(path, m.group("cmd").strip(), opts, m.group("body"), m.span("body")))
    return out


def run(sample: Sample) -> str:
    """What the sample's command prints (trimmed to its ``lines``), as the block should hold it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GRADCHECK_", "CI"))}
    env |= {"NO_COLOR": "1", "REPO": str(ROOT), "COLUMNS": "120", "PATH": _path(env)}
    with tempfile.TemporaryDirectory() as tmp:
        if "setup" in sample.options:
            subprocess.run(["bash", "-c", sample.options["setup"]], cwd=tmp, env=env, check=True)
        done = subprocess.run(
            ["bash", "-c", sample.command], cwd=tmp, env=env, capture_output=True, text=True
        )
    want = int(sample.options.get("exit", "0"))
    if done.returncode != want:
        raise RuntimeError(
            f"{sample.path}: `{sample.command}` exited {done.returncode}, expected {want}:\n"
            f"{done.stderr[-2000:]}"
        )
    text = done.stderr if sample.options.get("stream") == "stderr" else done.stdout
    return (
        _keep(text.rstrip("\n").split("\n"), sample.options.get("lines"), sample.options.get("match")) + "\n"
    )


def _path(env: dict) -> str:
    """This Python's scripts first, so ``gradcheck`` is the one installed beside it."""
    return os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])


def _keep(lines: list[str], spec: str | None, match: str | None = None) -> str:
    if not spec and not match:
        return "\n".join(lines)
    keep: list[int] = [k for k, line in enumerate(lines) if match and re.search(match, line)]
    for part in (spec or "").split(","):
        if not part:
            continue
        if part.startswith("-"):
            keep += range(len(lines) + int(part), len(lines))
        else:
            a, _, b = part.partition("-")
            keep += range(int(a) - 1, int(b or a))
    out, last = [], -1
    for k in sorted(set(keep)):
        if k > last + 1:
            out.append("...")
        out.append(lines[k])
        last = k
    return "\n".join(out + (["..."] if last < len(lines) - 1 else []))


def refresh(path: str, *, check: bool) -> list[str]:
    """Rewrite (or, with ``check``, compare) the samples of one file; returns the commands that differ."""
    text = (ROOT / path).read_text()
    stale, pieces, pos = [], [], 0
    for s in samples(path):
        got = run(s)
        if got != s.body:
            stale.append(f"{path}: {s.command}")
        pieces += [text[pos : s.span[0]], got]
        pos = s.span[1]
    if not check and stale:
        (ROOT / path).write_text("".join(pieces) + text[pos:])
    return stale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare only; exit 1 if a sample differs")
    args = p.parse_args(argv)
    stale = [line for path in FILES for line in refresh(path, check=args.check)]
    for line in stale:
        print(("differs: " if args.check else "updated: ") + line)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
