"""Wall time per trial: the ROS graph (`ript up sim`) vs the in-process trainer (`ript train`).

Same task, same training contexts, same tiny state-mode policy, same episode budget, one env at a
time on both sides (one LIBERO bridge vs `num_envs=1`), K=2, B=4, no dynamic rejection. Each side
runs 2 iterations; the second one (envs created, imports warm) is timed:
  in-process: time/rollout_s of iteration 2 / its trials;
  ROS:        time from the last stored trial of iteration 1 to the last of iteration 2 / trials
              (includes the LOOP update between them, a few ms for this policy).

    python bench/ros_overhead.py --max-steps 60 --out runs/bench/ros_overhead
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

K, B = 2, 4


def make_assets(folder: Path) -> tuple[Path, Path]:
    import torch

    from ript.policies.checkpoint import save_checkpoint
    from ript.policies.config import VLAConfig
    from ript.policies.libero_data import state_dim
    from ript.policies.vla import build_policy
    from ript.sim.contexts import save_contexts, training_contexts
    from ript.sim.env import LiberoEnvConfig

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
    )
    save_checkpoint(folder / "tiny.ckpt", build_policy(config))
    save_contexts(folder / "contexts.npz", training_contexts("libero_spatial", [0], per_task=2, seed=0))
    return folder / "tiny.ckpt", folder / "contexts.npz"


def in_process(checkpoint: Path, max_steps: int, run_dir: Path) -> float:
    from ript.cli.train import LiberoTrainConfig, build
    from ript.core.learner import TrainConfig
    from ript.core.loop import LoopConfig
    from ript.core.sampler import SamplerConfig
    from ript.core.train import RiptTrainer

    config = LiberoTrainConfig(
        checkpoint=str(checkpoint),
        task_ids=[0],
        contexts_per_task=2,
        eval_episodes_per_task=0,
        num_envs=1,
        max_steps=max_steps,
        train=TrainConfig(
            iterations=2,
            eval_every=0,
            sampler=SamplerConfig(group_size=K, batch_size=B, dynamic=False),
            loop=LoopConfig(ppo_epochs=1),
        ),
    )
    policy, _, source = build(config, progress=False)
    trainer = RiptTrainer(policy, source, config.train, run_dir, tensorboard=False)
    try:
        rows = trainer.run(progress=False)
    finally:
        trainer.close()
        source.vec.close()
    return rows[-1]["time/rollout_s"] / rows[-1]["sampler/trials"]


def through_ros(checkpoint: Path, contexts: Path, max_steps: int, run_dir: Path) -> float:
    from ript.cli import up as up_cli

    arguments = up_cli.launch_arguments(
        "sim",
        [
            f"checkpoint={checkpoint}",
            f"contexts_file={contexts}",
            f"run_dir={run_dir}",
            f"max_steps={max_steps}",
            f"group_size={K}",
            f"batch_size={B}",
            "iterations=2",
            "dynamic=false",
            "ppo_epochs=1",
        ],
    )
    env = {
        **os.environ,
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", str(50 + os.getpid() % 40)),
    }
    log = (run_dir.parent / "ros_graph.log").open("w")
    processes = up_cli.start("sim", arguments, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        done = run_dir / "checkpoints" / "iter_000002.ckpt"
        deadline = time.monotonic() + 600
        while not done.exists():
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"ROS graph did not finish 2 iterations; see {log.name}")
            time.sleep(0.2)
    finally:
        up_cli.stop(processes)
        log.close()
    last = [max(p.stat().st_mtime for p in (run_dir / "trials" / f"iter_{i:06d}").glob("*.trial")) for i in (1, 2)]
    return (last[1] - last[0]) / B


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/ros_overhead"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint, contexts = make_assets(tmp)
        inproc_s = in_process(checkpoint, args.max_steps, tmp / "inproc")
        ros_s = through_ros(checkpoint, contexts, args.max_steps, tmp / "ros")
    result = {
        "max_steps": args.max_steps,
        "trials_timed": B,
        "in_process_s_per_trial": round(inproc_s, 3),
        "ros_s_per_trial": round(ros_s, 3),
        "ros_over_in_process": round(ros_s / inproc_s, 3),
        "ros_ms_per_step_extra": round(1000 * (ros_s - inproc_s) / args.max_steps, 2),
    }
    (args.out / "ros_overhead.json").write_text(json.dumps(result, indent=2))
    table = (
        f"| episode steps | in-process s/trial | ROS s/trial | ROS / in-process |\n|---|---|---|---|\n"
        f"| {args.max_steps} | {inproc_s:.3f} | {ros_s:.3f} | {ros_s / inproc_s:.2f}x |\n"
    )
    (args.out / "ros_overhead.md").write_text(table)
    print(json.dumps(result, indent=2))
    print(table)


if __name__ == "__main__":
    main()
