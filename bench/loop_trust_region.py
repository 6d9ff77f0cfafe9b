"""How far one LOOP optimiser step moves a regression policy, per setting of the exploration knobs.

    python bench/loop_trust_region.py --checkpoint runs/dagger/sft5/<time>/policy.pt --demos runs/dagger/r5

Samples actions for up to 512 demo states, takes ONE Adam step on a policy-gradient loss with random
advantages (the scale head frozen, as `train.frozen_parameters=[head.scale_head]`), and prints the
mean k3 approx-KL per policy query between the sampling and the updated policy — what LOOP's
`target_kl` compares against. A calibrated scale near zero on dimensions the demos never vary makes
even tiny steps leave the trust region; the table shows how much the learning rate, the
exploration floor and fixed action dims change that. Writes the table as markdown to --out.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
from pathlib import Path

import numpy as np
import torch


def one_step_kl(base, obs, lr: float, floor: float, fixed_dims: tuple[int, ...], seed: int = 0) -> float:
    policy = copy.deepcopy(base)
    policy.exploration_floor, policy.fixed_action_dims = floor, fixed_dims
    sample = policy.sample(obs, generator=torch.Generator().manual_seed(seed))
    params = [p for name, p in policy.named_parameters() if not name.startswith("head.scale_head")]
    optimizer = torch.optim.Adam(params, lr=lr)
    advantages = torch.randn(len(sample.log_probs), generator=torch.Generator().manual_seed(seed + 1))
    loss = -(policy.log_prob(obs, sample.scored)[:, 0] * advantages).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        logratio = policy.log_prob(obs, sample.scored)[:, 0] - sample.log_probs[:, 0]
        return float(((logratio.exp() - 1) - logratio).mean())


def main() -> int:
    from ript.cli.sft import load_demos
    from ript.core.constants import OBS_STATE
    from ript.policies.checkpoint import load_checkpoint
    from ript.policies.sft import DemoDataset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="calibrated regression-head checkpoint")
    parser.add_argument("--demos", type=Path, nargs="+", required=True, help="demo files or folders (states)")
    parser.add_argument("--lrs", default="1e-4,1e-5,3e-6")
    parser.add_argument("--floors", default="0,0.02")
    parser.add_argument(
        "--fixed-dims",
        nargs="+",
        default=["3,4,5"],
        help="fixed-dims settings compared with none, e.g. 3,4,5 3,4,5,6 (default 3,4,5)",
    )
    parser.add_argument("--out", type=Path, default=Path("docs/bench/loop_trust_region.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    base, payload = load_checkpoint(args.checkpoint)
    demos = load_demos(args.demos, None, progress=False)
    embeddings = {k: np.asarray(v, dtype=np.float32) for k, v in payload.get("instruction_embeddings", {}).items()}
    dataset = DemoDataset(demos, base.config, embeddings)
    obs, _, _ = dataset.batch(torch.arange(0, len(dataset), max(1, len(dataset) // 512))[:512], base.device)
    with torch.no_grad():
        _, scale = base.regression_params(obs)
    scales = [round(float(v), 4) for v in scale[:, 0].mean(0)]

    fixed = [tuple(int(d) for d in setting.split(",")) for setting in args.fixed_dims]
    settings = [
        (lr, floor, dims)
        for lr, floor, dims in itertools.product(
            [float(x) for x in args.lrs.split(",")], [float(x) for x in args.floors.split(",")], [(), *fixed]
        )
    ]
    rows = []
    for lr, floor, dims in settings:
        kl = one_step_kl(base, obs, lr, floor, dims)
        rows.append({"lr": lr, "floor": floor, "fixed_dims": list(dims), "approx_kl": kl})
        print(f"lr {lr:g}  floor {floor:g}  fixed {list(dims)}: approx KL after one Adam step {kl:.4f}", flush=True)
    lines = [
        f"Calibrated scale per action dim (mean over {len(obs[OBS_STATE])} states): {scales}",
        "",
        "| Adam lr | exploration floor | fixed action dims | approx KL per query after one step |",
        "|---:|---:|---|---:|",
    ]
    lines += [f"| {r['lr']:g} | {r['floor']:g} | {r['fixed_dims'] or '-'} | {r['approx_kl']:.4f} |" for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(
        json.dumps({"scales": scales, "rows": rows, "checkpoint": args.checkpoint.name}, indent=2)
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
