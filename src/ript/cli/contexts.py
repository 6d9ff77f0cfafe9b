"""`ript contexts`: draw training contexts (disjoint from the evaluation init states) into a file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ript.cli.common import parse_task_ids


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ript.sim.env import SUITES

    parser.add_argument("--suite", choices=SUITES, default="libero_spatial")
    parser.add_argument("--tasks", default="all", help="task ids: 'all' (default), '0,3' or '0-4'")
    parser.add_argument("--per-task", type=int, default=16, help="contexts per task (default 16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=None, help="output .npz (default runs/contexts/<suite>_seed<seed>.npz)"
    )


def run(args: argparse.Namespace) -> int:
    from ript.sim.contexts import draw_contexts_file

    out = args.out or Path("runs/contexts") / f"{args.suite}_seed{args.seed}.npz"
    contexts = draw_contexts_file(out, args.suite, parse_task_ids(args.tasks), args.per_task, args.seed, progress=True)
    print(f"wrote {len(contexts)} training contexts (checked disjoint from the evaluation init states) to {out}")
    return 0
