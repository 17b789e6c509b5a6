"""The package stays readable and one-way: import-linter's layer contracts, ruff (lint and format), short
functions, and a ``check()`` that reads in one screen."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree")
MAX_FUNCTION_LINES = 80
MAX_CHECK_LINES = 40


def _tool(name: str) -> str:
    """The tool's executable beside this Python, or on PATH; in CI a missing tool fails, elsewhere it skips."""
    here = Path(sys.executable).parent / name
    path = str(here) if here.exists() else shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed: pip install '.[test]' installs it")
        pytest.skip(f"{name} is not installed (pip install '.[test]')")
    return path


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)


def test_import_contracts_are_kept():
    out = _run(_tool("lint-imports"), "--no-cache")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_ruff_lint_passes():
    out = _run(_tool("ruff"), "check", ".")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_ruff_format_is_applied():
    out = _run(_tool("ruff"), "format", "--check", ".")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def _functions(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path.relative_to(ROOT), node


@pytest.mark.parametrize("package", ["gradcheck", "lstm_ref"])
def test_no_function_is_over_80_lines(package):
    long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, node in _functions(package)
        if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


def test_check_reads_in_one_screen():
    (node,) = [
        n
        for p, n in _functions("gradcheck")
        if str(p) == os.path.join("gradcheck", "checker.py") and n.name == "check"
    ]
    body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body  # without the docstring
    lines = body[-1].end_lineno - body[0].lineno + 1
    assert lines <= MAX_CHECK_LINES, f"check() has {lines} lines of code"


def test_the_length_checks_can_fail(tmp_path):
    """The walker sees a long function (so a pass above means something)."""
    src = "def f():\n" + "    x = 1\n" * 90
    (node,) = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef)]
    assert node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
