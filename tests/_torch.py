"""torch for the tests that need it, or a skip saying why; under CI (``CI`` set) a missing torch is a failure.

CI installs the pinned CPU build (``pip install ".[test,torch]"``, README's first code block), so a skip there
would hide that the PyTorch adapter went untested.
"""

from __future__ import annotations

import importlib
import os

import pytest

INSTALL = "pip install '.[test,torch]' (torch==2.13.0, the CPU build)"


def ci(environ=None) -> bool:
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() not in ("", "0", "false", "no")


def torch_or_skip(environ=None, importer=importlib.import_module):
    """The torch module; else skip the calling test module with the reason (fail when CI is set)."""
    try:
        return importer("torch")
    except ImportError as exc:
        reason = f"torch is not installed ({exc}); {INSTALL}"
        if ci(environ):
            pytest.fail(f"CI is set, so the torch tests may not skip: {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=True)
