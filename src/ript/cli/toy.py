"""`ript toy`: the RIPT loop on the 1-D reach task, with metrics, TensorBoard and a curve PNG."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iterations", type=int, default=30, help="RIPT optimisation steps M (default 30)")
    parser.add_argument("--group-size", type=int, default=8, help="K trials per context (default 8)")
    parser.add_argument("--batch-size", type=int, default=64, help="B informative trials per step (default 64)")
    parser.add_argument("--ppo-epochs", type=int, default=4, help="N epochs over each batch (default 4)")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 1e-2)")
    parser.add_argument("--no-dynamic", action="store_true", help="keep all-equal groups (ablation)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/toy"), help="run folder root (default runs/toy)")
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its newest valid checkpoint",
    )


def run(args: argparse.Namespace) -> int:
    from ript.core.loop import LoopConfig
    from ript.core.metrics import plot_curves
    from ript.core.sampler import SamplerConfig
    from ript.core.train import stop_on_signals
    from ript.sim.toy_task import ReachTrainConfig, TrainConfig, make_reach_trainer

    config = ReachTrainConfig(
        train=TrainConfig(
            iterations=args.iterations,
            learning_rate=args.lr,
            seed=args.seed,
            eval_every=1,
            parallel_groups=args.batch_size // args.group_size,
            sampler=SamplerConfig(
                group_size=args.group_size, batch_size=args.batch_size, dynamic=not args.no_dynamic, seed=args.seed
            ),
            loop=LoopConfig(
                ppo_epochs=args.ppo_epochs, minibatch_size=args.batch_size, loss_normalization="token", target_kl=None
            ),
        )
    )
    run_dir = args.resume or args.out / time.strftime("%Y%m%d-%H%M%S")
    trainer = make_reach_trainer(config, run_dir)
    if trainer.resume():
        print(f"resumed {run_dir} at iteration {trainer.iteration}")
    try:
        with stop_on_signals(trainer):
            history = trainer.run(progress=True)
    finally:
        trainer.close()
    curve = plot_curves(
        history,
        ["eval/success_rate", "rollout/success_rate"],
        run_dir / "learning_curve.png",
        title="RIPT on 1-D reach (sparse success)",
        x_key="iteration",
    )
    first, last = history[0]["eval/success_rate"], history[-1]["eval/success_rate"]
    print(f"success rate {first:.2f} -> {last:.2f} after {trainer.iteration} iterations")
    from ript.core.report import write_report

    print(
        f"metrics: {trainer.logger.jsonl_path}\ncurve:   {curve}\nreport:  {write_report(run_dir)}\n"
        f"tensorboard --logdir {run_dir / 'tb'}"
    )
    if trainer.stop_reason is not None:
        print(f"stopped by {trainer.stop_reason}; continue with: ript toy --resume {run_dir} and the same options")
    return trainer.exit_status
