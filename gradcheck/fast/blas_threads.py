"""Keep the BLAS library single-threaded while the checker runs chunks on its own threads.

The batched evaluation does many medium-sized GEMMs ((K, H) @ (H, 4H)) between elementwise passes. OpenBLAS's
own thread pool helps little there and, on a busy machine, its threads spin-wait for a core: measured at
(50, 100, 4), a full central check took 2.3 s with OpenBLAS on 2 threads, 1.1 s on 1 thread, and 0.6 s on
1 BLAS thread with 2 chunk threads. :func:`single_threaded_blas` sets OpenBLAS to one thread (found through
ctypes, as threadpoolctl does) and restores the previous count afterwards; without OpenBLAS it does nothing and
reports False (the checker then runs chunks on one thread). The setting is process-wide.
"""

from __future__ import annotations

import ctypes
import threading
from contextlib import contextmanager

_LOCK = threading.Lock()
_FOUND: list | None = None
_DEPTH = 0
_SAVED: list[int] = []


def _openblas_controls() -> list[tuple]:
    """(get_num_threads, set_num_threads) of every OpenBLAS loaded in this process (Linux: /proc/self/maps)."""
    global _FOUND
    if _FOUND is not None:
        return _FOUND
    found = []
    paths = set()
    try:
        import numpy  # noqa: F401  (loads numpy's BLAS)

        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                path = line.split()[-1] if line.strip() else ""
                if "openblas" in path.lower() and path.startswith("/"):
                    paths.add(path)
    except OSError:
        paths = set()
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                    found.append((get, set_))
                    break
            else:
                continue
            break
    _FOUND = found
    return found


@contextmanager
def single_threaded_blas():
    """Within the block OpenBLAS uses one thread (nested and thread-safe: the outermost block restores).

    Yields True when an OpenBLAS was found and limited.
    """
    global _DEPTH, _SAVED
    controls = _openblas_controls()
    with _LOCK:
        if _DEPTH == 0:
            _SAVED = [get() for get, _ in controls]
            for _, set_ in controls:
                set_(1)
        _DEPTH += 1
    try:
        yield bool(controls)
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                for (_, set_), n in zip(controls, _SAVED):
                    set_(n)
