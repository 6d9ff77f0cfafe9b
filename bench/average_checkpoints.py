"""Average the weights of several `ript train` checkpoints into one that `ript eval` loads.

    python bench/average_checkpoints.py --out runs/avg.ckpt \
        runs/seed0/<time>/checkpoints/fallen_000027.ckpt runs/seed0/<time>/checkpoints/fallen_000030.ckpt ...
    ript eval --checkpoint runs/avg.ckpt --tasks 0,1,2 --episodes 50 --num-envs 1 --execute-steps 4

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
    average = {}
    for name, first in weights[0].items():
        if torch.is_floating_point(first):
            average[name] = torch.stack([w[name] for w in weights]).mean(0)
        else:
            average[name] = first
    save_verified({"iteration": -1, "policy": average, "policy_checkpoint": headers[0]}, args.out)
    print(f"averaged {len(states)} checkpoints into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
