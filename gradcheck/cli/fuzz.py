"""``gradcheck fuzz``: search configurations for a failing check, shrink it, print the command that reproduces it.

How a model exposes configurations: ``--model MODULE:FACTORY`` names a factory that accepts (a subset of) the
keyword arguments ``x_dim``, ``hidden``, ``steps`` (T), ``seed``, ``variant`` (``"simple"``/``"tanh"``) and
``loss`` (``"seed"``/``"full"``), and returns a model of the checker's protocol built for them::

    def make_model(*, x_dim=3, hidden=4, steps=5, seed=0):
        ...
        return MyLSTM(...)

Fuzz varies exactly the keywords the factory's signature accepts (all of them with ``**kwargs``) and passes
nothing else; a factory that accepts none of them is rejected (there is nothing to search). Without ``--model``
the reference LSTM is fuzzed over all six. Sizes are drawn between 1 and ``--max-x-dim``/``--max-hidden``/
``--max-steps``, seeds between 0 and ``--max-seed``.

The search is hypothesis's (``@given`` with the generate and shrink phases, ``database=None``, seeded by
``--seed``, so a run is replayable): up to ``--budget`` configurations are checked; on the first failure
hypothesis shrinks towards the smallest failing configuration (small sizes first, then the first variant and
loss, then seed 0), and a final pass lowers each size by one while the check still fails. It prints that
configuration and the exact ``gradcheck run ...`` command that reproduces it. ``gradcheck run`` reproduces a
factory's configuration through ``--model MODULE:FACTORY`` with the size flags forwarded as keyword
arguments.

Exit codes: 0 no failing configuration within the budget; 1 a configuration whose check fails; 2 usage error
(bad flags, unimportable model, a factory that is not configurable, an object that is not a model); 3 the model
raised at some configuration (the smallest such configuration is shown).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import EXIT_FAIL, EXIT_MODEL, EXIT_OK, ModelError, UsageError
from ..options import METHODS
from .argtypes import positive_int, seed_int
from .loading import CONFIG_KEYS, accepted_keys, build_model, flag, load_factory

SEARCHED = tuple(k for k in CONFIG_KEYS if k != "dtype")  # the configuration keywords fuzz varies


def reference_factory(
    *,
    x_dim: int = 3,
    hidden: int = 4,
    steps: int = 5,
    seed: int = 0,
    variant: str = "simple",
    loss: str = "full",
):
    """The reference LSTM as a configurable factory (what ``gradcheck run`` without ``--model`` checks)."""
    from ..lstm.reference import ReferenceLSTM

    return ReferenceLSTM(x_dim, hidden, steps, variant=variant, loss=loss, seed=seed)


def run_command(config: dict, *, spec: str | None = None, method: str = "central") -> str:
    """The ``gradcheck run`` command that checks exactly this configuration."""
    parts = ["gradcheck", "run"]
    if spec:
        parts += ["--model", spec]
    parts += [f"{flag(k)} {config[k]}" for k in CONFIG_KEYS if k in config]
    if method != "central":
        parts += ["--method", method]
    return " ".join(parts)


@dataclass
class FuzzResult:
    """What the search found. ``config``: the smallest failing configuration (None: none found).

    ``kind``: ``"fail"`` (a row fails), ``"raised"`` (the model raised) or None. ``examples``: configurations
    checked (generation and shrinking). ``failing_rows``: labels of the failing rows at ``config``.
    """

    config: dict | None
    kind: str | None
    message: str
    examples: int
    command: str | None
    failing_rows: list[str]
    budget: int
    seed: int


class _Found(Exception):
    def __init__(self, config, kind, message, rows):
        super().__init__(message)
        self.config, self.kind, self.message, self.rows = config, kind, message, rows


def _strategy(keys, *, max_x_dim, max_hidden, max_steps, max_seed, variants, losses):
    from hypothesis import strategies as st

    pieces = {
        "x_dim": st.integers(1, max_x_dim),
        "hidden": st.integers(1, max_hidden),
        "steps": st.integers(1, max_steps),
        "variant": st.sampled_from(variants),
        "loss": st.sampled_from(losses),
        "seed": st.integers(0, max_seed),
    }
    return st.fixed_dictionaries({k: pieces[k] for k in SEARCHED if k in keys})


def fuzz(
    factory: Callable | None = None,
    *,
    budget: int = 100,
    seed: int = 0,
    max_x_dim: int = 5,
    max_hidden: int = 6,
    max_steps: int = 5,
    max_seed: int = 2**16,
    variants=None,
    losses=None,
    method: str = "central",
    spec: str | None = None,
) -> FuzzResult:
    """Search configurations of ``factory`` (default: the reference) for a failing check; shrink it.

    ``variants``, ``losses``: the values to draw (default: all of the reference's, the full loss first, since
    shrinking goes towards the first: with it every unit receives gradient).

    Raises :class:`UsageError` for a factory that accepts none of :data:`SEARCHED` or bad bounds, and
    :class:`gradcheck.ProtocolError` when what the factory returns is not a model (checked at the smallest configuration).
    """
    from lstm_ref.model import LOSSES, VARIANTS

    from ..checker import check

    variants = tuple(VARIANTS if variants is None else variants)
    losses = tuple(reversed(LOSSES) if losses is None else losses)
    _check_bounds(
        budget=budget, max_x_dim=max_x_dim, max_hidden=max_hidden, max_steps=max_steps, max_seed=max_seed
    )
    factory = reference_factory if factory is None else factory
    name = spec or getattr(factory, "__name__", "factory")
    keys = tuple(k for k in accepted_keys(factory) if k in SEARCHED)
    if not keys:
        raise UsageError(
            f"{name} accepts none of the configuration keywords {', '.join(SEARCHED)}: "
            "there is nothing to fuzz (see gradcheck fuzz --help for the factory convention)"
        )
    counter = {"n": 0}

    def probe(config: dict) -> None:
        counter["n"] += 1
        try:
            report = check(build_model(factory, config, name=name), method=method, diagnose=False)
        except ModelError as exc:
            raise _Found(config, "raised", str(exc), []) from None
        if not report.passed:
            raise _Found(config, "fail", report.verdict(), [r.label for r in report.failing])

    # A model that does not follow the protocol is a usage error, not a finding: find out on the smallest one
    # (the first configuration of the budget).
    smallest = {"x_dim": 1, "hidden": 1, "steps": 1, "seed": 0, "variant": variants[0], "loss": losses[0]}
    try:
        probe({k: smallest[k] for k in keys})
        found = None
    except _Found as f:
        found = f
    if found is None and budget > 1:
        strategy = _strategy(
            keys,
            max_x_dim=max_x_dim,
            max_hidden=max_hidden,
            max_steps=max_steps,
            max_seed=max_seed,
            variants=variants,
            losses=losses,
        )
        found = _search(strategy, probe, examples=budget - 1, seed=seed)
    n = counter["n"]
    if found is None:
        return FuzzResult(None, None, f"no failing configuration in {n} checked", n, None, [], budget, seed)
    command = run_command(found.config, spec=spec, method=method)
    return FuzzResult(found.config, found.kind, found.message, n, command, found.rows, budget, seed)


def _check_bounds(**bounds) -> None:
    for name, v in bounds.items():
        lowest = 0 if name == "max_seed" else 1
        if not isinstance(v, int) or isinstance(v, bool) or v < lowest:
            raise UsageError(f"{name}: expected an integer >= {lowest}, got {v!r}")


def _search(strategy, probe, *, examples: int, seed: int) -> _Found | None:
    """Hypothesis's search (generate, then shrink the first failure), then a final polish."""
    from hypothesis import HealthCheck, Phase, given, reporting, settings
    from hypothesis import seed as hseed

    @hseed(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        derandomize=False,
        print_blob=False,
    )
    @given(strategy)
    def search(config):
        probe(config)

    try:
        with reporting.with_reporter(lambda _msg: None):
            search()
    except _Found as f:
        return _polish(f, probe)
    return None


def _polish(found: _Found, probe) -> _Found:
    """Lower each size by one (and try seed 0) while the check still fails: a local minimum for certain."""
    improved = True
    while improved:
        improved = False
        for key in ("x_dim", "hidden", "steps", "seed"):
            if key not in found.config:
                continue
            value = found.config[key]
            lower = (0 if value > 0 else None) if key == "seed" else (value - 1 if value > 1 else None)
            if lower is None:
                continue
            try:
                probe(dict(found.config, **{key: lower}))
            except _Found as f:
                found, improved = f, True
    return found


# ------------------------------------------------------------------------------------------------------ CLI


def add_parser(subparsers) -> None:
    import argparse

    p = subparsers.add_parser(
        "fuzz",
        help="search configurations for a failing check and shrink it to the smallest",
        description=_plain(__doc__.split("\n\n", 1)[1].rsplit("\n\nExit codes", 1)[0]),
        epilog="exit codes:\n" + _plain(__doc__.rsplit("Exit codes: ", 1)[1]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model", metavar="MODULE:FACTORY", help="a configurable factory (default: the reference LSTM)"
    )
    p.add_argument(
        "--budget",
        type=positive_int,
        default=100,
        help="configurations to check before shrinking (default 100)",
    )
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the search (default 0)")
    p.add_argument("--max-x-dim", type=positive_int, default=5, help="largest x_dim (default 5)")
    p.add_argument("--max-hidden", type=positive_int, default=6, help="largest hidden (default 6)")
    p.add_argument("--max-steps", type=positive_int, default=5, help="largest T (default 5)")
    p.add_argument("--max-seed", type=seed_int, default=2**16, help="largest model seed (default 65536)")
    p.add_argument("--method", choices=list(METHODS), default="central", help="default central")


def cmd(args) -> int:
    try:
        factory = load_factory(args.model) if args.model else None
        result = fuzz(
            factory,
            budget=args.budget,
            seed=args.seed,
            max_x_dim=args.max_x_dim,
            max_hidden=args.max_hidden,
            max_steps=args.max_steps,
            max_seed=args.max_seed,
            method=args.method,
            spec=args.model,
        )
    except UsageError as exc:
        raise UsageError(f"gradcheck fuzz: {exc}") from None
    what = args.model or "the reference LSTM"
    if result.config is None:
        print(
            f"gradcheck fuzz: {what}: no failing configuration in {result.examples} checked "
            f"(budget {args.budget}, search seed {args.seed}; rerun with --seed {args.seed})"
        )
        return EXIT_OK
    cfg = ", ".join(f"{k}={v!r}" for k, v in result.config.items())
    head = "the check fails" if result.kind == "fail" else "the model raises"
    print(
        f"gradcheck fuzz: {what}: {head}; smallest configuration found: {cfg} "
        f"({result.examples} configurations checked, search seed {args.seed})"
    )
    print(f"  {result.message}")
    if result.failing_rows:
        print(f"  failing rows: {', '.join(result.failing_rows)}")
    print(f"reproduce with:\n  {result.command}")
    return EXIT_FAIL if result.kind == "fail" else EXIT_MODEL


def _plain(doc: str) -> str:
    """Docstring text as help text: no reStructuredText literal markers."""
    return doc.replace("``", "").replace("::\n", ":\n")
