"""Where a policy's episodes fail: how far each gets on the benchmark states of a pick-and-place task.

    python bench/failure_phases.py --checkpoint runs/.../policy.pt --task 1 --episodes 10 \
        --execute-steps 4 --out docs/bench/failure_phases_task1

Deterministic episodes from the benchmark's init states 0..N-1. Each is placed in the furthest phase
it reached: `approach` (the gripper never came within --reach m of the object to pick, the task's
first object of interest), `grasp` (it came close, the object never rose --lift m above its start),
`carry` (lifted, the task not completed), `success`; with the object's height above its start and its
horizontal distance to the place target (the second object of interest) at the end. Tells a policy
that reaches for the wrong place from one that lifts the object and misses the target. Writes OUT.md
and OUT.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ript.policies.libero_data import OBJECT_POSE_DIM  # object_state: one pose per object of interest

PHASES = ("approach", "grasp", "carry", "success")
MEDIANS = ("closest_m", "final_height_m", "start_to_target_m", "final_to_target_m", "final_to_start_m")


def run_episode(env, agent, context, reach: float, lift: float) -> dict:
    obs = env.reset(context.init_state)
    agent.begin(0, context, obs)
    start = obs["object_state"][:3].copy()
    start_to_target = float(np.linalg.norm(start[:2] - obs["object_state"][OBJECT_POSE_DIM : OBJECT_POSE_DIM + 2]))
    closest, highest, done, info = np.inf, 0.0, False, {"success": False, "steps": 0}
    while not done:
        obs, _, done, info = env.step(np.asarray(agent.act([0], [obs])[0]))
        position = obs["object_state"][:3]
        closest = min(closest, float(np.linalg.norm(obs["ee_pos"] - position)))
        highest = max(highest, float(position[2] - start[2]))
    phase = "success" if info["success"] else "carry" if highest > lift else "grasp" if closest < reach else "approach"
    place = obs["object_state"][OBJECT_POSE_DIM : OBJECT_POSE_DIM + 3]
    return {
        "phase": phase,
        "closest_m": closest,
        "lift_m": highest,
        "final_height_m": float(position[2] - start[2]),
        "final_to_target_m": float(np.linalg.norm(position[:2] - place[:2])),
        "start_to_target_m": start_to_target,
        "final_to_start_m": float(np.linalg.norm(position[:2] - start[:2])),
        "steps": int(info["steps"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="policy checkpoint (ript sft / ript train)")
    parser.add_argument("--suite", default="libero_spatial")
    parser.add_argument("--task", type=int, required=True)
    parser.add_argument("--episodes", type=int, default=10, help="benchmark init states 0..N-1 (default 10)")
    parser.add_argument("--execute-steps", type=int, help="actions executed per query (default: the checkpoint's)")
    parser.add_argument("--reach", type=float, default=0.10, help="gripper-object distance that counts as reached (m)")
    parser.add_argument("--lift", type=float, default=0.03, help="rise of the object that counts as lifted (m)")
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix")
    args = parser.parse_args()

    from ript.sim.contexts import evaluation_contexts
    from ript.sim.env import LiberoEnv, LiberoEnvConfig
    from ript.sim.eval import checkpoint_agent
    from ript.sim.vector_env import torch_threads

    agent, env_overrides, _ = checkpoint_agent(args.checkpoint, execute_steps=args.execute_steps)
    env = LiberoEnv(LiberoEnvConfig(suite=args.suite, task_id=args.task, **env_overrides))
    target, place_target = env.objects_of_interest[:2]
    episodes = []
    try:
        with torch_threads(1):
            for context in evaluation_contexts(args.suite, [args.task], args.episodes):
                episodes.append(
                    {"init_state": context.index, **run_episode(env, agent, context, args.reach, args.lift)}
                )
                print(json.dumps(episodes[-1]), flush=True)
    finally:
        env.close()
    lines = [
        f"{args.suite} task {args.task}, {len(episodes)} benchmark states, deterministic; object to pick: {target}, "
        f"place target: {place_target}; "
        f"reached: within {args.reach} m, lifted: {args.lift} m above its start.",
        "",
        "| furthest phase | episodes | median: closest approach, object height at the end, "
        "object to place target at the start / at the end, object moved (m) |",
        "|---|---:|---|",
    ]
    for phase in PHASES:
        rows = [e for e in episodes if e["phase"] == phase]
        medians = ", ".join(f"{np.median([e[k] for e in rows]):.3f}" for k in MEDIANS) if rows else "–"
        lines.append(f"| {phase} | {len(rows)} | {medians} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    record = {"target": target, "place_target": place_target, "args": vars(args) | {"out": str(args.out)}}
    args.out.with_suffix(".json").write_text(json.dumps(record | {"episodes": episodes}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
