"""`ript export-lerobot`: scripted demos or a run's stored trials as a LeRobotDataset v3.0 folder
(parquet + AV1 mp4 + meta; ript.policies.lerobot_data says what goes where).

    ript export-lerobot --demos runs/demos --out runs/lerobot/demos
    ript export-lerobot --trials runs/ros/sim --out runs/lerobot/trials    # with reward, judge, weights version
    ript sft --demos runs/lerobot/demos ...                                  # read back as SFT demos
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--demos", type=Path, nargs="+", help="HDF5 demo files or folders searched for *.hdf5")
    source.add_argument("--trials", type=Path, help="a trainer run folder (its trials/ as the ROS trainer stored them)")
    parser.add_argument("--out", type=Path, required=True, help="the dataset folder to write (must not hold one)")
    parser.add_argument(
        "--fps",
        type=int,
        default=None,
        help="frames per second (default: 20, LIBERO's control rate, for demos; 5 for trials, whose frames are "
        "policy queries: 20 Hz / 4 executed actions per query)",
    )
    parser.add_argument("--max-demos", type=int, default=None, help="at most this many demos per file")


def run(args: argparse.Namespace) -> int:
    from ript.policies import lerobot_data

    if args.demos:
        from ript.cli.sft import load_demos

        demos = load_demos(args.demos, args.max_demos)
        folder = lerobot_data.export_demos(args.out, demos, fps=args.fps or lerobot_data.LIBERO_FPS)
        what = f"{len(demos)} demos"
    else:
        from ript.core.trial_store import TrialStore

        store = TrialStore(args.trials / "trials")
        iterations = sorted(set(store.trial_ids().values()))
        trials = [trial for iteration in iterations for trial in store.load(iteration)]
        if not trials:
            raise SystemExit(f"no stored trials under {args.trials / 'trials'}")
        episodes = (lerobot_data.trial_episode(trial) for trial in trials)
        folder = lerobot_data.write_dataset(args.out, episodes, fps=args.fps or 5)
        what = f"{len(trials)} trials of {len(iterations)} iteration(s)"
    info = lerobot_data.read_info(folder)
    print(f"wrote {what}: {info['total_frames']} frames, {info['total_tasks']} task(s) -> {folder}")
    return 0
