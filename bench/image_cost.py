"""What camera resolution costs the image variant: the renderer vs the policy's CNN.

    python bench/image_cost.py                       # sizes 64, 96, 128
    python bench/image_cost.py --sizes 64,128 --env-steps 60 --cnn-steps 3

Per size: rendered env steps/s of one LiberoEnv (agentview + wrist, fast render, zero actions
after a reset), and seconds per forward + backward + Adam step of the per-camera CNN on an SFT
batch (64 observations x 2 cameras). Prints a table and writes JSON + markdown to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def env_steps_per_s(size: int, steps: int) -> float:
    from ript.sim.env import LiberoEnv, LiberoEnvConfig

    env = LiberoEnv(LiberoEnvConfig(task_id=0, render=True, image_size=size))
    try:
        env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(steps):
            env.step(np.zeros(7))
        return steps / (time.perf_counter() - start)
    finally:
        env.close()


def cnn_step_s(size: int, steps: int, batch: int) -> float:
    import torch

    from ript.policies.encoders import SmallCNN

    cnn = SmallCNN()
    optimizer = torch.optim.Adam(cnn.parameters())
    images = torch.randn(2 * batch, 3, size, size)  # both cameras of `batch` observations
    times = []
    for _ in range(steps + 1):  # the first step warms up and is not counted
        start = time.perf_counter()
        cnn(images).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,96,128", help="camera sizes (default 64,96,128)")
    parser.add_argument("--env-steps", type=int, default=60, help="rendered steps timed per size (default 60)")
    parser.add_argument("--cnn-steps", type=int, default=3, help="CNN training steps timed per size (default 3)")
    parser.add_argument("--batch", type=int, default=64, help="observations per CNN batch (default 64, ript sft's)")
    parser.add_argument("--out", type=Path, default=Path("docs/bench"))
    args = parser.parse_args()
    os.environ.setdefault("LP_NUM_THREADS", "1")  # as the LIBERO workers render

    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        row = {
            "image_size": size,
            "env_steps_per_s": env_steps_per_s(size, args.env_steps),
            "cnn_step_s": cnn_step_s(size, args.cnn_steps, args.batch),
        }
        print(
            f"{size:4d} px: {row['env_steps_per_s']:5.1f} rendered steps/s, {row['cnn_step_s']:.2f} s per CNN step",
            flush=True,
        )
        rows.append(row)
    base = rows[0]
    lines = [
        "| camera size | rendered env steps/s (1 process) | CNN train step, s (batch of "
        f"{args.batch} x 2 cameras) | CNN step vs {base['image_size']} px |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['image_size']} | {r['env_steps_per_s']:.1f} | {r['cnn_step_s']:.2f} | "
        f"{r['cnn_step_s'] / base['cnn_step_s']:.1f}x |"
        for r in rows
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "image_cost.json").write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2)
    )
    (args.out / "image_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
