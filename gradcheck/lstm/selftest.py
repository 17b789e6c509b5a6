"""``gradcheck selftest``: check the checker on the reference and on every mutant of :mod:`gradcheck.lstm.mutants`.

A gate that passes a wrong gradient is worse than no gate. The self-test runs :func:`gradcheck.check` (the same
defaults as ``gradcheck run``) on the reference LSTM and on each mutant of its backward pass, and exits 0 only when
the reference passes and every mutant is *caught with the expected rows named*: every row the mutant changes
fails (in float32, or with ``--lenient``: at least the rows it changes directly), every other row passes, and
the first divergence in time is the one derived from the equations (see :class:`gradcheck.lstm.mutants.Expectation`).

Configuration (explicit, printed and recorded in the report): the reference LSTM with x_dim 3, hidden 4, T 5,
``loss="full"``, seed 0, nonzero h0/s0, independent draws per block (small: correctness does not need scale,
and T 5 leaves two steps behind each first divergence). Each mutant runs on the variant whose code path it breaks.

Methods: float64 uses ``gradcheck run``'s default, central differences (rtol 1e-6). float32 uses the complex step
(rtol 3e-4): a float32 central difference is only good to ~1e-4 of a row (round-off ~6e-8 |L| over a 4.9e-3
step), so its tolerance (1e-2) cannot see a 0.1% error in one block or the attenuated errors a BPTT bug carries
back in time; the complex step has no cancellation. The measurements behind this are in docs/benchmarks.md
("Tolerances"). Rows changed only by an error that shrank on its way back in time may pass in float32 (they are
listed, not required); rows the bug leaves alone must pass.

The demo part trains the write-up's demo (``lstm_ref.demo.train``) with the right gradient and with the famous
wrong "fix" (``drop_ds_next``): the wrong one reaches a lower loss while the checker rejects its gradient.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..errors import ProtocolError
from . import MIN_STEPS

if (
    TYPE_CHECKING
):  # imported on first use: ``gradcheck --help`` and the other commands do not pay for numpy here
    from . import mutants as mut
    from .reference import ReferenceLSTM


DEFAULT_METHOD = {"float64": "central", "float32": "complex"}


def check(model, **kwargs):
    """:func:`gradcheck.check`, imported on first use (and replaceable in tests)."""
    from ..checker import check as _check

    return _check(model, **kwargs)


def _catalog():
    from . import mutants

    return mutants


@dataclass(frozen=True)
class SelftestConfig:
    """The self-test's problem. ``method=None``: central in float64, complex step in float32 (see module doc)."""

    x_dim: int = 3
    hidden: int = 4
    steps: int = 5
    seed: int = 0
    loss: str = "full"
    dtype: str = "float64"
    method: str | None = None
    lenient: bool = False

    @property
    def resolved_method(self) -> str:
        return self.method or DEFAULT_METHOD[self.dtype]

    @property
    def strict(self) -> bool:
        """float64: every row a mutant changes must fail; float32 (or ``lenient``): its core rows (Expectation)."""
        return self.dtype == "float64" and not self.lenient

    def model(self, mutant: mut.Mutant | None = None) -> ReferenceLSTM:
        from .reference import ReferenceLSTM

        return ReferenceLSTM(
            self.x_dim,
            self.hidden,
            self.steps,
            variant=mutant.variant if mutant else "simple",
            loss=self.loss,
            seed=self.seed,
            dtype=self.dtype,
            backward=mutant.backward if mutant else None,
        )


@dataclass
class Case:
    """One line of the self-test: the reference (``name="reference"``) or one mutant."""

    name: str
    description: str
    variant: str
    ok: bool  # reference: passed; mutant: caught with the expected rows named
    rows_failed: int
    rows_total: int
    failing_rows: list[str]
    first_divergence: dict | None
    expected_first_divergence: dict | None
    expected_params: list[str]
    method: str
    verdicts: list[str]  # the step-size re-check's verdicts on the failing rows (e.g. "wrong gradient")
    problems: list[str] = field(default_factory=list)
    why: str = ""
    not_flagged: list[str] = field(
        default_factory=list
    )  # changed only by an attenuated error, passed (float32)

    def to_dict(self) -> dict:
        return asdict(self)


def _fb(d: dict | None) -> str:
    return "-" if d is None else f"{d['name']} at t={d['t']}"


def run_case(config: SelftestConfig, mutant: mut.Mutant | None) -> Case:
    mut = _catalog()
    method = config.resolved_method
    report = check(config.model(mutant), method=method, seed=config.seed)
    failing = report.failing
    verdicts = sorted({r.diagnosis["verdict"] for r in failing if r.diagnosis})
    common = dict(
        rows_failed=len(failing),
        rows_total=len(report.rows),
        failing_rows=[r.label for r in failing],
        first_divergence=report.first_bad_step,
        method=method,
        verdicts=verdicts,
    )
    if mutant is None:
        return Case(
            "reference",
            "the reference BPTT (lstm_ref.backward)",
            "simple",
            report.passed,
            expected_first_divergence=None,
            expected_params=[],
            problems=[f"{label} failed but must pass" for label in common["failing_rows"]],
            **common,
        )
    exp = mutant.expected(config.steps)
    ok, problems = mut.outcome(report, exp, strict=config.strict)
    not_flagged = [
        r.label
        for r in report.rows
        if r.passed and (r.name in exp.params if r.kind == "param" else (r.name, r.t) in exp.states)
    ]
    return Case(
        mutant.name,
        mutant.description,
        mutant.variant,
        ok and not report.passed,
        expected_first_divergence=exp.first_bad_step,
        expected_params=sorted(exp.params),
        problems=problems,
        why=mutant.why,
        not_flagged=[] if problems else not_flagged,
        **common,
    )


@dataclass
class DemoResult:
    """The write-up's demo trained with the right gradient and with the wrong "fix" (100 iterations)."""

    iterations: int
    right_loss: float
    wrong_fix_loss: float
    wrong_fix_rejected: bool

    def line(self) -> str:
        lower = "lower" if self.wrong_fix_loss < self.right_loss else "not lower"
        verdict = "rejects it" if self.wrong_fix_rejected else "does NOT reject it"
        return (
            f"demo ({self.iterations} iterations, write-up size): right gradient -> loss "
            f"{self.right_loss:.3e}; wrong 'fix' (drop_ds_next) -> loss {self.wrong_fix_loss:.3e} ({lower}); "
            f"the checker {verdict}"
        )


def run_demo(wrong_fix_caught: bool, *, iterations: int = 100) -> DemoResult:
    from lstm_ref.demo import train
    from lstm_ref.model import forward, step_loss_grads, step_losses

    wrong = _catalog().BY_NAME["drop_ds_next"].backward

    def wrong_grads(params, xs, ys, *, variant="simple", loss="seed"):
        tr = forward(params, xs, variant=variant)
        L = step_losses(tr.h, ys, loss).sum().item()
        bp = wrong(params, tr, step_loss_grads(tr.h, ys, loss))
        return L, bp.param_grads, bp.dh, bp.ds

    right = list(train(iterations=iterations))[-1].loss
    wrong_loss = list(train(iterations=iterations, grad_fn=wrong_grads))[-1].loss
    return DemoResult(iterations, right, wrong_loss, wrong_fix_caught)


@dataclass
class SelftestResult:
    config: SelftestConfig
    cases: list[Case]
    demo: DemoResult | None
    seconds: float

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.cases)

    @property
    def caught(self) -> int:
        return sum(c.ok for c in self.cases if c.name != "reference")

    @property
    def mutants(self) -> int:
        return sum(c.name != "reference" for c in self.cases)

    def verdict(self) -> str:
        ref = self.cases[0]
        head = "PASS" if self.passed else "FAIL"
        return (
            f"{head}: reference {'passes' if ref.ok else 'FAILS'}; {self.caught} of {self.mutants} mutants "
            f"caught with the expected rows named ({self.config.dtype}, {self.config.resolved_method}, "
            f"seed {self.config.seed})"
        )

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "config": asdict(self.config) | {"method": self.config.resolved_method},
            "strict": self.config.strict,
            "caught": self.caught,
            "mutants": self.mutants,
            "verdict": self.verdict(),
            "cases": [c.to_dict() for c in self.cases],
            "demo": asdict(self.demo) if self.demo else None,
            "seconds": self.seconds,
        }


def run_selftest(
    config: SelftestConfig = SelftestConfig(), *, names: list[str] | None = None, demo: bool = True
) -> SelftestResult:
    """Run the reference and the catalog (or the mutants in ``names``) through the checker."""
    mut = _catalog()
    if config.steps < MIN_STEPS:
        raise ProtocolError(
            f"steps: the self-test needs T >= {MIN_STEPS} (two steps behind each first "
            f"divergence), got {config.steps}"
        )
    if config.dtype not in DEFAULT_METHOD:
        raise ProtocolError(f"dtype: expected one of {list(DEFAULT_METHOD)}, got {config.dtype!r}")
    unknown = [n for n in names or [] if n not in mut.BY_NAME]
    if unknown:
        raise ProtocolError(f"unknown mutant(s) {unknown}; the catalog has {list(mut.BY_NAME)}")
    t0 = time.perf_counter()
    chosen = [mut.BY_NAME[n] for n in names] if names else list(mut.CATALOG)
    cases = [run_case(config, None)] + [run_case(config, m) for m in chosen]
    demo_result = None
    if demo:
        fix = next((c for c in cases if c.name == "drop_ds_next"), None)
        if fix is None:
            fix = run_case(config, mut.BY_NAME["drop_ds_next"])
        demo_result = run_demo(fix.ok)
    return SelftestResult(config, cases, demo_result, time.perf_counter() - t0)


# -------------------------------------------------------------------------------------------------- output

HEADERS = [
    "mutant",
    "caught?",
    "rows flagged",
    "blocks flagged",
    "first divergence (expected)",
    "method",
    "re-check",
]


def _cells(c: Case) -> list[str]:
    if c.name == "reference":
        status = "passes" if c.ok else "FAILS"
    else:
        status = "yes" if c.ok else "NO"
    fd = _fb(c.first_divergence)
    if c.name != "reference":
        fd += f" ({_fb(c.expected_first_divergence)})"
    blocks = [label for label in c.failing_rows if "[" not in label]
    blocks_cell = "all 8" if len(blocks) == 8 else (" ".join(blocks) or "-")
    return [
        c.name,
        status,
        f"{c.rows_failed}/{c.rows_total}",
        blocks_cell,
        fd,
        c.method,
        ", ".join(c.verdicts) or "-",
    ]


def _head(result: SelftestResult) -> str:
    cfg = result.config
    return (
        f"gradcheck selftest: reference LSTM x_dim {cfg.x_dim}, hidden {cfg.hidden}, T {cfg.steps}, "
        f"loss {cfg.loss}, seed {cfg.seed}, {cfg.dtype}, method {cfg.resolved_method}"
        f"{'' if cfg.strict else ' (not strict: rows changed only through an attenuated error may pass)'}"
    )


def _table(result: SelftestResult, tablefmt: str) -> str:
    from tabulate import tabulate

    return tabulate(
        [_cells(c) for c in result.cases], headers=HEADERS, tablefmt=tablefmt, disable_numparse=True
    )


def text(result: SelftestResult) -> str:
    """What ``gradcheck selftest`` prints: configuration, the table, every mismatch, the demo, the verdict."""
    parts = [_head(result), _table(result, "simple")]
    misses = [f"{c.name}: {p}" for c in result.cases for p in c.problems]
    if misses:
        parts.append("\n".join(misses))
    weak = [f"{c.name}: {', '.join(c.not_flagged)}" for c in result.cases if c.not_flagged]
    if weak:
        parts.append(
            "changed only through an error attenuated below the tolerance (allowed when not strict):\n  "
            + "\n  ".join(weak)
        )
    if result.demo:
        parts.append(result.demo.line())
    parts.append(result.verdict())
    return "\n\n".join(parts)


def markdown(result: SelftestResult) -> str:
    """``reports/selftest.md``: the same content, plus each mutant's derivation of its expected rows."""
    lines = ["# gradcheck selftest", "", _head(result), "", _table(result, "github"), "", "## Mutants", ""]
    for c in result.cases[1:]:
        lines.append(
            f"- **{c.name}** ({c.variant} variant): {c.description}. Expected: {c.why} "
            f"Flagged: {', '.join(c.failing_rows) or 'nothing'}."
        )
    misses = [f"- {c.name}: {p}" for c in result.cases for p in c.problems]
    if misses:
        lines += ["", "## Mismatches", "", *misses]
    if result.demo:
        lines += ["", "## Demo", "", result.demo.line()]
    lines += ["", f"**{result.verdict()}**", ""]
    return "\n".join(lines)
