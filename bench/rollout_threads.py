"""Rollout cost of the policy's torch threads: torch's default against one thread per query.

    python bench/rollout_threads.py --out docs/bench/rollout_threads
    python bench/rollout_threads.py --checkpoint runs/sft/<time>/policy.pt --num-envs 2 --rounds 3 --out ...

`run_episodes` (every LIBERO rollout and evaluation) queries the policy in the main process with a
batch of at most num_envs observations while the env workers step. Here the same trials (one
training context of libero_spatial task 0, stochastic, seeded alike) run with torch's own thread
count (`policy_threads=None`) and with one thread (`policy_threads=1`, the default), in interleaved
rounds so that other load hits both alike. Reported per env step, median over rounds: wall time and
the main process's CPU time (what it takes from the cores the env workers need). Without
--checkpoint, a freshly built state-mode VLA of the default size is used (the cost of a query does
not depend on its weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

SETTINGS = {"torch default": None, "one thread": 1}


def default_checkpoint(work: Path) -> Path:
    from ript.policies.checkpoint import save_checkpoint
    from ript.policies.config import VLAConfig
    from ript.policies.libero_data import state_dim
    from ript.policies.vla import build_policy
    from ript.sim.env import LiberoEnvConfig

    config = VLAConfig(input_mode="state", state_dim=state_dim(LiberoEnvConfig().object_state_dim), use_language=False)
    return save_checkpoint(work / "policy.ckpt", build_policy(config))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="policy to roll out (default: a fresh default-size one)")
    parser.add_argument("--num-envs", type=int, default=1, help="LIBERO worker processes (default 1)")
    parser.add_argument("--trials", type=int, default=2, help="trials per round and setting (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix")
    args = parser.parse_args()

    import torch

    from ript.cli.train import LiberoTrainConfig, build
    from ript.sim.rollout_source import PolicyAgent
    from ript.sim.vector_env import run_episodes

    with tempfile.TemporaryDirectory() as work:
        checkpoint = args.checkpoint or default_checkpoint(Path(work))
        config = LiberoTrainConfig(
            checkpoint=str(checkpoint), task_ids=[0], contexts_per_task=1, num_envs=args.num_envs,
            eval_episodes_per_task=0, execute_steps=4,
        )  # fmt: skip
        policy, _, source = build(config, progress=False)
        contexts = source.contexts[:1] * args.trials
        try:
            run_episodes(source.vec, contexts[:1], PolicyAgent(policy, source.featurize, 4, stochastic=True))
            timings: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in SETTINGS}
            steps: dict[str, int] = {}
            load_before = os.getloadavg()[0]
            for round_ in range(args.rounds):
                for name, threads in SETTINGS.items():
                    agent = PolicyAgent(policy, source.featurize, 4, stochastic=True, seed=round_)
                    wall, cpu = time.perf_counter(), time.process_time()
                    with torch.no_grad():
                        results = run_episodes(source.vec, contexts, agent, policy_threads=threads)
                    steps[name] = sum(r.steps for r in results)
                    timings[name]["wall"].append((time.perf_counter() - wall) / steps[name] * 1e3)
                    timings[name]["cpu"].append((time.process_time() - cpu) / steps[name] * 1e3)
        finally:
            source.close()

    rows = [
        {
            "setting": name,
            "policy_threads": threads,
            "torch_threads_default": torch.get_num_threads(),
            "env_steps_per_round": steps[name],
            "wall_ms_per_step": statistics.median(timings[name]["wall"]),
            "main_cpu_ms_per_step": statistics.median(timings[name]["cpu"]),
            "rounds": timings[name],
        }
        for name, threads in SETTINGS.items()
    ]
    base, one = rows
    lines = [
        f"{args.trials} trials x {args.rounds} interleaved rounds, {args.num_envs} LIBERO worker(s), "
        f"{os.cpu_count()} cores, load average before {load_before:.1f}, torch's default "
        f"{base['torch_threads_default']} threads; medians per env step.",
        "",
        "| setting | wall ms per env step | main process CPU ms per env step |",
        "|---|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['setting']} | {row['wall_ms_per_step']:.1f} | {row['main_cpu_ms_per_step']:.1f} |")
    lines += [
        "",
        f"One thread: {base['wall_ms_per_step'] / one['wall_ms_per_step']:.2f}x the env steps per second, "
        f"{base['main_cpu_ms_per_step'] / max(one['main_cpu_ms_per_step'], 1e-9):.1f}x less main-process CPU per step.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    meta = {"machine": platform.machine(), "cores": os.cpu_count(), "load_average_before": load_before}
    args.out.with_suffix(".json").write_text(
        json.dumps({**meta, "args": vars(args), "rows": rows}, indent=2, default=str)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
