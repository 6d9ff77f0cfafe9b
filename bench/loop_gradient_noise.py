"""How much of a LOOP gradient is signal: agreement between the gradients of independent groups.

    python bench/loop_gradient_noise.py --checkpoint runs/bench/sft_stage2/<time>/policy.pt --task 0 --groups 6

Runs G groups of K stochastic trials on ONE training context of a LIBERO task (the easiest case RIPT
can face: no generalisation needed), computes each group's LOOP policy gradient at ratio 1 (what the
first optimiser step of an update follows; the scale head left out, as `train.frozen_parameters`),
and prints the cosine between the gradients of every pair of groups. Independent groups share only
the true gradient g, so E[cos] ~ |g|^2 / (|g|^2 + noise per group): a mean cosine near 0 says one
group's gradient is almost all sampling noise, and an update needs ~1/cos groups before the signal
is as large as the noise. Mixed groups only (all-equal groups have zero advantage and no gradient).
Writes JSON and markdown next to --out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch


def group_gradient(policy, params, group) -> torch.Tensor:
    from ript.core.loop import ppo_clip_loss
    from ript.core.trials import build_loop_batch

    batch, _ = build_loop_batch([group])
    loss, _ = ppo_clip_loss(policy.log_prob(batch.obs, batch.scored), batch.logp_old, batch.advantages, batch.mask)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


def main() -> int:
    from ript.cli.train import LiberoTrainConfig, build
    from ript.core.learner import trainable_parameters
    from ript.core.sampler import Group

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="regression-head policy checkpoint")
    parser.add_argument("--task", type=int, default=0, help="libero_spatial task id (default 0)")
    parser.add_argument("--context", type=int, default=0, help="which training context of the task (default 0)")
    parser.add_argument("--groups", type=int, default=6, help="groups of K trials to run (default 6)")
    parser.add_argument("--group-size", type=int, default=8, help="K (default 8)")
    parser.add_argument("--fixed-dims", default="3,4,5", help="action dims executed at the mean (default 3,4,5)")
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("docs/bench/loop_gradient_noise"),
        help="output path without suffix (.json and .md are written)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    fixed = [int(d) for d in args.fixed_dims.split(",")] if args.fixed_dims else []
    config = LiberoTrainConfig(
        checkpoint=str(args.checkpoint),
        task_ids=[args.task],
        contexts_per_task=args.context + 1,
        eval_episodes_per_task=0,
        num_envs=args.num_envs,
        fixed_action_dims=fixed,
    )
    policy, _, source = build(config, progress=False)
    policy.eval()
    params = trainable_parameters(policy, ["head.scale_head"])
    context = source.contexts[args.context]
    start = time.perf_counter()
    groups = []
    try:
        for g in range(args.groups):
            trials = source.rollout(policy, [context], args.group_size, seed=args.seed + g)[0]
            groups.append(Group(g, args.context, context, trials))
            print(f"group {g}: {sum(t.reward for t in trials):.0f}/{args.group_size} successes", flush=True)
    finally:
        source.vec.close()
    rollout_s = time.perf_counter() - start
    mixed = [g for g in groups if len(set(g.rewards)) > 1]
    grads = [group_gradient(policy, params, g) for g in mixed]
    cosines = [float(torch.nn.functional.cosine_similarity(a, b, dim=0)) for a, b in itertools.combinations(grads, 2)]
    mean_grad = torch.stack(grads).mean(0) if grads else None
    result = {
        "checkpoint": str(args.checkpoint),
        "task": args.task,
        "context": args.context,
        "group_size": args.group_size,
        "fixed_action_dims": fixed,
        "successes_per_group": [int(sum(g.rewards)) for g in groups],
        "mixed_groups": len(mixed),
        "pair_cosines": cosines,
        "mean_cosine": float(np.mean(cosines)) if cosines else None,
        "std_cosine": float(np.std(cosines)) if cosines else None,
        "group_grad_norm": float(np.mean([float(g.norm()) for g in grads])) if grads else None,
        "mean_grad_norm": float(mean_grad.norm()) if mean_grad is not None else None,
        "parameters": int(sum(p.numel() for p in params)),
        "rollout_s": rollout_s,
        "env_steps": int(sum(t.data.num_steps for g in groups for t in g.trials)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    lines = [
        f"LOOP gradient agreement between independent groups: libero_spatial task {args.task}, training context "
        f"{args.context}, K = {args.group_size}, fixed action dims {fixed}, `{args.checkpoint}`",
        "",
        "| groups run | successes per group | mixed groups | pairs | mean cosine | sd | |g| per group | |mean of groups| |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
        f"| {len(groups)} | {result['successes_per_group']} | {len(mixed)} | {len(cosines)} | "
        + (
            f"{result['mean_cosine']:.4f} | {result['std_cosine']:.4f} | {result['group_grad_norm']:.3f} | "
            f"{result['mean_grad_norm']:.3f} |"
            if cosines
            else "- | - | - | - |"
        ),
        "",
        f"{result['env_steps']} env steps, {rollout_s:.0f} s of rollouts; {result['parameters']} trainable parameters.",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
