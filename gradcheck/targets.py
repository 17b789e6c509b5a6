"""What the rows of a check are: one :class:`Target` per row, in check order.

A parameter is one row, or one row per index along its declared time axis (``x[t=3]``), or one row per part of a
declared split (``Wx:i``); a state is one row per time step (``h[t=2]``). A target knows which entries it covers
(flat indices into the parameter, or into the ``(T, *state_shape)`` tap) and the shape its worst index is
reported in. Row numbers (1-based, in check order, skipped rows counted) seed the screen's directions, so a row's
directions do not depend on which other rows are checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ProtocolError


@dataclass(frozen=True, eq=False)
class Target:
    """One row to check. ``flat_idx``: the entries it covers; ``shape``: the row's own shape (``flat_idx`` in
    C order is that shape); ``whole``: it covers a whole parameter block; ``number``: its row number."""

    kind: str
    name: str
    t: int | None
    part: str | None
    flat_idx: np.ndarray
    shape: tuple[int, ...]
    number: int
    whole: bool

    @property
    def key(self) -> tuple:
        return (self.kind, self.name, self.t, self.part)

    @property
    def size(self) -> int:
        return int(self.flat_idx.size)


def targets(spec, state_shapes: dict[str, tuple[int, ...]], blocks=None) -> list[Target]:
    """Every row of the check, in order: parameters as the model lists them (``spec``: a
    :class:`~gradcheck.protocol.ModelSpec`, with its time axes and splits), then each state over time.

    ``blocks``: names of parameters and states to keep (None: all); an unknown name is a ProtocolError.
    """
    params, time_axes, splits = spec.params, spec.time_axes, spec.splits
    out: list[Target] = []
    for name, x in params.items():
        if name in time_axes:
            out += _along(name, x.shape, time_axes[name], len(out))
        elif name in splits:
            out += _parts(name, x.shape, *splits[name], len(out))
        else:
            idx = np.arange(x.size)
            out.append(Target("param", name, None, None, idx, x.shape or (1,), len(out) + 1, True))
    for name, shape in state_shapes.items():
        per_step = int(np.prod(shape[1:], dtype=int))
        for t in range(shape[0]):
            idx = t * per_step + np.arange(per_step)
            out.append(Target("state", name, t, None, idx, tuple(shape[1:]) or (1,), len(out) + 1, False))
    if blocks is None:
        return out
    unknown = [b for b in blocks if b not in params and b not in state_shapes]
    if unknown:
        raise ProtocolError(
            f"blocks: unknown names {unknown}; parameters {list(params)}, states {list(state_shapes)}"
        )
    return [t for t in out if t.name in blocks]


def _along(name: str, shape: tuple[int, ...], axis: int, before: int) -> list[Target]:
    """One row per index along ``axis``."""
    grid = np.arange(int(np.prod(shape, dtype=int))).reshape(shape)
    rest = tuple(s for k, s in enumerate(shape) if k != axis) or (1,)
    return [
        Target("param", name, t, None, np.take(grid, t, axis=axis).reshape(-1), rest, before + t + 1, False)
        for t in range(shape[axis])
    ]


def _parts(name: str, shape: tuple[int, ...], axis: int, parts: tuple[str, ...], before: int) -> list[Target]:
    """One row per equal contiguous part along ``axis``."""
    grid = np.arange(int(np.prod(shape, dtype=int))).reshape(shape)
    width = shape[axis] // len(parts)
    out = []
    for k, part in enumerate(parts):
        sub = np.take(grid, range(k * width, (k + 1) * width), axis=axis)
        out.append(Target("param", name, None, part, sub.reshape(-1), sub.shape, before + k + 1, False))
    return out
