"""`ript starter`: the starter policy `ript up sim` uses when no checkpoint is given.

ript starter                          # which starter task 2 uses, and how well it does
ript starter --rebuild                # build it anew into runs/starter/ (about half an hour on 2 cores)
ript starter --ship                   # measure the built one (building it if needed) and put it into
                                      # the package with its record
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ript.cli.starter_policy import DEFAULT_TASKS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tasks", default=DEFAULT_TASKS, help=f"libero_spatial task(s) of the starter (default {DEFAULT_TASKS})"
    )
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="build it anew (scripted demos -> SFT -> DAgger -> calibration) instead of using the "
        "shipped or an earlier built one",
    )
    parser.add_argument(
        "--ship",
        action="store_true",
        help="measure the starter built in --out (building it if needed) on benchmark states and copy "
        "it with its record into the package (src/ript/cli/starter_policies/), where ./run.sh finds it",
    )
    parser.add_argument(
        "--episodes", type=int, default=20, help="--ship: benchmark init states per task to measure it on (default 20)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/starter"), help="build folder root (default runs/starter)"
    )


def run(args: argparse.Namespace) -> int:
    from ript.cli.starter_policy import describe, ensure_starter_policy, ship, shipped_starter, starter_name

    folder = args.out / starter_name(args.tasks)
    if not (args.rebuild or args.ship):  # only say which starter `ript up sim` would use
        shipped, record, why = shipped_starter(args.tasks)
        if shipped is not None:
            print(f"starter policy for task(s) {args.tasks}: {shipped} (ships with ript; {describe(record)})")
        elif (folder / "policy.pt").exists():
            print(f"starter policy for task(s) {args.tasks}: {folder / 'policy.pt'} (built here; {why})")
        else:
            print(
                f"no starter policy for task(s) {args.tasks} yet ({why}); `ript starter --tasks {args.tasks} "
                "--rebuild` builds one, as `ript up sim` does on its first run"
            )
        return 0
    # --ship: a starter built here by this ript's recipe, never the shipped one itself
    path = ensure_starter_policy(folder, args.tasks, rebuild=args.rebuild, use_shipped=not args.ship)
    if args.ship:
        path = ship(path, args.tasks, args.episodes, "ript " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    print(f"starter policy for task(s) {args.tasks}: {path}")
    return 0
