"""Which action dimension owns the LOOP gradient, with the gripper continuous or Bernoulli?

    python bench/loop_gradient_share.py --checkpoints runs/hard/sft_stage2/<time>/policy.pt \
        runs/hard/sft_stage2_bernoulli/<time>/policy.pt --demos runs/hard/demos_target runs/hard/demos_pretrain

For each calibrated regression checkpoint (its gripper modelled as it was trained: a continuous
Laplace with its calibrated scale, or a Bernoulli), on up to 2048 demo states: sample one chunk per
state, give each a random +-1 advantage and take the gradient of the LOOP loss at ratio 1 on the
shared parameters (encoder + trunk). The squared gradient norm with only one group of dimensions
scored (the others fixed) gives each group's share. Prints the table and writes it to --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def squared_grad(policy, obs, scored, advantages, fixed: tuple[int, ...]) -> float:
    from ript.core.loop import ppo_clip_loss

    policy.fixed_action_dims = fixed
    policy.zero_grad()
    logp = policy.log_prob(obs, scored)
    mask = torch.zeros_like(logp, dtype=torch.bool)
    mask[:, 0] = True  # the executed step of an execute-1 query
    loss, _ = ppo_clip_loss(logp, logp.detach(), advantages, mask)
    loss.backward()
    return sum(
        float(p.grad.pow(2).sum())
        for name, p in policy.named_parameters()
        if not name.startswith("head.") and p.grad is not None
    )


def main() -> int:
    from ript.cli.sft import load_demos
    from ript.policies.checkpoint import load_checkpoint
    from ript.policies.sft import DemoDataset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--checkpoints",
        type=Path,
        nargs="+",
        required=True,
        help="calibrated regression-head checkpoints, each read with its own gripper model",
    )
    parser.add_argument("--demos", type=Path, nargs="+", required=True, help="demo files or folders (states)")
    parser.add_argument(
        "--explored", default="0,1,2", help="continuous dims explored besides the gripper (default 0,1,2)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/bench/loop_gradient_share.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    demos = load_demos(args.demos, None, progress=False)
    explored = tuple(int(d) for d in args.explored.split(","))
    lines = [
        f"`python bench/loop_gradient_share.py --checkpoints {' '.join(map(str, args.checkpoints))} --demos "
        f"{' '.join(map(str, args.demos))}`",
        "",
        "| checkpoint | gripper | calibrated scale per dim | squared LOOP gradient, gripper | "
        f"squared gradient, dims {list(explored)} | gripper share |",
        "|---|---|---|---:|---:|---:|",
    ]
    for path in args.checkpoints:
        policy, payload = load_checkpoint(path)
        if policy.config.head != "regression":
            raise SystemExit(f"{path}: the gradient share concerns the regression head")
        embeddings = {k: np.asarray(v, dtype=np.float32) for k, v in payload.get("instruction_embeddings", {}).items()}
        dataset = DemoDataset(demos, policy.config, embeddings)
        index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:2048]
        obs, _, _ = dataset.batch(index, policy.device)
        gripper = policy.config.regression.gripper_dim % policy.action_dim
        others = tuple(d for d in range(policy.action_dim) if d not in explored and d != gripper)
        advantages = torch.randint(0, 2, (len(index),), generator=torch.Generator().manual_seed(1)).float() * 2 - 1
        policy.fixed_action_dims = others
        scored = policy.sample(obs, generator=torch.Generator().manual_seed(2)).scored
        grip = squared_grad(policy, obs, scored, advantages, others + explored)
        rest = squared_grad(policy, obs, scored, advantages, others + (gripper,))
        with torch.no_grad():
            scale = [round(v, 4) for v in policy.regression_params(policy.prepare(obs))[1].mean((0, 1)).tolist()]
        model = policy.config.regression.gripper
        print(
            f"{path}: gripper {model}, |grad|^2 gripper {grip:.3e}, dims {list(explored)} {rest:.3e}, "
            f"gripper share {grip / (grip + rest):.1%}"
        )
        lines.append(
            f"| {path.parent.parent.name} | {model} | {scale} | {grip:.3e} | {rest:.3e} | {grip / (grip + rest):.1%} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
