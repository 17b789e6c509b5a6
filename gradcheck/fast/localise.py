"""Name the wrong entries of a failing row by adaptive group testing, in O(k log n) derivatives for k of n.

A row (a parameter block, or a state at one step) whose screen failed is localised with directional finite
differences on subsets of its entries, instead of a full entry-by-entry check:

1. **Root.** Whole-row directions v (the screen's own, when the caller passes them, else ``verify`` fresh
   Rademacher ones): the residual ``r = v^T g_analytic - (numeric directional derivative)`` of the worst one
   is the root of a binary tree over the row's flat entries (contiguous halves).
2. **Bisection with inherited signs.** A followed subset S with direction v_S is split in halves; the left
   half is measured with v_S restricted to it, the right half is inferred: ``numeric(R) = numeric(S) -
   numeric(L)`` (linearity; round-off estimates add). So r_L + r_R = r_S: a followed subset always passes at
   least half of its residual to a child, and the signal of a failing direction is never lost on the way down.
   All tests of one level go to ``directional`` in ONE call (one model call for a batched model, one chunk set
   for workers). A subset is *followed* when its error/tolerance exceeds ``NEAR`` (0.1, as the screen's
   escalation).
3. **Leaves.** A followed subset of at most ``LEAF`` entries is checked entry by entry (``entries``: one
   finite difference per entry), with the full check's tolerance rule; only entries that fail it are reported.
4. **Verification, the guard against cancellation.** Errors inside a subset can cancel under its signs (equal
   and opposite errors, as two swapped entries make, cancel for half of all sign draws), so a round can miss
   entries. The analytic gradient with every evaluated entry replaced by its numerical value is compared along
   ``verify`` fresh whole-row directions; if it still fails, the worst of them is the root of another round
   (at most ``MAX_ROUNDS``). A remaining exact pair passes all 16 fresh directions with probability 2^-16. A
   row whose corrected gradient passes is *verified*. A round under the screen's direction that finds nothing
   (a screen flake, or a discrepancy within the entries' own tolerance) is followed by one on fresh
   directions. Optionally (``guard`` > 0) a child that is not followed while its parent was is re-tested at
   once with ``guard`` fresh sign draws, in the next level's call, and bisected along a draw that is followed.
   Measured (``benchmarks/localise.py``, docs/localise.md): the re-tests halve the rounds that miss something
   but cost 23-42% more derivatives (median) for the same final answer, hence ``GUARD = 0``.
5. **Dense errors.** When at some depth d at least ``DENSE_FAILING`` subsets and at least ``DENSE_FRACTION``
   of the 2^d parts are followed, bisection stops: the row's error is spread over the block (a scaled block, a
   dropped recurrent term). So is a failure that two rounds in a row cannot pin on any entry, and a row with
   at least half of its entries confirmed wrong. The result estimates ``||e|| / ||g||`` from the first round's
   whole-row directions (``E[(v^T e)^2] = ||e||^2`` for Rademacher v), and says whether it looks like a scale
   (``v^T g_analytic = c * v^T g_numeric`` to within ``NEAR`` times the tolerance in every direction) or a
   sign flip (c = -1). A spread error is a failure only when the whole-row directions fail by the screen's
   rule (floor ``rtol * max_k |v_k^T g|``): like the full check, it passes a block scaled by less than ~2
   rtol.

Tolerances (:mod:`gradcheck.tolerance`'s rule, with the row's scale taken per test): a subset test on S fails
when ``|a - n| > max(atol, NOISE_FACTOR * noise, rtol * max(||g_S||_2, G)) + rtol * |n|``, with ``g`` the
(corrected) analytic gradient and ``G = max_j |g_j|`` the full check's floor. ``||g_S||_2`` is the typical
size of ``v_S^T g`` (its root mean square over sign draws); at the leaves the floor is the full check's own.
An entry is confirmed wrong when it fails the full check's rule, with the row's largest |numeric| taken as
``max(|numeric_j| over the entries evaluated, |analytic_j| over the others)`` (what the full check would see
if the entries found are the only wrong ones). Measured margins and miss rates: ``python
benchmarks/localise.py``, ``docs/localise.md``.

Rows of at most ``DIRECT`` entries are checked entry by entry at once (cheaper than any bisection).

Determinism: every sign is drawn from ``rng`` (seed it with :func:`rng_for`) in a fixed order; the result
depends only on the seed and on the numbers the two callables return (the evaluators return the same numbers
serially, on threads, worker processes or dask).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ProtocolError
from ..options import count, number
from ..tolerance import NOISE_FACTOR
from .chunked import request_by_calls

NEAR = 0.1  # error/tolerance above this: the subset is followed (the screen's NEAR)
LEAF = 4  # a followed subset of at most this many entries is checked entry by entry
DIRECT = 16  # rows of at most this many entries: entry by entry from the start
VERIFY = 16  # whole-row directions of the root test and of each verification (the screen's K)
GUARD = 0  # fresh sign draws for a child not followed while its parent was
DENSE_FAILING = 16  # bisection stops when this many subsets at one depth are followed ...
DENSE_FRACTION = 0.5  # ... and they are at least this fraction of that depth's 2^d parts
MAX_ROUNDS = 8  # bisection rounds (each ends with a verification)
MAX_LISTED = 20  # wrong entries listed; the rest are counted in ``more``
CALL_BYTES = 64 * 2**20  # direction arrays per ``directional`` call (a level is split above this)
LOCALISE_STREAM = 13  # seed stream id of the localiser's signs (the screen's is 7, sampling's 11)
OUTCOMES = ("passed", "entries", "dense", "incomplete")


def rng_for(seed: int, row_number: int) -> np.random.Generator:
    """The localiser's generator for the row_number-th row of a check seeded with ``seed``."""
    return np.random.default_rng([int(seed), LOCALISE_STREAM, int(row_number)])


@dataclass(frozen=True)
class WrongEntry:
    """One confirmed wrong entry: its index in the row's shape and its own finite difference."""

    index: tuple[int, ...]
    analytic: float
    numeric: float
    abs_err: float
    ratio: float  # error / tolerance of the entry (> 1)

    def to_json(self) -> dict:
        return {
            "index": [int(i) for i in self.index],
            "analytic": _num(self.analytic),
            "numeric": _num(self.numeric),
            "abs_err": _num(self.abs_err),
        }


@dataclass(frozen=True)
class Dense:
    """An error spread over the row. ``rel_size``: estimated ``||e|| / ||g||``; ``scale``: c when the analytic
    gradient looks like c times the numerical one in every direction (else None); ``sign_flip``: c = -1.
    ``fraction``: of the parts followed at ``depth`` where bisection stopped (1.0 for an entry-by-entry row);
    ``directions``: how many whole-row directions (or entries) the estimates rest on."""

    rel_size: float
    scale: float | None
    sign_flip: bool
    fraction: float
    depth: int
    directions: int

    def to_json(self) -> dict:
        return {
            "rel_size": _num(self.rel_size),
            "scale": None if self.scale is None else _num(self.scale),
            "sign_flip": self.sign_flip,
            "fraction": _num(self.fraction),
            "depth": self.depth,
            "directions": self.directions,
        }

    def describe(self, label: str) -> str:
        out = f"the error is spread over {label} (||e||/||g|| ~ {self.rel_size:.2g})"
        if self.sign_flip:
            return out + f"; {label} looks sign-flipped"
        if self.scale is not None:
            return out + f"; {label} looks scaled by {format_scale(self.scale)}"
        return out


@dataclass(frozen=True)
class Localisation:
    """What :func:`localise` found in one row.

    ``outcome``: ``"passed"`` (no wrong entry; the row passes ``verify`` fresh whole-row directions),
    ``"entries"`` (``wrong_entries``, all confirmed, worst first, at most ``MAX_LISTED``, ``more`` = how many
    others; ``verified``: the row with them corrected passes fresh directions), ``"dense"`` (``dense`` set;
    entries confirmed before bisection stopped are listed too), ``"incomplete"`` (the budget or the rounds ran
    out; what was confirmed so far is listed, ``verified`` is False).
    ``evaluations``: loss evaluations used (``cost`` per derivative); ``derivatives``: directional and entry
    derivatives; ``calls``: calls of the two callables; ``rounds``: bisection rounds.
    """

    outcome: str
    wrong_entries: tuple[WrongEntry, ...]
    more: int
    dense: Dense | None
    verified: bool
    evaluations: int
    derivatives: int
    calls: int
    rounds: int

    @property
    def count(self) -> int:
        """All confirmed wrong entries, listed or not."""
        return len(self.wrong_entries) + self.more

    def to_json(self) -> dict:
        return {
            "outcome": self.outcome,
            "wrong_entries": [e.to_json() for e in self.wrong_entries],
            "more": self.more,
            "dense": None if self.dense is None else self.dense.to_json(),
            "verified": self.verified,
            "evaluations": self.evaluations,
            "derivatives": self.derivatives,
            "calls": self.calls,
            "rounds": self.rounds,
        }

    def describe(self, label: str) -> str:
        """One line for a report, e.g. ``wi: 1 wrong entry: [12, 40] analytic ... numeric ...``."""
        k = self.count
        listed = "; ".join(
            f"{list(e.index)} analytic {e.analytic:.4g}, numeric {e.numeric:.4g}"
            for e in self.wrong_entries[:3]
        )
        rest = k - min(3, len(self.wrong_entries))
        entries = f"{k} wrong entr{'y' if k == 1 else 'ies'}: {listed}" + (
            f" (and {rest} more)" if rest else ""
        )
        if self.outcome == "passed":
            return f"{label}: no wrong entry found; the row passes fresh directions"
        if self.outcome == "entries":
            return f"{label}: {entries}"
        if self.outcome == "dense":
            return self.dense.describe(label) + (f"; {entries}" if k else "")
        return f"{label}: localisation stopped after {self.evaluations} evaluations (budget or rounds); " + (
            entries if k else "no wrong entry confirmed yet"
        )


def format_scale(c: float) -> str:
    """``c`` with enough digits to show its distance from 1 (``1.00001``, ``0.99999999``, ``-1``)."""
    d = abs(c - 1.0)
    digits = (
        6 if d == 0 or not math.isfinite(d) or d >= 1e-3 else min(17, int(-math.floor(math.log10(d))) + 3)
    )
    return f"{c:.{digits}g}"


def localise(
    analytic,
    directional,
    entries,
    *,
    rtol: float,
    atol: float = 0.0,
    rng: np.random.Generator,
    cost: int = 1,
    budget: int | None = None,
    screen=None,
    verify: int = VERIFY,
    guard: int = GUARD,
    max_listed: int = MAX_LISTED,
) -> Localisation:
    """Find the wrong entries of one row (see the module docstring for the algorithm).

    ``analytic``: the row's analytic gradient, any shape (indices are reported in it), real.
    ``directional(V) -> (numeric, noise)``: ``V`` ``(m, size)`` float64 directions over the row's flat
    entries (zero outside a subset); returns the m numerical directional derivatives and their round-off
    estimates, each ``(m,)``. ``entries(flat_idx) -> (numeric, noise)``: the finite differences of single
    entries, each shaped like ``flat_idx``. ``rtol``, ``atol``: the check's (:mod:`gradcheck.tolerance`).
    ``rng``: the row's generator (:func:`rng_for`). ``cost``: loss evaluations per derivative (1 for complex
    step, 2 central, 4 richardson); ``budget``: at most this many evaluations (None: no limit; the result is
    ``"incomplete"`` when it runs out). ``screen``: optional ``(V (m, size), numeric (m,), noise (m,))``, the
    whole-row directions the screen already evaluated, used as the first round's root test instead of
    ``verify`` new ones. ``guard``: fresh draws per re-test; ``max_listed``: entries listed.

    Raises :class:`gradcheck.protocol.ProtocolError` for bad arguments and for callables returning the wrong
    shapes (checked in this order: analytic, the numbers in signature order, the callables, rng, screen, then
    each call's result).
    """
    run = _Run(
        _validated_analytic(analytic),
        directional,
        entries,
        rtol=number("rtol", rtol),
        atol=number("atol", atol, allow_zero=True),
        rng=rng,
        cost=count("cost", cost),
        budget=None if budget is None else count("budget", budget, lowest=0),
        verify=count("verify", verify),
        guard=count("guard", guard, lowest=0),
        max_listed=count("max_listed", max_listed, lowest=0),
    )
    run.check_inputs(screen)
    try:
        return run.direct() if run.n <= DIRECT else run.rounds_()
    except _OutOfBudget:
        return run.result("incomplete", verified=False)


# ---- validation


def _validated_analytic(analytic) -> np.ndarray:
    arr = np.asarray(analytic)
    if arr.dtype.kind not in "biufc":
        raise ProtocolError(
            f"analytic: expected a numeric array (the row's analytic gradient), got dtype {arr.dtype}"
        )
    if arr.size == 0:
        raise ProtocolError(
            f"analytic: the row has no entries (shape {arr.shape}); there is nothing to localise"
        )
    return arr


def _pair(result, m: int, what: str, verb: str = "returned") -> tuple[np.ndarray, np.ndarray]:
    """``(numeric, noise)`` from a callable (or the ``screen`` argument) for m derivatives, as two float
    arrays ``(m,)``."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise ProtocolError(f"{what} must return a pair (numeric, noise), got {type(result).__name__}")
    numeric, noise = (np.asarray(x) for x in result)
    if numeric.dtype.kind not in "biufc" or noise.dtype.kind not in "biufc":
        raise ProtocolError(f"{what} {verb} non-numeric values (dtypes {numeric.dtype}, {noise.dtype})")
    if numeric.size != m:
        raise ProtocolError(
            f"{what} {verb} {numeric.size} numerical derivatives (shape {numeric.shape}) for {m} "
            f"{'entries' if what.startswith('entries') else 'directions'}; expected shape ({m},)"
        )
    if noise.size not in (1, m):
        raise ProtocolError(
            f"{what} {verb} {noise.size} round-off estimates (shape {noise.shape}) for {m} "
            f"derivatives; expected shape ({m},) or a scalar"
        )
    numeric = numeric.real.astype(np.float64).reshape(m)
    return numeric, np.broadcast_to(noise.real.astype(np.float64).reshape(-1), (m,)).copy()


class _OutOfBudget(Exception):
    pass


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """``a . b`` without BLAS: OpenBLAS threads a dot product above ~10,000 entries, and on a busy machine its
    threads' spin-waits cost ~15 ms per call (measured: 3 us at 8,000 entries, 15 ms at 15,000, load 2)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return float(np.sum(np.multiply(a, b)))


def _num(x: float):
    return float(x) if math.isfinite(x) else str(x)


# ---- the algorithm


@dataclass
class _Node:
    """A subset ``[lo, hi)`` of the row's flat entries at ``depth``, its direction (``signs`` on the subset)
    and its measured or inferred directional derivative."""

    lo: int
    hi: int
    depth: int
    signs: np.ndarray
    numeric: float
    noise: float
    ratio: float = 0.0


class _Run:
    def __init__(
        self, analytic, directional, entries, *, rtol, atol, rng, cost, budget, verify, guard, max_listed
    ):
        self.shape = analytic.shape
        self.g0 = np.ascontiguousarray(analytic.real, dtype=np.float64).reshape(-1)
        self.g = self.g0.copy()  # the analytic gradient, every evaluated entry replaced by its numeric
        self.n = self.g0.size
        self.directional, self.entries = directional, entries
        self.rtol, self.atol, self.rng, self.cost, self.budget = rtol, atol, rng, cost, budget
        self.verify, self.guard, self.max_listed = verify, guard, max_listed
        self.known: dict[int, tuple[float, float]] = {}  # flat index -> (numeric, noise) of evaluated entries
        self.confirmed: list[int] = []
        self.derivatives = self.calls = self.rounds = 0
        self.first = None  # the first round's whole-row directions (V, numeric, noise)
        self.deepest = (0.0, 0)  # (fraction followed, depth) at the deepest level of the last bisection
        self.dense: Dense | None = None

    def check_inputs(self, screen) -> None:
        for name, fn in (("directional", self.directional), ("entries", self.entries)):
            if not callable(fn):
                raise ProtocolError(f"{name}: expected a callable, got {type(fn).__name__}")
        if not isinstance(self.rng, np.random.Generator):
            raise ProtocolError(
                f"rng: expected a numpy Generator (gradcheck.fast.localise.rng_for(seed, row)), "
                f"got {type(self.rng).__name__}"
            )
        if screen is None:
            self.screen = None
            return
        if not isinstance(screen, (tuple, list)) or len(screen) != 3:
            raise ProtocolError(
                "screen: expected (V (m, size), numeric (m,), noise (m,)), the screen's directions"
            )
        V = np.asarray(screen[0])
        if V.ndim != 2 or V.shape[1] != self.n or V.shape[0] < 1 or V.dtype.kind not in "biuf":
            raise ProtocolError(
                f"screen: directions must be a real array (m, {self.n}) over the row's "
                f"{self.n} entries, got shape {V.shape} dtype {V.dtype}"
            )
        numeric, noise = _pair(tuple(screen[1:]), V.shape[0], "screen:", verb="has")
        self.screen = (V.astype(np.float64), numeric, noise)

    # -- evaluation

    def _spend(self, m: int) -> None:
        if self.budget is not None and (self.derivatives + m) * self.cost > self.budget:
            raise _OutOfBudget
        self.derivatives += m
        self.calls += 1

    def measure(self, tests: list[tuple[int, int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """Directional derivatives along ``signs`` on ``[lo, hi)`` for each test, in calls of at most
        ``CALL_BYTES`` of directions (one call per level below that)."""
        per_call = max(1, CALL_BYTES // (8 * self.n))
        numeric, noise = np.empty(len(tests)), np.empty(len(tests))
        for start in range(0, len(tests), per_call):
            part = tests[start : start + per_call]
            self._spend(len(part))
            V = np.zeros((len(part), self.n))
            for k, (lo, hi, signs) in enumerate(part):
                V[k, lo:hi] = signs
            V.flags.writeable = False
            numeric[start : start + len(part)], noise[start : start + len(part)] = _pair(
                self.directional(V), len(part), f"directional(V) with V of shape {V.shape}"
            )
        return numeric, noise

    def entry_values(self, idx: list[int]) -> None:
        """Evaluate the entries not evaluated yet (one ``entries`` call) into ``known``."""
        new = [j for j in idx if j not in self.known]
        if not new:
            return
        self._spend(len(new))
        flat = np.array(new, dtype=np.intp)
        flat.flags.writeable = False
        numeric, noise = _pair(
            self.entries(flat), len(new), f"entries(flat_idx) with flat_idx of shape ({len(new)},)"
        )
        self.known.update({j: (float(a), float(b)) for j, a, b in zip(new, numeric, noise)})

    # -- tolerances

    def _floor_scale(self) -> float:
        finite = self.g[np.isfinite(self.g)]
        return float(np.max(np.abs(finite), initial=0.0))

    def ratio(self, lo: int, hi: int, signs: np.ndarray, numeric: float, noise: float, G: float) -> float:
        """error / tolerance of the subset test on ``[lo, hi)``; inf when anything is not finite."""
        g = self.g[lo:hi]
        a = _dot(signs, g)
        size = max(math.sqrt(_dot(g, g)), G)
        if not (math.isfinite(a) and math.isfinite(numeric) and math.isfinite(size)):
            return math.inf
        tol = max(self.atol, NOISE_FACTOR * noise, self.rtol * size) + self.rtol * abs(numeric)
        err = abs(a - numeric)
        return err / tol if tol > 0 else (math.inf if err > 0 else 0.0)

    def entry_ratios(self) -> dict[int, float]:
        """error / tolerance of every evaluated entry, by the full check's rule (see the module docstring)."""
        idx = np.fromiter(self.known, dtype=np.intp, count=len(self.known))
        numeric = np.array([self.known[j][0] for j in idx])
        noise = np.array([self.known[j][1] for j in idx])
        others = np.ones(self.n, bool)
        others[idx] = False
        rest = self.g0[others]
        scale = max(
            float(np.max(np.abs(rest[np.isfinite(rest)]), initial=0.0)),
            float(np.max(np.abs(numeric[np.isfinite(numeric)]), initial=0.0)),
        )
        a = self.g0[idx]
        with np.errstate(invalid="ignore", over="ignore"):
            tol = np.maximum(
                np.maximum(self.atol, NOISE_FACTOR * noise), self.rtol * scale
            ) + self.rtol * np.abs(numeric)
            err = np.abs(a - numeric)
            r = np.where(tol > 0, err / np.where(tol > 0, tol, 1.0), np.where(err > 0, np.inf, 0.0))
        r = np.where(np.isfinite(a) & np.isfinite(numeric), r, np.inf)
        return {int(j): float(x) for j, x in zip(idx, r)}

    def confirm(self) -> int:
        """Re-derive the confirmed entries from everything evaluated, and replace every evaluated entry of
        ``g`` by its numerical value (a discrepancy within an entry's own tolerance is then no longer
        followed). Returns how many confirmed entries are new."""
        ratios = self.entry_ratios()
        confirmed = sorted(j for j, r in ratios.items() if r > 1.0)
        new = len(set(confirmed) - set(self.confirmed))
        self.confirmed = confirmed
        self.g = self.g0.copy()
        for j, (numeric, _) in self.known.items():
            self.g[j] = numeric
        return new

    # -- rounds

    def direct(self) -> Localisation:
        """A small row: every entry by its own finite difference."""
        self.entry_values(list(range(self.n)))
        self.confirm()
        self.rounds = 1
        if len(self.confirmed) >= 2 and len(self.confirmed) >= DENSE_FRACTION * self.n:
            idx = sorted(self.known)
            n = np.array([self.known[j][0] for j in idx])
            noise = np.array([self.known[j][1] for j in idx])
            self.dense = self.spread(self.g0[idx], n, noise, self._entry_scale(n), fraction=1.0, depth=0)
            return self.result("dense", verified=True)
        return self.result("entries" if self.confirmed else "passed", verified=True)

    def _entry_scale(self, numeric: np.ndarray) -> float:
        finite = numeric[np.isfinite(numeric)]
        return float(np.max(np.abs(finite), initial=0.0))

    def whole_row(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The round's root directions: the screen's (first round, when given) or ``verify`` fresh ones."""
        if self.screen is not None and self.first is None:
            return self.screen
        V = self.rng.integers(0, 2, size=(self.verify, self.n)).astype(np.float64) * 2.0 - 1.0
        numeric, noise = self.measure([(0, self.n, v) for v in V])
        return V, numeric, noise

    def rounds_(self) -> Localisation:
        idle = 0  # consecutive rounds that confirmed no new entry
        for _ in range(MAX_ROUNDS):
            V, numeric, noise = self.whole_row()
            if self.first is None:
                self.first = (V, numeric, noise)
            self.rounds += 1
            G = self._floor_scale()
            ratios = np.array([self.ratio(0, self.n, v, a, b, G) for v, a, b in zip(V, numeric, noise)])
            worst = int(np.argmax(ratios))
            fails = self.row_fails(V, numeric, noise)
            if ratios[worst] <= NEAR or (idle >= 2 and not fails):
                return self.result("entries" if self.confirmed else "passed", verified=True)
            if idle >= 2:  # two rounds found nothing, and the row still fails: no entry explains it
                self.dense = self.first_spread(*self.deepest)
                return self.result("dense", verified=False)
            root = _Node(
                0, self.n, 0, V[worst], float(numeric[worst]), float(noise[worst]), float(ratios[worst])
            )
            leaves, stop = self.bisect(root)
            if stop is not None:
                # spread, but within the row's tolerance (as the screen and the full check judge it): passes
                if not fails:
                    return self.result("entries" if self.confirmed else "passed", verified=True)
                self.dense = self.first_spread(*stop)
                return self.result("dense", verified=False)
            self.entry_values(leaves)
            idle = 0 if self.confirm() else idle + 1
            if len(self.confirmed) >= DENSE_FRACTION * self.n:
                self.dense = self.first_spread(1.0, 0)
                return self.result("dense", verified=False)
        return self.result("incomplete", verified=False)

    def row_fails(self, V: np.ndarray, numeric: np.ndarray, noise: np.ndarray) -> bool:
        """Whether whole-row directions fail by the screen's rule (floor ``rtol * max_k |numeric_k|``): the
        verdict on a spread error. For a scaled block it matches the full check (both pass a scale error up to
        ~2 rtol); the subset floor ``rtol * ||g||_2`` used for following is up to 2.6x stricter."""
        a = np.sum(V * self.g, axis=1)
        with np.errstate(invalid="ignore", over="ignore"):
            finite = np.isfinite(numeric)
            scale = float(np.max(np.abs(numeric[finite]), initial=0.0))
            tol = np.maximum(
                np.maximum(self.atol, NOISE_FACTOR * noise), self.rtol * scale
            ) + self.rtol * np.abs(numeric)
            return bool(np.any(~(np.abs(a - numeric) <= tol)))

    def bisect(self, root: _Node) -> tuple[list[int], tuple[float, int] | None]:
        """One round of bisection from ``root``. Returns the entries of followed leaves, and (fraction, depth)
        when the error looks dense (else None)."""
        G = self._floor_scale()
        followed, guards, leaves = [root], [], []
        per_depth: dict[int, int] = {0: 1}
        while followed or guards:
            splits = [s for s in followed if s.hi - s.lo > LEAF]
            for s in followed:
                if s.hi - s.lo <= LEAF:
                    leaves.extend(range(s.lo, s.hi))
            tests = [(s.lo, (s.lo + s.hi) // 2, s.signs[: (s.lo + s.hi) // 2 - s.lo]) for s in splits]
            fresh = [(lo, hi, d, self._signs(hi - lo)) for lo, hi, d in guards for _ in range(self.guard)]
            tests += [(lo, hi, signs) for lo, hi, _, signs in fresh]
            if not tests:
                break
            numeric, noise = self.measure(tests)
            followed, guards = [], []
            for s, n_left, e_left in zip(splits, numeric, noise):
                mid = (s.lo + s.hi) // 2
                for child in (
                    _Node(s.lo, mid, s.depth + 1, s.signs[: mid - s.lo], n_left, e_left),
                    _Node(
                        mid, s.hi, s.depth + 1, s.signs[mid - s.lo :], s.numeric - n_left, s.noise + e_left
                    ),
                ):
                    self._judge(child, G, followed, guards, per_depth)
            for k in range(0, len(fresh), max(1, self.guard)):
                draws = [
                    _Node(lo, hi, d, signs, n, e)
                    for (lo, hi, d, signs), n, e in zip(
                        fresh[k : k + self.guard], numeric[len(splits) + k :], noise[len(splits) + k :]
                    )
                ]
                for node in draws:
                    node.ratio = self.ratio(node.lo, node.hi, node.signs, node.numeric, node.noise, G)
                best = max(draws, key=lambda x: x.ratio)
                if best.ratio > NEAR:
                    followed.append(best)
                    per_depth[best.depth] = per_depth.get(best.depth, 0) + 1
            for d, f in per_depth.items():
                parts = min(2**d, self.n)
                if f >= DENSE_FAILING and f >= DENSE_FRACTION * parts:
                    return leaves, (f / parts, d)
            followed.sort(key=lambda x: x.lo)
        d = max(per_depth)
        self.deepest = (per_depth[d] / min(2**d, self.n), d)
        return leaves, None

    def _judge(self, child: _Node, G: float, followed: list, guards: list, per_depth: dict) -> None:
        child.ratio = self.ratio(child.lo, child.hi, child.signs, child.numeric, child.noise, G)
        if child.ratio > NEAR:
            followed.append(child)
            per_depth[child.depth] = per_depth.get(child.depth, 0) + 1
        elif self.guard:
            guards.append((child.lo, child.hi, child.depth))

    def _signs(self, size: int) -> np.ndarray:
        return self.rng.integers(0, 2, size=size).astype(np.float64) * 2.0 - 1.0

    # -- dense errors and results

    def first_spread(self, fraction: float, depth: int) -> Dense:
        """The dense estimates from the first round's whole-row directions, against the original gradient."""
        V, numeric, noise = self.first
        G = float(np.max(np.abs(self.g0[np.isfinite(self.g0)]), initial=0.0))
        size = max(math.sqrt(_dot(self.g0, self.g0)), G)
        return self.spread(np.sum(V * self.g0, axis=1), numeric, noise, size, fraction=fraction, depth=depth)

    def spread(
        self, a: np.ndarray, n: np.ndarray, noise: np.ndarray, size: float, *, fraction: float, depth: int
    ) -> Dense:
        """``||e||/||g||``, scale and sign flip from pairs (analytic, numeric) of directions or entries."""
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            nn = _dot(n, n)
            rel = math.sqrt(_dot(a - n, a - n) / nn) if nn > 0 else math.inf
            c = _dot(a, n) / nn if nn > 0 else math.nan
            floor = np.maximum(np.maximum(self.atol, NOISE_FACTOR * noise), self.rtol * size)
            fits = math.isfinite(c) and bool(
                np.all(np.abs(a - c * n) <= NEAR * (floor + self.rtol * np.abs(c * n)))
            )
            flip = bool(np.all(np.abs(a + n) <= NEAR * (floor + self.rtol * np.abs(n))))
        return Dense(
            rel_size=rel if math.isfinite(rel) else math.inf,
            scale=c if fits else None,
            sign_flip=flip and fits,
            fraction=float(fraction),
            depth=int(depth),
            directions=int(a.size),
        )

    def result(self, outcome: str, *, verified: bool) -> Localisation:
        ratios = self.entry_ratios() if self.known else {}
        found = [j for j in self.confirmed if ratios.get(j, 0.0) > 1.0]
        rows = []
        for j in found:
            n = self.known[j][0]
            a = float(self.g0[j])
            err = abs(a - n) if math.isfinite(a) and math.isfinite(n) else math.inf
            rows.append(
                WrongEntry(
                    tuple(int(i) for i in np.unravel_index(j, self.shape)) if self.shape else (),
                    a,
                    n,
                    err,
                    ratios[j],
                )
            )
        rows.sort(key=lambda e: (-e.abs_err, e.index))
        listed = tuple(rows[: self.max_listed])
        return Localisation(
            outcome=outcome,
            wrong_entries=listed,
            more=len(rows) - len(listed),
            dense=self.dense if outcome == "dense" else None,
            verified=verified,
            evaluations=self.derivatives * self.cost,
            derivatives=self.derivatives,
            calls=self.calls,
            rounds=self.rounds,
        )


# ---- the two callables over an evaluator (the checker's hook)


def probes(
    ev,
    kind: str,
    name: str,
    *,
    method: str,
    step: float,
    dtype,
    x=None,
    shape=None,
    t: int | None = None,
    flat_idx=None,
):
    """``(directional, entries)`` for one row of a check, over an evaluator of the checker
    (:class:`gradcheck.finite_diff.SerialEvaluator` or :class:`gradcheck.fast.chunked.ChunkedEvaluator`:
    ``losses``, and ``direction_losses_many`` or ``direction_losses``), with the check's ``method``
    (``"central"``, ``"richardson"``, ``"complex"``; the evaluator must be complex for ``"complex"``) and base
    ``step``.

    ``kind="param"``: ``x`` the block (real array); the row is its entries ``flat_idx`` (default: all).
    ``kind="state"``: ``shape`` the state's ``(T, *state_shape)``; the row is the tap's entries ``flat_idx``
    (default: those of step ``t``). A direction v with nnz nonzero entries is stepped by ``step * scale /
    sqrt(nnz)`` (complex step: ``step * scale``), ``scale = max(1, max|x|)`` over the row (1 for a state), like
    the screen's; ``directional(V)`` makes ONE ``direction_losses_many`` call for all rows of V. ``entries``
    are the check's own per-entry differences (:func:`gradcheck.finite_diff.derivatives`).
    """
    from .. import finite_diff as fd

    if method not in fd.STENCILS:
        raise ProtocolError(f"method: expected one of {list(fd.STENCILS)}, got {method!r}")
    flat_x, shape, idx = _row_geometry(kind, name, x, shape, t, flat_idx, dtype)
    scale = max(1.0, float(np.max(np.abs(flat_x[idx]), initial=0.0))) if kind == "param" else 1.0
    what = f"parameter {name!r}" if kind == "param" else f"state {name!r}"

    def directional(V):
        V = np.asarray(V)
        m = V.shape[0]
        nnz = np.maximum(np.count_nonzero(V, axis=1), 1)
        delta = np.full(m, step * scale) if method == "complex" else step * scale / np.sqrt(nnz)
        deltas = np.array([c * delta for c in fd.STENCILS[method][0]])  # (S, m)
        dirs = np.zeros((m, *shape))
        dirs.reshape(m, -1)[:, idx] = V.reshape(m, -1)
        dirs.flags.writeable = False
        L = _direction_losses(ev, kind, name, dirs, deltas)
        return fd.apply_stencil(L, delta, method), fd.round_off_noise(L, delta, method, dtype)

    def entries(local):
        rows = idx[np.asarray(local, dtype=np.intp)]
        return fd.derivatives(lambda j, d: ev.losses(kind, name, j, d), flat_x, rows, method, step, what)

    return directional, entries


def _row_geometry(kind, name, x, shape, t, flat_idx, dtype):
    """``(flat point, block or tap shape, the row's flat indices)`` of a probe's row."""
    if kind == "param":
        x = np.asarray(x)
        idx = np.arange(x.size) if flat_idx is None else np.asarray(flat_idx, dtype=np.intp)
        return x.reshape(-1), x.shape, idx
    if kind != "state":
        raise ProtocolError(f"kind: expected 'param' or 'state', got {kind!r}")
    if shape is None or (flat_idx is None and (t is None or not 0 <= t < shape[0])):
        raise ProtocolError(
            f"state {name!r}: probes need shape (T, *state_shape) and 0 <= t < T, got shape {shape}, t {t}"
        )
    shape = tuple(int(s) for s in shape)
    per = int(np.prod(shape[1:], dtype=int))
    idx = t * per + np.arange(per) if flat_idx is None else np.asarray(flat_idx, dtype=np.intp)
    return np.zeros(shape[0] * per, dtype=dtype), shape, idx


def _direction_losses(ev, kind, name, dirs, deltas) -> np.ndarray:
    """L along each direction at each stencil step, ``(S, m)``: one ``direction_losses_many`` request, else
    the evaluator's ``direction_losses`` through the checker's own fallback (``request_by_calls``)."""
    many = getattr(ev, "direction_losses_many", None)
    if many is not None:
        return np.asarray(many([(kind, name, dirs, deltas)])[0]).reshape(deltas.shape)
    return request_by_calls(ev.direction_losses, kind, name, dirs, deltas)
