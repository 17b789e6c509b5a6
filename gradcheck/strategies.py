"""Hypothesis strategies for LSTM gradient checks: configurations, whole problems, and protocol models.

Use them in your own tests::

    from hypothesis import given
    from gradcheck import check
    from gradcheck.strategies import lstm_problems

    @given(lstm_problems(max_hidden=4))
    def test_my_backward(problem):
        assert check(problem.model(backward=my_backward)).passed

Sizes are small by default (correctness does not need scale) and shrink towards the smallest problem: x_dim 1,
hidden 1, one step, the ``"simple"`` variant, the first loss, seed 0. The arrays of a problem are drawn from
``numpy.random.default_rng(seed)`` with the seed drawn by hypothesis, so every parameter block is an independent
draw (never equal blocks, which would hide a bug that swaps two gates' gradients), a problem is identified by its
configuration and seed, and with the default magnitudes it is exactly the problem
``gradcheck run --x-dim .. --hidden .. --steps .. --variant .. --loss .. --seed ..`` checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

import lstm_ref
from lstm_ref.model import LOSSES, PARAM_KEYS, VARIANTS, step_loss_grads

__all__ = ["LSTMConfig", "LSTMProblem", "ProblemModel", "lstm_configs", "lstm_problems", "reference_models"]

DEFAULT_SCALES = {"weight_scale": 0.1, "input_scale": 1.0, "target_scale": 0.5, "state_scale": 0.5}


@dataclass(frozen=True)
class LSTMConfig:
    """The shape of an LSTM problem: sizes, the variant (h = s*o or tanh(s)*o) and the loss (seed or full)."""

    x_dim: int
    hidden: int
    steps: int
    variant: str = "simple"
    loss: str = "full"


def _check_size_bounds(name: str, lo: int, hi: int, smallest: int) -> None:
    for label, v in ((f"min_{name}", lo), (f"max_{name}", hi)):
        if not isinstance(v, int) or isinstance(v, bool) or v < smallest:
            raise InvalidArgument(f"{label}={v!r}: expected an integer >= {smallest}")
    if lo > hi:
        raise InvalidArgument(
            f"min_{name}={lo} is greater than max_{name}={hi}; lower min_{name} or raise max_{name}"
        )


def _check_choices(name: str, values, allowed) -> tuple[str, ...]:
    values = tuple(values) if not isinstance(values, str) else (values,)
    if not values or any(v not in allowed for v in values):
        raise InvalidArgument(
            f"{name}={values!r}: expected a non-empty collection drawn from {list(allowed)}"
        )
    return values


def lstm_configs(
    *,
    min_x_dim: int = 1,
    max_x_dim: int = 5,
    min_hidden: int = 1,
    max_hidden: int = 6,
    min_steps: int = 1,
    max_steps: int = 5,
    variants=VARIANTS,
    losses=LOSSES,
) -> SearchStrategy[LSTMConfig]:
    """Return a strategy for :class:`LSTMConfig`.

    ``x_dim``, ``hidden`` and ``steps`` (the number of time steps T) are drawn between their ``min_*`` and
    ``max_*`` bounds, inclusive, and shrink towards the minimum. ``variants`` is a collection drawn from
    ``("simple", "tanh")`` and ``losses`` from ``("seed", "full")``; examples shrink towards the first element of
    each. The default bounds keep a full check below ~0.1 s per example.
    """
    _check_size_bounds("x_dim", min_x_dim, max_x_dim, 1)
    _check_size_bounds("hidden", min_hidden, max_hidden, 1)
    _check_size_bounds("steps", min_steps, max_steps, 1)
    variants = _check_choices("variants", variants, VARIANTS)
    losses = _check_choices("losses", losses, LOSSES)
    return st.builds(
        LSTMConfig,
        x_dim=st.integers(min_x_dim, max_x_dim),
        hidden=st.integers(min_hidden, max_hidden),
        steps=st.integers(min_steps, max_steps),
        variant=st.sampled_from(variants),
        loss=st.sampled_from(losses),
    )


@dataclass(frozen=True, eq=False)
class LSTMProblem:
    """One LSTM problem with agreeing shapes.

    ``params``: the eight blocks (``wg, wi, wf, wo``: ``(hidden, x_dim + hidden)``; ``bg, bi, bf, bo``:
    ``(hidden,)``); ``xs``: ``(steps, x_dim)``; ``ys``: ``(steps,)`` for ``loss="seed"`` or ``(steps, hidden)``
    for ``loss="full"``; ``h0``, ``s0``: ``(hidden,)`` or None (zeros). ``seed`` and ``scales`` say how the arrays
    were drawn (see :func:`lstm_problems`); the repr shows them, not the arrays, so a failing example prints in a
    line and :meth:`reproduce` rebuilds it.
    """

    config: LSTMConfig
    seed: int
    params: dict = field(repr=False)
    xs: np.ndarray = field(repr=False)
    ys: np.ndarray = field(repr=False)
    h0: np.ndarray | None = field(repr=False)
    s0: np.ndarray | None = field(repr=False)
    dtype: str = "float64"
    scales: dict = field(default_factory=lambda: dict(DEFAULT_SCALES))
    nonzero_init: bool = True

    def model(self, *, backward=None) -> ProblemModel:
        """This problem as a protocol model; ``backward`` replaces :func:`lstm_ref.backward` (same signature)."""
        return ProblemModel(self, backward=backward)

    @property
    def is_reference(self) -> bool:
        """True when ``gradcheck run`` with :meth:`run_command`'s flags checks exactly this problem."""
        return self.scales == DEFAULT_SCALES and self.nonzero_init

    def run_command(self) -> str:
        c = self.config
        cmd = (
            f"gradcheck run --x-dim {c.x_dim} --hidden {c.hidden} --steps {c.steps} --variant {c.variant} "
            f"--loss {c.loss} --seed {self.seed}"
        )
        return cmd + ("" if self.dtype == "float64" else f" --dtype {self.dtype}")

    def reproduce(self) -> str:
        """How to rebuild this problem: a Python line, and the ``gradcheck run`` command when it is the same."""
        c = self.config
        args = ", ".join(f"{k}={v!r}" for k, v in self.scales.items())
        line = (
            f"from gradcheck.strategies import LSTMConfig, make_problem; make_problem(LSTMConfig({c.x_dim}, "
            f"{c.hidden}, {c.steps}, {c.variant!r}, {c.loss!r}), seed={self.seed}, {args}, nonzero_init={self.nonzero_init}, dtype={self.dtype!r})"
        )
        if self.is_reference:
            line += f"\n  or on the command line: {self.run_command()}"
        return line


def make_problem(
    config: LSTMConfig,
    *,
    seed: int,
    weight_scale: float = 0.1,
    input_scale: float = 1.0,
    target_scale: float = 0.5,
    state_scale: float = 0.5,
    nonzero_init: bool = True,
    dtype="float64",
) -> LSTMProblem:
    """Draw the arrays of one problem from ``numpy.random.default_rng(seed)`` (what :func:`lstm_problems` does).

    Draw order (the same as :class:`gradcheck.ReferenceLSTM`): a seed for :func:`lstm_ref.init_params` (each
    block uniform(-weight_scale, weight_scale), independently), then ``xs`` uniform(0, input_scale), ``ys``
    uniform(-target_scale, target_scale), ``h0`` and ``s0`` uniform(-state_scale, state_scale).
    """
    c = config
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    params = lstm_ref.init_params(c.x_dim, c.hidden, seed=rng.integers(2**63), scale=weight_scale)
    params = {k: v.astype(dt) for k, v in params.items()}
    xs = rng.uniform(0.0, input_scale, size=(c.steps, c.x_dim)).astype(dt)
    ys = rng.uniform(
        -target_scale, target_scale, size=(c.steps,) if c.loss == "seed" else (c.steps, c.hidden)
    ).astype(dt)
    h0 = rng.uniform(-state_scale, state_scale, size=c.hidden).astype(dt)
    s0 = rng.uniform(-state_scale, state_scale, size=c.hidden).astype(dt)
    scales = {
        "weight_scale": weight_scale,
        "input_scale": input_scale,
        "target_scale": target_scale,
        "state_scale": state_scale,
    }
    return LSTMProblem(
        c,
        int(seed),
        params,
        xs,
        ys,
        h0 if nonzero_init else None,
        s0 if nonzero_init else None,
        dt.name,
        scales,
        nonzero_init,
    )


def max_preactivation(problem: LSTMProblem) -> float:
    """The largest ``|W_* x_c(t) + b_*|`` over gates and steps (how far into saturation the gates go)."""
    p = problem.params
    tr = lstm_ref.forward(p, problem.xs, variant=problem.config.variant, h0=problem.h0, s0=problem.s0)
    z = [tr.x_c @ p[w].T + p[b] for w, b in (("wg", "bg"), ("wi", "bi"), ("wf", "bf"), ("wo", "bo"))]
    return float(max(np.max(np.abs(zk)) for zk in z))


def _positive(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise InvalidArgument(f"{name}={v!r}: expected a finite number > 0")
    return float(v)


def lstm_problems(
    *,
    configs: SearchStrategy[LSTMConfig] | None = None,
    seeds: SearchStrategy[int] | None = None,
    weight_scale: float = 0.1,
    input_scale: float = 1.0,
    target_scale: float = 0.5,
    state_scale: float = 0.5,
    nonzero_init: bool = True,
    dtype="float64",
    saturation_limit: float | None = 3.0,
    **config_bounds,
) -> SearchStrategy[LSTMProblem]:
    """Return a strategy for :class:`LSTMProblem`: a configuration and arrays of agreeing shapes.

    ``configs``: a strategy for :class:`LSTMConfig` (default :func:`lstm_configs` with ``config_bounds``, e.g.
    ``max_hidden=4``, ``variants=["tanh"]``). ``seeds``: a strategy for the integer from which the arrays are drawn
    (default ``integers(0, 2**32 - 1)``, shrinking towards 0); see :func:`make_problem` for the draws.

    Magnitudes: weights and biases uniform(-weight_scale, weight_scale), every block independently; inputs
    uniform(0, input_scale); targets uniform(-target_scale, target_scale); h0, s0 uniform(-state_scale,
    state_scale), or None (zeros) with ``nonzero_init=False``. ``dtype``: ``"float64"`` or ``"float32"``.

    ``saturation_limit``: problems whose largest gate pre-activation exceeds it in absolute value are rejected
    (sigmoid' and tanh' are below 0.05 beyond 3, where gradients vanish and checks say little). The default
    magnitudes stay far below (at most ~1.5 with the default bounds), so nothing is rejected unless you raise
    the scales; pass None to allow saturation.
    """
    if configs is None:
        configs = lstm_configs(**config_bounds)
    elif config_bounds:
        raise InvalidArgument(f"pass either configs= or size bounds {sorted(config_bounds)}, not both")
    if seeds is None:
        seeds = st.integers(0, 2**32 - 1)
    scales = {
        k: _positive(k, v)
        for k, v in (
            ("weight_scale", weight_scale),
            ("input_scale", input_scale),
            ("target_scale", target_scale),
            ("state_scale", state_scale),
        )
    }
    if np.dtype(dtype).name not in ("float64", "float32"):
        raise InvalidArgument(f"dtype={dtype!r}: expected 'float64' or 'float32'")
    if saturation_limit is not None:
        _positive("saturation_limit", saturation_limit)

    def build(config: LSTMConfig, seed: int) -> LSTMProblem:
        return make_problem(config, seed=seed, nonzero_init=nonzero_init, dtype=dtype, **scales)

    problems = st.builds(build, configs, seeds)
    if saturation_limit is not None:
        problems = problems.filter(lambda p: max_preactivation(p) <= saturation_limit)
    return problems


class ProblemModel:
    """An :class:`LSTMProblem` as a model of the checker's protocol (states ``"h"`` and ``"s"``, complex-capable).

    ``backward``: a replacement for :func:`lstm_ref.backward` with the same signature (default: the reference).
    """

    capabilities = frozenset({"complex"})

    def __init__(self, problem: LSTMProblem, *, backward=None):
        self.problem = problem
        self._backward = lstm_ref.backward if backward is None else backward

    def __repr__(self) -> str:
        c = self.problem.config
        return (
            f"ProblemModel(x_dim={c.x_dim}, hidden={c.hidden}, steps={c.steps}, variant={c.variant!r}, "
            f"loss={c.loss!r}, seed={self.problem.seed})"
        )

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: self.problem.params[k].copy() for k in PARAM_KEYS}

    def loss(self, params, taps=None):
        p, c = self.problem, self.problem.config
        return lstm_ref.total_loss(
            params, p.xs, p.ys, variant=c.variant, loss=c.loss, h0=p.h0, s0=p.s0, taps=taps
        )

    def gradients(self, params):
        p, c = self.problem, self.problem.config
        tr = lstm_ref.forward(params, p.xs, variant=c.variant, h0=p.h0, s0=p.s0)
        bp = self._backward(params, tr, step_loss_grads(tr.h, np.asarray(p.ys, dtype=tr.h.dtype), c.loss))
        return bp.param_grads, {"h": bp.dh, "s": bp.ds}


def reference_models(
    *, problems: SearchStrategy[LSTMProblem] | None = None, backward=None, **problem_options
) -> SearchStrategy[ProblemModel]:
    """Return a strategy for protocol models (:class:`ProblemModel`) built from :func:`lstm_problems`.

    ``problems``: the problems to wrap (default ``lstm_problems(**problem_options)``). ``backward``: a replacement
    for :func:`lstm_ref.backward` (same signature), e.g. your own BPTT, checked against the reference forward pass.
    """
    if problems is None:
        problems = lstm_problems(**problem_options)
    elif problem_options:
        raise InvalidArgument(f"pass either problems= or options {sorted(problem_options)}, not both")
    return problems.map(lambda p: p.model(backward=backward))
