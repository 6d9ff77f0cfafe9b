"""`ript record-demos`: scripted-expert demos in LIBERO's HDF5 layout, one file per task."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from ript.cli.common import add_expert_argument, add_suite_arguments, parse_task_ids


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_suite_arguments(parser)
    parser.add_argument("--demos", type=int, default=50, help="successful demos to record per task (default 50)")
    parser.add_argument("--state-only", action="store_true", help="no cameras: proprio + object poses only (fast)")
    parser.add_argument("--image-size", type=int, default=128, help="camera height = width (default 128)")
    parser.add_argument("--noise", type=float, default=0.0, help="std of noise on the expert's position command")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training contexts (default 0)")
    add_expert_argument(parser)
    dagger = parser.add_argument_group("DAgger (the learner drives, the expert labels every state it visits)")
    dagger.add_argument(
        "--learner",
        type=Path,
        default=None,
        help="policy checkpoint that drives; every episode is kept, labelled with the expert's actions",
    )
    dagger.add_argument(
        "--beta",
        type=float,
        default=0.0,
        help="probability per step of executing the expert's action instead (default 0)",
    )
    parser.add_argument("--out", type=Path, default=Path("data/demos"), help="output folder (default data/demos)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs and the table only)")


def run(args: argparse.Namespace) -> int:
    from ript.sim.expert import ExpertConfig
    from ript.sim.record import RecordConfig, record_demos

    config = RecordConfig(
        suite=args.suite,
        task_ids=parse_task_ids(args.tasks),
        demos_per_task=args.demos,
        num_envs=args.num_envs,
        render=not args.state_only,
        image_size=args.image_size,
        seed=args.seed,
        expert=ExpertConfig(noise_std=args.noise, seed=args.seed, memoryless=args.memoryless_expert),
        learner=None if args.learner is None else str(args.learner),
        beta=args.beta,
    )
    out = args.out / args.suite
    records = record_demos(config, out, progress=not args.no_progress)
    driver = "expert" if args.learner is None else f"learner (beta {args.beta})"
    print(f"\n| task | {driver} success (training contexts) | demos | file |\n|---:|---:|---:|---|")
    for r in records:
        rate = f"{r.expert_successes}/{r.attempts}" if r.attempts else "not handled"
        print(f"| {r.task_id} | {rate} | {r.demos} | {Path(r.path).name if r.path else '-'} |")
    (out / "record_report.json").write_text(json.dumps([asdict(r) for r in records], indent=2))
    unsolved = [r.task_id for r in records if r.demos < args.demos]
    if unsolved:
        print(f"tasks with fewer than {args.demos} demos: {unsolved}")
    return 0
