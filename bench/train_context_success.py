"""Success on the contexts a RIPT run trained on, next to the benchmark states it is evaluated on.

    python bench/train_context_success.py --checkpoints runs/hard/sft_stage2_bernoulli/<time>/policy.pt \
        runs/weak_start/new_seed0/<time>/policy_final.ckpt --tasks 9 --set gripper_temperature=0.5 \
        --set fixed_action_dims=[3,4,5] --set execute_steps=4

`ript train` draws its contexts as fresh placements kept apart from the 50 benchmark states
(ript.sim.contexts.training_contexts); `ript eval` measures the benchmark states. When a task stays
at 0 on the benchmark after training, this tells the two possible causes apart: RIPT did not lift
the contexts it trained on, or it lifted them and the lift does not carry over. For each checkpoint
and task: deterministic success on every training context, sampled success (--repeats draws per
context, the run's sampling knobs via --set), and deterministic success on --episodes benchmark
states. Prints a markdown table and writes it with the raw counts to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def run(agent, contexts, env: dict, num_envs: int) -> list[bool]:
    from ript.sim.env import LiberoEnvConfig
    from ript.sim.vector_env import VectorEnv, run_episodes

    vec = VectorEnv(num_envs, LiberoEnvConfig(**env))
    try:
        return [result.success for result in run_episodes(vec, contexts, agent)]
    finally:
        vec.close()


def main() -> int:
    from ript.core.config_io import set_dotted
    from ript.policies.vla import apply_sampling_knobs
    from ript.sim.contexts import evaluation_contexts, training_contexts
    from ript.sim.eval import checkpoint_agent, wilson_interval

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", nargs="+", type=Path, required=True, help="policies to measure")
    parser.add_argument("--suite", default="libero_spatial")
    parser.add_argument("--tasks", default="9", help="task ids, e.g. '9' or '2,3,9' (default 9)")
    parser.add_argument("--contexts-per-task", type=int, default=16, help="as the run's contexts_per_task (default 16)")
    parser.add_argument("--context-seed", type=int, default=0, help="as the run's context_seed (default 0)")
    parser.add_argument("--repeats", type=int, default=4, help="sampled trials per training context (default 4)")
    parser.add_argument("--episodes", type=int, default=16, help="benchmark states per task (default 16)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="sampling knob of the run (execute_steps, gripper_temperature, fixed_action_dims, ...)",
    )
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/bench/train_context_success.md"))
    args = parser.parse_args()
    tasks = [int(t) for t in args.tasks.split(",")]
    knobs: dict = {}
    for item in args.set:
        set_dotted(knobs, item)  # KNOB=VALUE, the value read as YAML (as ript train --set)
    train = training_contexts(args.suite, tasks, args.contexts_per_task, seed=args.context_seed)
    bench = evaluation_contexts(args.suite, tasks, args.episodes)
    rows, raw = [], []
    for path in args.checkpoints:
        for stochastic, contexts, label in [
            (False, train, "training contexts, deterministic"),
            (True, [c for c in train for _ in range(args.repeats)], f"training contexts, sampled x{args.repeats}"),
            (False, bench, "benchmark states, deterministic"),
        ]:
            agent, env, policy = checkpoint_agent(path, stochastic=stochastic)
            apply_sampling_knobs(policy, knobs)
            agent.execute_steps = policy.config.execute_steps or policy.chunk_size
            successes = run(agent, contexts, env, args.num_envs)
            for task in tasks:
                wins = [s for s, c in zip(successes, contexts) if c.task_id == task]
                low, high = wilson_interval(sum(wins), len(wins))
                rows.append(
                    f"| {path} | {task} | {label} | {sum(wins)}/{len(wins)} = {sum(wins) / len(wins):.0%} "
                    f"[{low:.0%}, {high:.0%}] |"
                )
                raw.append(
                    {
                        "checkpoint": str(path),
                        "task": task,
                        "measure": label,
                        "successes": sum(wins),
                        "trials": len(wins),
                    }
                )
                print(rows[-1], flush=True)
    table = "\n".join(["| checkpoint | task | measured on | success [95 % CI] |", "|---|---:|---|---|", *rows])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        f"# Success on training contexts vs benchmark states\n\n```\n{' '.join(['python'] + sys.argv)}\n```\n\n"
        f"knobs: {knobs}\n\n{table}\n"
    )
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=2))
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
