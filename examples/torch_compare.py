"""The same bug through ``torch.autograd.gradcheck`` and through ``gradcheck.torch``, for docs/torch.md.

    python -m examples.torch_compare BUG [--fast]   # what torch.autograd.gradcheck says (exact, or fast mode)
    python -m examples.torch_compare BUG --ours     # our verdict on the same function at the same point

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bug", choices=["none", *tc.BUGS])
    ap.add_argument("--fast", action="store_true", help="torch's fast mode")
    ap.add_argument("--ours", action="store_true", help="gradcheck.torch instead of torch.autograd.gradcheck")
    args = ap.parse_args(argv)
    bug = None if args.bug == "none" else args.bug
    torch.set_printoptions(precision=4, linewidth=100)
    print(ours(bug) if args.ours else torchs(bug, args.fast))
    return 0


if __name__ == "__main__":
    sys.exit(main())
