"""The JSON report: ``Report.to_dict()`` with plain JSON values, the library versions, timings last."""

from __future__ import annotations

import json
import math
import platform

from ..report import Report


def versions() -> dict:
    """The library versions a report was made with (read from the environment, not from the check)."""
    out = {"python": platform.python_version()}
    for pkg in ("gradcheck", "numpy", "tabulate"):
        out[pkg] = _module_version(pkg)
    return out


def _module_version(pkg: str) -> str | None:
    try:
        mod = __import__(pkg)
    except ImportError:
        return None
    return getattr(mod, "__version__", None)


def jsonable(obj):
    """Plain JSON values: NaN/inf become strings ("nan", "inf") so the file stays valid JSON, numpy scalars and
    arrays become numbers and lists."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return jsonable(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, int):
        return obj
    if isinstance(obj, complex):
        return jsonable([obj.real, obj.imag])
    return str(obj)


def json_text(report: Report) -> str:
    """The issue-4 JSON (``Report.to_dict()``) plus ``versions``; ``timings`` last, the only field that varies
    between runs with the same seed and settings."""
    d = report.to_dict()
    timings = d.pop("timings", {})
    d["versions"] = versions()
    d["timings"] = timings
    return json.dumps(jsonable(d), indent=2, allow_nan=False) + "\n"
