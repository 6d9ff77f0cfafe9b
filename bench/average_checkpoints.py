"""Average the weights of several `ript train` checkpoints into one that `ript eval` loads.

    python bench/average_checkpoints.py --out runs/avg.ckpt \
        runs/seed0/<time>/checkpoints/fallen_000027.ckpt runs/seed0/<time>/checkpoints/fallen_000030.ckpt ...
    ript eval --checkpoint runs/avg.ckpt --tasks 0,1,2 --episodes 50 --num-envs 1 --execute-steps 4

With `--decay D` the checkpoints are a run's iterations in order, the first its start, and the result is
the moving average `train.average_decay=D` keeps (after iteration k: D * average + (1 - D) * weights_k),
as if the run had had it: e.g. a finished run's iter_000000.ckpt ... iter_000046.ckpt.

Each checkpoint contributes the weights it deploys (its average when the run had train.average_decay,
else its policy's); floating-point tensors are averaged with equal weight, the others taken from the
first. The question it answers (docs/results.md, issue 18): are the branches that fell from one
checkpoint apart from each other (noise, which averaging cancels) or together (a shared direction)?
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", type=Path, nargs="+", help="iteration, fallen or best checkpoints of runs")
    parser.add_argument("--out", type=Path, required=True, help="the averaged checkpoint to write")
    parser.add_argument(
        "--decay",
        type=float,
        default=None,
        help="a moving average over the checkpoints in order (default: equal weights)",
    )
    args = parser.parse_args()
    if len(args.checkpoints) < 2:
        parser.error("give at least two checkpoints to average")

    import torch

    from ript.core.learner import deployed_weights_of
    from ript.core.safe_io import load_verified, save_verified

    states = [load_verified(path) for path in args.checkpoints]
    headers = [state.get("policy_checkpoint") for state in states]
    if any(header is None for header in headers):
        parser.error("every checkpoint must be a `ript train` checkpoint of a policy (one with policy_checkpoint)")
    weights = [deployed_weights_of(state) for state in states]
    if any(w.keys() != weights[0].keys() for w in weights):
        parser.error("the checkpoints hold different parameters: not the same policy")
    if args.decay is not None and not 0.0 <= args.decay < 1.0:
        parser.error(f"--decay must be in [0, 1), got {args.decay}")
    n = len(weights)
    # equal weights, or the moving average's: the start d^(n-1), checkpoint k >= 1 (1 - d) d^(n-1-k)
    shares = (
        [1.0 / n] * n
        if args.decay is None
        else [args.decay ** (n - 1)] + [(1 - args.decay) * args.decay ** (n - 1 - k) for k in range(1, n)]
    )
    average = {}
    for name, first in weights[0].items():
        if torch.is_floating_point(first):
            average[name] = sum(share * w[name] for share, w in zip(shares, weights))
        else:
            average[name] = first
    save_verified({"iteration": -1, "policy": average, "policy_checkpoint": headers[0]}, args.out)
    print(f"averaged {len(states)} checkpoints into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
