"""The same bug through ``torch.autograd.gradcheck`` and through ``gradcheck.torch``, for docs/torch.md.

    python -m examples.torch_compare BUG [--fast]   # what torch.autograd.gradcheck says (exact, or fast mode)
    python -m examples.torch_compare BUG --ours     # our verdict on the same function at the same point
    python -m examples.torch_compare --table        # the catalogue: every bug through both (docs/torch.md)

BUG is a name of ``examples.torch_cells.BUGS`` (or ``none`` for the correct cell); the sizes are the
factories' defaults (x_dim 3, hidden 4, 4 steps, batch 2, seed 0).
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.autograd.gradcheck import GradcheckError

from . import torch_cells as tc


def torchs(bug, fast: bool) -> str:
    """torch.autograd.gradcheck's message on the function with ``bug`` (its exception text, or "passed")."""
    inputs = tc.problem(tc.BUGS[bug][0] if bug else "lstm")
    args = tuple(a.clone().requires_grad_(True) for a in inputs.values())
    try:
        torch.autograd.gradcheck(tc.function(bug), args, fast_mode=fast)
    except GradcheckError as exc:
        return f"GradcheckError: {exc}"
    return "passed"


def ours(bug) -> str:
    from gradcheck import check

    return check(tc.make(bug), mode="full").verdict()


def torch_caught(bug, fast: bool) -> bool:
    return torchs(bug, fast) != "passed"


def table(reports: dict, caught) -> list[str]:
    """The catalogue as Markdown: ``reports`` bug -> our Report (None: the correct cells), ``caught(bug,
    fast)`` -> whether torch.autograd.gradcheck fails it."""
    lines = [
        "| bug | what it does | our failing rows | first bad step | worst row, entry | torch exact | torch fast |",
        "|---|---|---|---|---|---|---|",
    ]
    for bug in tc.BUGS:
        r = reports[bug]
        bad = [row.label for row in r.rows if not row.passed]
        passing = [row.label for row in r.rows if row.passed]
        rows = ", ".join(bad) if len(bad) <= 4 else f"{len(bad)} of {len(r.rows)}"
        rows += f" (all but {', '.join(passing)})" if len(bad) > 4 and passing else ""
        fb = r.first_bad_step
        step = f"{fb['name']} at t={fb['t']}" if fb else "-"
        w = r.worst_first()[0]
        yes = {True: "caught", False: "passed"}
        lines.append(
            f"| {bug} | {tc.BUGS[bug][1]} | {rows} | {step} | {w.label} ({', '.join(map(str, w.worst_index))}) | "
            f"{yes[caught(bug, False)]} | {yes[caught(bug, True)]} |"
        )
    ok = reports[None].passed and all(not reports[b].passed for b in tc.BUGS)
    lines.append("")
    lines.append(
        f"Correct cells: {'pass' if reports[None].passed else 'FAIL'}; bugs caught by us: "
        f"{sum(not reports[b].passed for b in tc.BUGS)} of {len(tc.BUGS)}" + ("" if ok else " (NOT ALL)")
    )
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bug", nargs="?", choices=["none", *tc.BUGS])
    ap.add_argument("--table", action="store_true", help="the whole catalogue as a Markdown table")
    ap.add_argument("--fast", action="store_true", help="torch's fast mode")
    ap.add_argument("--ours", action="store_true", help="gradcheck.torch instead of torch.autograd.gradcheck")
    args = ap.parse_args(argv)
    if args.table:
        from gradcheck import check

        reports = {b: check(tc.make(b), mode="full") for b in [None, *tc.BUGS]}
        print("\n".join(table(reports, torch_caught)))
        return 0
    if args.bug is None:
        ap.error("give a BUG, or --table")
    bug = None if args.bug == "none" else args.bug
    torch.set_printoptions(precision=4, linewidth=100)
    print(ours(bug) if args.ours else torchs(bug, args.fast))
    return 0


if __name__ == "__main__":
    sys.exit(main())
