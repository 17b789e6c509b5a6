"""Two measurements behind the design of ``gradcheck.torch`` (docs/torch.md, "Speed"), at nn.LSTM(50, 100), float64.

    python benchmarks/torch_choices.py [--rounds 12]

1. Chunks one at a time (the fallback after a stall) against two chunk threads at once (never falling back): ``--rounds`` alternating full checks of
   the two bias blocks (1,600 evaluations each, chunks of 128, diagnosis off); median and worst microseconds per
   evaluation of each.
2. ``torch.no_grad`` against ``torch.inference_mode`` for a plain ``nn.LSTM`` forward: CPU microseconds per call,
   best of 9 x 300 calls, three times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def threads_vs_serial(rounds: int) -> dict:
    import torch

    import gradcheck.torch as gt
    from gradcheck import check

    torch.manual_seed(0)
    module = torch.nn.LSTM(50, 100).double()
    x = torch.randn(4, 1, 50, dtype=torch.float64)
    serial, threaded = gt.Model(module, (x,)), gt.Model(module, (x,))
    serial._chunks.serial = True  # one chunk at a time (the fallback after a stall)
    threaded._chunks.STALL = float("inf")  # never falls back: two chunk threads throughout
    out: dict = {"one at a time": [], "2 chunk threads": []}
    for _ in range(rounds):
        for name, model in (("one at a time", serial), ("2 chunk threads", threaded)):
            t0 = time.perf_counter()
            r = check(model, mode="full", blocks=["bias_ih_l0", "bias_hh_l0"], diagnose=False, batch=128)
            evals = 2 * r.settings["coverage"]["entries_checked"]
            out[name].append((time.perf_counter() - t0) / evals * 1e6)
    return out


def no_grad_vs_inference(repeats: int = 3) -> list[tuple[float, float]]:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = torch.nn.LSTM(50, 100).double()
    x = torch.randn(4, 1, 50, dtype=torch.float64)

    def per_call(ctx) -> float:
        best = float("inf")
        for _ in range(9):
            c0 = time.process_time()
            with ctx():
                for _ in range(300):
                    m(x)
            best = min(best, (time.process_time() - c0) / 300 * 1e6)
        return best

    return [(per_call(torch.no_grad), per_call(torch.inference_mode)) for _ in range(repeats)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=12)
    args = ap.parse_args(argv)
    print(f"load average at the start {os.getloadavg()[0]:.2f}")
    for name, us in threads_vs_serial(args.rounds).items():
        print(
            f"{name}: median {statistics.median(us):.0f} us per evaluation, best {min(us):.0f}, "
            f"worst {max(us):.0f} (over {len(us)} checks)"
        )
    for ng, im in no_grad_vs_inference():
        print(f"nn.LSTM forward, CPU per call: no_grad {ng:.1f} us, inference_mode {im:.1f} us")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
