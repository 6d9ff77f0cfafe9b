"""`ript report RUN_DIR`: the run's report.html and report.md (ript.core.report).

ript report runs/libero/20261205-101500            # -> runs/libero/20261205-101500/report.html
ript report runs/ros/sim --out /tmp/sim_report
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a run folder (ript train, the ROS trainer's run_dir, ript toy)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write report.html/.md (default: the run folder)"
    )


def run(args: argparse.Namespace) -> int:
    from ript.core.report import write_report

    path = write_report(args.run_dir, args.out)
    print(f"report: {path}\n        {path.with_suffix('.md')}")
    return 0
