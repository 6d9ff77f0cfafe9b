"""`ript up sim|franka`: start the ROS graph of `ript.ros.graph` as subprocesses.

The same nodes, parameters and remappings as `ros2 launch ript_ros <mode>.launch.py` (which the
pip environment lacks), with the same exit policy: a node that exits is restarted after
RESPAWN_DELAY_S, up to RESPAWN_MAX_RETRIES times (each node recovers its state on restart); a node
that must not come back by itself (the Franka bridge), or one past its retries, stops the graph.
Ctrl-C or SIGTERM stops every node (SIGINT, then SIGKILL after a grace period).

    ript up sim                  # the starter policy for task 2 (shipped, or built once), panel on :8000
    ript up sim --set checkpoint=runs/sft/policy.ckpt --set max_steps=120
    ript up franka --set checkpoint=policy.ckpt --set contexts_file=contexts.yaml --set robot_ip=172.16.0.2
    ript up franka --set checkpoint=policy.ckpt --set use_sim=true --set contexts_file=runs/contexts/c.npz
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ript.cli.starter_policy import DEFAULT_TASKS
from ript.ros.graph import (
    ARGUMENTS,
    MODES,
    RESPAWN_DELAY_S,
    RESPAWN_MAX_RETRIES,
    NodeSpec,
    Text,
    active_nodes,
    is_true,
    resolve,
)

STOP_GRACE_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mode", choices=MODES)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="launch argument, as ros2 launch's name:=value; see --list",
    )
    parser.add_argument("--list", action="store_true", help="print the launch arguments and their defaults")
    parser.add_argument(
        "--tasks",
        default=DEFAULT_TASKS,
        help="sim, use_sim: tasks for a missing contexts_file (e.g. '0,1'; sim without "
        "contexts_file: drawn into runs/contexts/libero_spatial_tasks<ids>_<per-task>each_seed0.npz); "
        "sim: also the tasks of the starter policy built when no checkpoint is given",
    )
    parser.add_argument(
        "--per-task", type=int, default=4, help="sim, use_sim: contexts per task for a missing contexts_file"
    )


def launch_arguments(mode: str, assignments: list[str]) -> dict[str, str]:
    values = {name: default for name, (default, _) in ARGUMENTS[mode].items()}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or name not in values:
            raise SystemExit(f"ript up {mode}: unknown argument {assignment!r}; known: {sorted(values)}")
        values[name] = value
    return values


def node_command(spec: NodeSpec, arguments: dict[str, str]) -> list[str]:
    """`python -m module --ros-args ...` with the node's name, namespace, parameters and remappings."""
    command = [sys.executable, "-m", spec.module, "--ros-args", "-r", f"__node:={spec.name}"]
    if spec.namespace:
        command += ["-r", f"__ns:=/{spec.namespace}"]
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


class Supervisor:
    """The graph's processes under the exit policy of `ript.ros.graph` (launch's respawn,
    respawn_delay, respawn_max_retries, and a Shutdown on the exit of a node that is not respawned)."""

    def __init__(
        self,
        specs: list[NodeSpec],
        commands: list[list[str]],
        log=print,
        delay_s: float = RESPAWN_DELAY_S,
        max_retries: int = RESPAWN_MAX_RETRIES,
        **popen,
    ) -> None:
        self.specs, self.commands, self.log, self.popen = specs, commands, log, popen
        self.delay_s, self.max_retries = delay_s, max_retries
        self.processes = [subprocess.Popen(command, **popen) for command in commands]
        self.restarts = [0] * len(specs)
        self.restart_at: dict[int, float] = {}
        """index -> when the exited node starts again."""

    def pids(self) -> dict[str, int]:
        return {spec.full_name: proc.pid for spec, proc in zip(self.specs, self.processes)}

    def poll(self) -> int | None:
        """Restart what is due; None while the graph runs, else the exit code that stops it."""
        now = time.monotonic()
        for i, (spec, proc) in enumerate(zip(self.specs, self.processes)):
            if i in self.restart_at:
                if now >= self.restart_at[i]:
                    del self.restart_at[i]
                    self.processes[i] = subprocess.Popen(self.commands[i], **self.popen)
                    self.log(f"restarted {spec.full_name} (pid {self.processes[i].pid})")
                continue
            code = proc.poll()
            if code is None:
                continue
            if not spec.respawn:
                self.log(f"{spec.full_name} exited with {code}; it is not restarted by itself: stopping the graph")
                return code or 1
            if self.restarts[i] >= self.max_retries:
                self.log(f"{spec.full_name} exited with {code} after {self.restarts[i]} restarts: stopping the graph")
                return code or 1
            self.restarts[i] += 1
            self.restart_at[i] = now + self.delay_s
            self.log(
                f"{spec.full_name} exited with {code}; restarting it in {self.delay_s:g} s "
                f"(restart {self.restarts[i]} of {self.max_retries})"
            )
        return None


def graph_environment(environ: dict[str, str]) -> dict[str, str]:
    """The nodes' environment: DDS discovery stays on this machine unless the user widened it
    (any DDS peer can publish to the graph; see docs/ros.md, 'Who can talk to the graph')."""
    return {**environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") or "LOCALHOST"}


def check_dds_security(environ: dict[str, str]) -> None:
    """With ROS_SECURITY_ENABLE=true, create one node as the graph's nodes would before starting
    any: the pip ROS wheels' Fast DDS has no security plugins, and every node would fail (or, with
    a permissive strategy, run unprotected) only after the graph was up."""
    if environ.get("ROS_SECURITY_ENABLE", "").lower() != "true":
        return
    probe = "import rclpy; rclpy.init(); rclpy.create_node('ript_security_probe'); rclpy.shutdown()"
    result = subprocess.run([sys.executable, "-c", probe], env=environ, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-2:]
        raise SystemExit(
            "ript up: ROS_SECURITY_ENABLE=true, but this ROS 2 cannot create a secured node: "
            + " ".join(line.strip() for line in last)
            + "\nThe pip ROS wheels' Fast DDS is built without its security plugins (SROS2 needs "
            "-DSECURITY=ON): use a ROS 2 install that has them, or unset ROS_SECURITY_ENABLE and "
            "keep discovery on this machine (docs/ros.md, 'Who can talk to the graph')."
        )


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
    from ript.cli.common import parse_task_ids

    named = "_".join(str(task) for task in parse_task_ids(tasks))
    return f"runs/contexts/libero_spatial_tasks{named}_{per_task}each_seed0.npz"


def ensure_contexts(arguments: dict[str, str], tasks: str, per_task: int, redraw_stale: bool = False) -> None:
    """Draw the contexts file if missing; `redraw_stale`: also when it predates the placement fix (a
    file ript up named and drew itself; one the user gave is theirs, and the graph warns about it)."""
    from ript.cli.common import parse_task_ids
    from ript.sim.contexts import draw_contexts_file, is_stale

    path = Path(arguments["contexts_file"])
    if path.exists():
        if not (redraw_stale and is_stale(path)):
            return
        print(f"{path}: drawn before fresh placements were fixed; drawing it again", flush=True)
    contexts = draw_contexts_file(path, "libero_spatial", parse_task_ids(tasks), per_task, seed=0)
    print(f"wrote {len(contexts)} training contexts to {path}", flush=True)


def policy_reads_cameras(checkpoint: str) -> bool:
    """Whether the checkpoint's policy reads camera images (its type's config says), without building it."""
    from ript.core.registry import POLICY_CONFIGS
    from ript.core.safe_io import CorruptFileError
    from ript.policies.checkpoint import read_checkpoint

    try:
        payload = read_checkpoint(checkpoint)
        config = POLICY_CONFIGS.get(payload.get("policy_type", "vla")).from_dict(payload["config"])
    except (OSError, ValueError, KeyError, CorruptFileError) as exc:
        raise SystemExit(f"ript up: cannot use {checkpoint}: {exc}") from None
    return config.input_mode == "image"


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name, (default, help_text) in ARGUMENTS[args.mode].items():
            print(f"{name:18s} {default!r:44s} {help_text}")
        return 0
    arguments = launch_arguments(args.mode, args.set)
    given = {assignment.partition("=")[0] for assignment in args.set}
    if not arguments["checkpoint"] and args.mode == "sim":
        from ript.cli.starter_policy import LAUNCH_ARGUMENTS, ensure_starter_policy, starter_name

        arguments["checkpoint"] = str(
            ensure_starter_policy(Path("runs/starter") / starter_name(args.tasks), args.tasks)
        )
        # The settings that lifted this start, where the user did not set the argument.
        chosen = {name: value for name, value in LAUNCH_ARGUMENTS.items() if name not in given}
        arguments.update(chosen)
        print(f"ript up sim: RIPT on the starter with {', '.join(f'{k}={v}' for k, v in chosen.items())}", flush=True)
    if not arguments["checkpoint"]:
        raise SystemExit(f"ript up {args.mode}: give the policy with --set checkpoint=PATH")
    if args.mode == "sim" and "render" not in given and policy_reads_cameras(arguments["checkpoint"]):
        arguments["render"] = "true"
        print("ript up sim: the policy reads camera images: the LIBERO bridge renders them (render=true)", flush=True)
    simulated = args.mode == "sim" or is_true(arguments["use_sim"])
    named_here = arguments["contexts_file"] == ARGUMENTS[args.mode]["contexts_file"][0]
    arguments["contexts_file"] = sim_contexts_file(args.mode, arguments, args.tasks, args.per_task)
    if simulated and args.mode == "franka" and not arguments["contexts_file"].endswith(".npz"):
        raise SystemExit(
            "ript up franka: use_sim needs LIBERO contexts: --set contexts_file=PATH.npz (written if missing)"
        )
    if simulated and arguments["contexts_file"].endswith(".npz"):
        ensure_contexts(arguments, args.tasks, args.per_task, redraw_stale=named_here and args.mode == "sim")
    if not simulated:
        print(
            f"ript up franka: franka_ros2 is not started by ript: start it for the robot at "
            f"{arguments['robot_ip'] or '(robot_ip)'} first. franka_bridge is "
            f"{'in DRY RUN (set dry_run=false to move the robot)' if is_true(arguments['dry_run']) else 'LIVE'}",
            flush=True,
        )
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    environment = graph_environment(dict(os.environ))
    check_dds_security(environment)
    graph = Supervisor(
        active_nodes(args.mode, arguments),
        plan(args.mode, arguments),
        log=lambda text: print(f"ript up {args.mode}: {text}", flush=True),
        env=environment,
    )
    print(
        f"ript up {args.mode}: DDS discovery {environment['ROS_AUTOMATIC_DISCOVERY_RANGE']}, "
        f"domain {environment.get('ROS_DOMAIN_ID') or 0}",
        flush=True,
    )
    started = ", ".join(f"{name} (pid {pid})" for name, pid in graph.pids().items())
    print(f"ript up {args.mode}: started {started}", flush=True)
    code = 0
    try:
        while not stopping:
            code = graph.poll()
            if code is not None:
                break
            time.sleep(0.2)
    finally:
        stop(graph.processes)
    return code or 0
