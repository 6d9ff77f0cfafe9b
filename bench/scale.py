"""Rollout throughput, local backend against the Ray backend, on this machine.

    python bench/scale.py --out docs/bench                       # a tiny random state policy
    python bench/scale.py --checkpoint runs/sft/<time>/policy.pt --out docs/bench

Runs the same rollout call (contexts x K trials, same seed, so the same trials) with the local
backend at 1 and 2 LIBERO worker processes and with the Ray backend at 1 and 2 rollout workers (a
local Ray cluster on 127.0.0.1), after one warm-up call each (env creation, Ray actor start-up and
the first weights transfer are not timed). Prints and writes env steps/s, trials/hour and Ray's
wall time as a ratio of the local backend's at the same worker count. One run, one seed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

os.environ.setdefault("MUJOCO_GL", "egl")


def policy_and_featurize(checkpoint: Path | None):
    from ript.policies.checkpoint import load_checkpoint
    from ript.policies.config import VLAConfig
    from ript.policies.encoders import instruction_encoder
    from ript.policies.libero_data import state_dim
    from ript.policies.sft import libero_policy_inputs
    from ript.policies.vla import build_policy
    from ript.sim.env import LiberoEnvConfig

    if checkpoint is None:
        torch.manual_seed(0)
        config = VLAConfig(
            input_mode="state",
            state_dim=state_dim(LiberoEnvConfig().object_state_dim),
            use_language=False,
            hidden_dim=32,
            num_layers=1,
            num_heads=2,
            chunk_size=4,
            execute_steps=4,
            regression={"exploration_scale": 3.0},
        )
        policy, embeddings = build_policy(config).eval(), None
    else:
        policy, payload = load_checkpoint(checkpoint)
        embeddings = instruction_encoder(policy, payload.get("instruction_embeddings"))
    config = policy.config
    if config.input_mode != "state":
        raise SystemExit("bench/scale.py times state-mode policies (no rendering)")
    cache: dict = {}

    def featurize(obs, context):
        if embeddings is not None and context.instruction not in cache:
            cache[context.instruction] = embeddings(context.instruction)
        return libero_policy_inputs(obs, config, cache.get(context.instruction))

    return policy, featurize


def timed(source, policy, contexts, k: int, seed: int) -> tuple[float, int, int]:
    source.rollout(policy, contexts, k, seed)  # warm-up: envs built, actors started, weights sent
    start = time.perf_counter()
    groups = source.rollout(policy, contexts, k, seed)
    wall = time.perf_counter() - start
    trials = [t for group in groups for t in group]
    return wall, sum(t.data.num_steps for t in trials), len(trials)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="a state-mode policy (default: a tiny random one)"
    )
    parser.add_argument("--contexts", type=int, default=4, help="benchmark states of task 0 (default 4)")
    parser.add_argument("--group-size", type=int, default=4, help="K trials per context (default 4)")
    parser.add_argument("--max-steps", type=int, default=120, help="episode budget (default 120)")
    parser.add_argument("--workers", default="1,2", help="worker counts (default 1,2)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = parser.parse_args()

    import ray

    from ript.sim.contexts import evaluation_contexts
    from ript.sim.env import LiberoEnvConfig
    from ript.sim.ray_rollout import RayConfig, RayRolloutSource
    from ript.sim.rollout_source import LiberoRolloutSource
    from ript.sim.vector_env import VectorEnv

    torch.set_num_threads(1)
    policy, featurize = policy_and_featurize(args.checkpoint)
    contexts = evaluation_contexts("libero_spatial", [0], args.contexts)
    env_config = LiberoEnvConfig(suite="libero_spatial", render=False, max_steps=args.max_steps)
    execute = policy.config.execute_steps or policy.chunk_size
    counts = [int(n) for n in args.workers.split(",")]
    rows = []
    for n in counts:
        with VectorEnv(n, env_config) as vec:
            wall, steps, trials = timed(
                LiberoRolloutSource(vec, contexts, [], featurize, execute), policy, contexts, args.group_size, seed=0
            )
        rows.append({"backend": "local", "workers": n, "wall_s": wall, "env_steps": steps, "trials": trials})
    ray.init(num_cpus=max(counts), include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        for n in counts:
            source = RayRolloutSource(policy, contexts, [], featurize, execute, env_config, RayConfig(num_workers=n))
            try:
                wall, steps, trials = timed(source, policy, contexts, args.group_size, seed=0)
            finally:
                source.close()
            rows.append({"backend": "ray", "workers": n, "wall_s": wall, "env_steps": steps, "trials": trials})
    finally:
        ray.shutdown()
    local = {r["workers"]: r["wall_s"] for r in rows if r["backend"] == "local"}
    for row in rows:
        row["env_steps_per_s"] = row["env_steps"] / row["wall_s"]
        row["trials_per_hour"] = 3600 * row["trials"] / row["wall_s"]
        row["wall_vs_local"] = row["wall_s"] / local[row["workers"]]
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "policy": str(args.checkpoint or "tiny random state policy"),
        "contexts": args.contexts,
        "group_size": args.group_size,
        "max_steps": args.max_steps,
        "seed": 0,
        "runs": 1,
    }
    lines = [
        "| backend | workers | wall (s) | env steps | env steps/s | trials/hour | wall / local |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['backend']} | {r['workers']} | {r['wall_s']:.1f} | {r['env_steps']} | {r['env_steps_per_s']:.0f} | "
        f"{r['trials_per_hour']:.0f} | {r['wall_vs_local']:.2f} |"
        for r in rows
    ]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (args.out / "scale.md").write_text(
        "# Rollout throughput: local backend vs Ray (bench/scale.py)\n\n"
        + text
        + "\n\n"
        + ", ".join(f"{k}: {v}" for k, v in meta.items())
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
