"""LIBERO env throughput: steps/s rendered vs state-only, with 1 and 2 worker processes.

Each configuration starts a VectorEnv, resets every worker to a benchmark init state of
libero_spatial task 0 and times `--steps` batched steps of random actions (after a short warm-up),
counting env steps over all workers. Writes JSON + a markdown table.

    python bench/sim_throughput.py --steps 200 --out docs/bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("LP_NUM_THREADS", "1")


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (Linux /proc), to separate cost per step from contention."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def measure(render: bool, num_envs: int, steps: int, image_size: int, warmup: int = 10) -> dict:
    from ript.sim.contexts import evaluation_contexts
    from ript.sim.env import LiberoEnvConfig
    from ript.sim.vector_env import VectorEnv

    config = LiberoEnvConfig(suite="libero_spatial", render=render, image_size=image_size, max_steps=10_000)
    contexts = evaluation_contexts("libero_spatial", [0], episodes=num_envs)
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()[0]
    with VectorEnv(num_envs, config) as vec:
        vec.reset(contexts)
        for _ in range(warmup):
            vec.step(rng.uniform(-1, 1, (num_envs, 7)))
        pids = [vec.pid(i) for i in range(num_envs)]
        cpu_start, start = _cpu_seconds(pids), time.perf_counter()
        for _ in range(steps):
            step = vec.step(rng.uniform(-1, 1, (num_envs, 7)))
            if step.crashed.any():
                raise RuntimeError("a worker crashed during the benchmark")
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds(pids) - cpu_start
    return {
        "mode": "rendered" if render else "state-only",
        "image_size": image_size if render else None,
        "workers": num_envs,
        "env_steps": steps * num_envs,
        "seconds": elapsed,
        "steps_per_s": steps * num_envs / elapsed,
        "load_avg_1min_before": load_before,
        "worker_cpu_ms_per_step": 1000 * cpu / (steps * num_envs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="batched steps per configuration (default 200)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("docs/bench"))
    args = parser.parse_args()
    rows = []
    for render in (False, True):
        for workers in (1, 2):
            # Rendering is ~10x slower: fewer steps keep the run short with the same per-step cost.
            steps = args.steps if not render else max(20, args.steps // 5)
            row = measure(render, workers, steps, args.image_size)
            rows.append(row)
            print(
                f"{row['mode']:>10}  workers={workers}  {row['steps_per_s']:6.1f} steps/s  "
                f"{row['worker_cpu_ms_per_step']:.1f} worker CPU-ms/step  ({row['env_steps']} steps in {row['seconds']:.1f} s; load before {row['load_avg_1min_before']:.1f})",
                flush=True,
            )
    for mode in ("state-only", "rendered"):
        one, two = (next(r for r in rows if r["mode"] == mode and r["workers"] == w) for w in (1, 2))
        two["speedup_vs_1"] = two["steps_per_s"] / one["steps_per_s"]
        print(f"{mode}: 2 workers = {two['speedup_vs_1']:.2f}x one")
    meta = {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "MUJOCO_GL": os.environ.get("MUJOCO_GL"),
        "LP_NUM_THREADS": os.environ.get("LP_NUM_THREADS"),
        "fast_render": True,
        "suite": "libero_spatial",
        "task": 0,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sim_throughput.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        print("warning: other processes were using the CPUs; worker scaling is understated", flush=True)
    lines = [
        "| mode | workers | steps/s (all workers) | speed-up vs 1 worker | worker CPU-ms per step | load avg before |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        speedup = f"{r['speedup_vs_1']:.2f}x" if "speedup_vs_1" in r else "-"
        label = r["mode"] + (f" {r['image_size']}x{r['image_size']}, 2 cameras" if r["image_size"] else "")
        lines.append(
            f"| {label} | {r['workers']} | {r['steps_per_s']:.1f} | {speedup} | {r['worker_cpu_ms_per_step']:.1f} | {r['load_avg_1min_before']:.1f} |"
        )
    (args.out / "sim_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
