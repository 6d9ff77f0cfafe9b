"""Argument helpers shared by the sim subcommands."""

from __future__ import annotations

import argparse


def parse_task_ids(text: str) -> list[int] | None:
    """'all' -> None (every task), '0,3,5' -> [0, 3, 5], '0-4' -> [0, 1, 2, 3, 4]."""
    if text == "all":
        return None
    ids: list[int] = []
    for part in text.split(","):
        if "-" in part:
            low, high = part.split("-")
            ids += range(int(low), int(high) + 1)
        else:
            ids.append(int(part))
    return ids


def add_suite_arguments(parser: argparse.ArgumentParser) -> None:
    from ript.sim.env import SUITES

    parser.add_argument(
        "--suite", choices=SUITES, default="libero_spatial", help="LIBERO suite (default libero_spatial)"
    )
    parser.add_argument("--tasks", default="all", help="task ids: 'all' (default), '0,3' or '0-4'")
    parser.add_argument("--num-envs", type=int, default=2, help="worker processes (default 2)")


def add_expert_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--memoryless-expert",
        action="store_true",
        help="use the scripted expert that decides from the current observation only (its actions "
        "are a function of the state a learner sees; see ript.sim.expert)",
    )
