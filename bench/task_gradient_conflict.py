"""Do the tasks of a multi-task RIPT run pull the shared policy apart? LOOP gradients per task, compared.

    python bench/task_gradient_conflict.py --run runs/h18m/seed0/<time> --iteration 21 --groups 8

Loads a run's checkpoint of one iteration and its training contexts, runs G groups of K stochastic
trials per task (group g on the task's training context g), and computes each mixed group's LOOP
policy gradient at ratio 1 (what an update's first optimiser step follows; the run's frozen
parameters left out). Independent groups of one task share only that task's true gradient, so the
mean cosine between two groups of the same task measures its signal (~|g|^2 / (|g|^2 + noise)); the
mean cosine between groups of two different tasks measures what the tasks' true gradients share. A
cross-task mean below 0, beside within-task means above it, says an update that raises one task
lowers the other to first order: the tasks trade places. Writes JSON and markdown next to --out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from loop_gradient_noise import group_gradient  # the same LOOP gradient of one group (bench/ is on sys.path)


def mean_cosine(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float | None, float | None, int]:
    cosines = [float(torch.nn.functional.cosine_similarity(a, b, dim=0)) for a, b in pairs]
    if not cosines:
        return None, None, 0
    return float(np.mean(cosines)), float(np.std(cosines) / np.sqrt(len(cosines))), len(cosines)


def main() -> int:
    from ript.cli.train import LiberoTrainConfig, build
    from ript.core.config_io import from_dict
    from ript.core.learner import trainable_parameters
    from ript.core.sampler import Group

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a `ript train` run folder (config.json, contexts.npz)")
    parser.add_argument("--iteration", type=int, required=True, help="its checkpoints/iter_<iteration>.ckpt")
    parser.add_argument("--groups", type=int, default=8, help="groups of K trials per task (default 8)")
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("docs/bench/task_gradient_conflict"),
        help="output path without suffix (.json and .md are written)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    saved = json.loads((args.run / "config.json").read_text())["libero"]
    config = from_dict(LiberoTrainConfig, saved)
    checkpoint = args.run / "checkpoints" / f"iter_{args.iteration:06d}.ckpt"
    config.checkpoint, config.eval_episodes_per_task, config.num_envs = str(checkpoint), 0, args.num_envs
    group_size = config.train.sampler.group_size
    with tempfile.TemporaryDirectory() as scratch:  # build() may rewrite the file it is given: a copy
        contexts_file = Path(scratch) / "contexts.npz"
        shutil.copy(args.run / "contexts.npz", contexts_file)
        policy, _, source = build(config, progress=False, contexts_file=contexts_file)
    policy.eval()
    params = trainable_parameters(policy, config.train.frozen_parameters)
    start = time.perf_counter()
    groups: dict[int, list] = {task: [] for task in config.task_ids}
    try:
        for task in config.task_ids:
            of_task = [i for i, c in enumerate(source.contexts) if c.task_id == task][: args.groups]
            for g, index in enumerate(of_task):
                context = source.contexts[index]
                trials = source.rollout(policy, [context], group_size, seed=args.seed + 1000 * task + g)[0]
                groups[task].append(Group(g, index, context, trials))
                print(f"task {task} group {g}: {sum(t.reward for t in trials):.0f}/{group_size} successes", flush=True)
    finally:
        source.vec.close()
    rollout_s = time.perf_counter() - start
    grads = {
        task: [group_gradient(policy, params, g) for g in task_groups if len(set(g.rewards)) > 1]
        for task, task_groups in groups.items()
    }
    rows = []
    for a, b in itertools.combinations_with_replacement(config.task_ids, 2):
        pairs = list(itertools.combinations(grads[a], 2)) if a == b else list(itertools.product(grads[a], grads[b]))
        mean, sem, count = mean_cosine(pairs)
        rows.append({"tasks": [a, b], "pairs": count, "mean_cosine": mean, "sem": sem})
    result = {
        "run": str(args.run),
        "iteration": args.iteration,
        "group_size": group_size,
        "successes_per_group": {task: [int(sum(g.rewards)) for g in gs] for task, gs in groups.items()},
        "mixed_groups": {task: len(g) for task, g in grads.items()},
        "cosines": rows,
        "parameters": int(sum(p.numel() for p in params)),
        "rollout_s": rollout_s,
        "env_steps": int(sum(t.data.num_steps for gs in groups.values() for g in gs for t in g.trials)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    fmt = lambda row: "-" if row["mean_cosine"] is None else f"{row['mean_cosine']:+.4f} ± {row['sem']:.4f}"
    lines = [
        f"LOOP gradients per task, `{checkpoint}`, K = {group_size}, one group per training context",
        "",
        "| task | successes per group | mixed groups |",
        "|---:|---|---:|",
        *[f"| {t} | {result['successes_per_group'][t]} | {result['mixed_groups'][t]} |" for t in config.task_ids],
        "",
        "| tasks | group pairs | mean cosine ± s.e. (pairs share groups: a lower bound) |",
        "|---|---:|---:|",
        *[
            f"| {r['tasks'][0]} & {r['tasks'][1]}{' (within)' if r['tasks'][0] == r['tasks'][1] else ''} | "
            f"{r['pairs']} | {fmt(r)} |"
            for r in rows
        ],
        "",
        f"{result['env_steps']} env steps, {rollout_s:.0f} s of rollouts; {result['parameters']} trainable parameters.",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
