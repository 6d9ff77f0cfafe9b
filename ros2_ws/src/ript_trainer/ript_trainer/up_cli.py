"""`ript up sim|franka`: start the ROS graph of `ript_trainer.graph` as subprocesses.

The same nodes, parameters and remappings as `ros2 launch ript_policy <mode>.launch.py` (which the
pip environment lacks). Ctrl-C or SIGTERM stops every node (SIGINT, then SIGKILL after a grace
period); if one node exits, the others are stopped too.

    ript up sim                  # a starter policy for task 0 (built once into runs/starter/), panel on :8000
    ript up sim --set checkpoint=runs/sft/policy.ckpt --set max_steps=120
    ript up franka --set checkpoint=policy.ckpt --set contexts_file=contexts.yaml --set robot_ip=172.16.0.2
    ript up franka --set checkpoint=policy.ckpt --set use_sim=true --set contexts_file=runs/contexts/c.npz
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from ript_trainer.graph import ARGUMENTS, MODES, NodeSpec, Text, active_nodes, is_true, resolve

STOP_GRACE_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="launch argument, as ros2 launch's name:=value; see --list")
    parser.add_argument("--list", action="store_true", help="print the launch arguments and their defaults")
    parser.add_argument("--tasks", default="0", help="sim, use_sim: tasks for a missing contexts_file (e.g. '0,1'; sim without "
                             "contexts_file: drawn into runs/contexts/libero_spatial_tasks<ids>_<per-task>each_seed0.npz); "
                             "sim: also the tasks of the starter policy built when no checkpoint is given")
    parser.add_argument("--per-task", type=int, default=4,
                        help="sim, use_sim: contexts per task for a missing contexts_file")


def launch_arguments(mode: str, assignments: list[str]) -> dict[str, str]:
    values = {name: default for name, (default, _) in ARGUMENTS[mode].items()}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or name not in values:
            raise SystemExit(f"ript up {mode}: unknown argument {assignment!r}; known: {sorted(values)}")
        values[name] = value
    return values


def node_command(spec: NodeSpec, arguments: dict[str, str]) -> list[str]:
    """`python -m module --ros-args ...` with the node's name, parameters and remappings."""
    command = [sys.executable, "-m", spec.module, "--ros-args", "-r", f"__node:={spec.name}"]
    for key, spec_value in spec.parameters.items():
        value = resolve(spec_value, arguments)
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(spec_value, Text) or value == "":  # a YAML string: '' or '036522072967'
            value = "'" + str(value).replace("'", "''") + "'"
        command += ["-p", f"{key}:={value}"]
    for source, target in spec.remappings:
        command += ["-r", f"{source}:={target}"]
    return command


def plan(mode: str, arguments: dict[str, str]) -> list[list[str]]:
    return [node_command(spec, arguments) for spec in active_nodes(mode, arguments)]


def start(mode: str, arguments: dict[str, str], **popen) -> list[subprocess.Popen]:
    return [subprocess.Popen(command, **popen) for command in plan(mode, arguments)]


def stop(processes: list[subprocess.Popen], grace_s: float = STOP_GRACE_S) -> None:
    """SIGINT to every node (each tears down cleanly), SIGKILL to whatever is left after grace_s."""
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for proc in processes:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sim_contexts_file(mode: str, arguments: dict[str, str], tasks: str, per_task: int) -> str:
    """The contexts file a sim graph uses: the one given, else one named after the draw, so that a
    later `--tasks 1` does not reuse the file drawn for task 0 (the graph's default path is one name)."""
    if mode != "sim" or arguments["contexts_file"] != ARGUMENTS[mode]["contexts_file"][0]:
        return arguments["contexts_file"]
    from ript_sim.cli_common import parse_task_ids

    named = "_".join(str(task) for task in parse_task_ids(tasks))
    return f"runs/contexts/libero_spatial_tasks{named}_{per_task}each_seed0.npz"


def ensure_contexts(arguments: dict[str, str], tasks: str, per_task: int) -> None:
    path = Path(arguments["contexts_file"])
    if path.exists():
        return
    from ript_sim.cli_common import parse_task_ids
    from ript_sim.contexts import check_disjoint, save_contexts, training_contexts

    contexts = training_contexts("libero_spatial", parse_task_ids(tasks), per_task, seed=0)
    check_disjoint(contexts)
    save_contexts(path, contexts)
    print(f"wrote {len(contexts)} training contexts to {path}", flush=True)


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name, (default, help_text) in ARGUMENTS[args.mode].items():
            print(f"{name:18s} {default!r:44s} {help_text}")
        return 0
    arguments = launch_arguments(args.mode, args.set)
    if not arguments["checkpoint"] and args.mode == "sim":
        from ript_sim.starter import ensure_starter_policy

        tasks = args.tasks.replace(",", "_")
        arguments["checkpoint"] = str(ensure_starter_policy(Path("runs/starter") / f"libero_spatial_{tasks}", args.tasks))
    if not arguments["checkpoint"]:
        raise SystemExit(f"ript up {args.mode}: give the policy with --set checkpoint=PATH")
    simulated = args.mode == "sim" or is_true(arguments["use_sim"])
    arguments["contexts_file"] = sim_contexts_file(args.mode, arguments, args.tasks, args.per_task)
    if simulated and args.mode == "franka" and not arguments["contexts_file"].endswith(".npz"):
        raise SystemExit("ript up franka: use_sim needs LIBERO contexts: --set contexts_file=PATH.npz "
                         "(written if missing)")
    if simulated and arguments["contexts_file"].endswith(".npz"):
        ensure_contexts(arguments, args.tasks, args.per_task)
    if not simulated:
        print(f"ript up franka: franka_ros2 is not started by ript: start it for the robot at "
              f"{arguments['robot_ip'] or '(robot_ip)'} first. franka_bridge is "
              f"{'in DRY RUN (set dry_run=false to move the robot)' if is_true(arguments['dry_run']) else 'LIVE'}",
              flush=True)
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    processes = start(args.mode, arguments)
    names = [spec.name for spec in active_nodes(args.mode, arguments)]
    print(f"ript up {args.mode}: started {', '.join(names)}", flush=True)
    code = 0
    try:
        while not stopping:
            exited = [(name, proc.returncode) for name, proc in zip(names, processes) if proc.poll() is not None]
            if exited:
                print(f"ript up {args.mode}: {exited[0][0]} exited with {exited[0][1]}; stopping the graph", flush=True)
                code = exited[0][1] or 1
                break
            time.sleep(0.2)
    finally:
        stop(processes)
    return code
