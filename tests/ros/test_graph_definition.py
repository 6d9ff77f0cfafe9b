"""launch/*.launch.py and `ript up` start the same graph (no `launch` packages exist on PyPI, so the
launch files run here against stand-in `launch`/`launch_ros` modules that record every call)."""

from __future__ import annotations

import runpy
import sys
import time
import types
from pathlib import Path

import pytest

from ript.cli import up as up_cli
from ript.ros.graph import ARGUMENTS, MODES, ROS_PACKAGE, active_nodes, graph_nodes, is_true

LAUNCH_DIR = Path(__file__).resolve().parents[2] / "launch"


class LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        """What launch resolves it to when the launch runs (`context`: the launch arguments)."""
        return context[self.name]


class OpaqueFunction:
    def __init__(self, function):
        self.function = function


class Condition:
    def __init__(self, predicate, negate=False):
        self.predicate, self.negate = predicate, negate


class IfElseSubstitution:
    def __init__(self, condition, if_value="", else_value=""):
        self.condition, self.if_value, self.else_value = condition, if_value, else_value


class ParameterValue:
    def __init__(self, value, value_type=None):
        self.value, self.value_type = value, value_type


def _stand_in_modules(recorded: dict) -> dict[str, types.ModuleType]:
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod

    def record(kind):
        return lambda **kwargs: recorded.setdefault(kind, []).append(kwargs) or kwargs

    return {
        "launch": module("launch", LaunchDescription=lambda actions: list(actions)),
        "launch.actions": module(
            "launch.actions",
            DeclareLaunchArgument=lambda name, **kw: record("arguments")(name=name, **kw),
            OpaqueFunction=OpaqueFunction,
            Shutdown=lambda **kw: ("Shutdown", kw),
        ),
        "launch.conditions": module(
            "launch.conditions",
            IfCondition=Condition,
            UnlessCondition=lambda predicate: Condition(predicate, negate=True),
        ),
        "launch.substitutions": module(
            "launch.substitutions", LaunchConfiguration=LaunchConfiguration, IfElseSubstitution=IfElseSubstitution
        ),
        "launch_ros": module("launch_ros"),
        "launch_ros.actions": module("launch_ros.actions", Node=record("nodes")),
        "launch_ros.parameter_descriptions": module("launch_ros.parameter_descriptions", ParameterValue=ParameterValue),
    }


def _resolve(value, arguments):
    """What launch would pass for a parameter value built from LaunchConfiguration substitutions."""
    if isinstance(value, LaunchConfiguration):
        return arguments[value.name]
    if isinstance(value, list):
        return "".join(str(_resolve(part, arguments)) for part in value)
    if isinstance(value, IfElseSubstitution):
        return _resolve(
            value.if_value if is_true(_resolve(value.condition, arguments)) else value.else_value, arguments
        )
    if isinstance(value, ParameterValue):
        assert value.value_type is str
        return "'" + str(_resolve(value.value, arguments)) + "'"  # how a YAML string is written on a command line
    return value


def _runs(node, arguments) -> bool:
    condition = node.get("condition")
    return condition is None or is_true(_resolve(condition.predicate, arguments)) != condition.negate


def launch_file_commands(mode: str, arguments: dict[str, str], monkeypatch) -> tuple[list, list]:
    recorded: dict = {}
    for name, mod in _stand_in_modules(recorded).items():
        monkeypatch.setitem(sys.modules, name, mod)
    description = runpy.run_path(str(LAUNCH_DIR / f"{mode}.launch.py"))["generate_launch_description"]()
    for action in description:  # a graph built when the launch runs: run it with these arguments
        if isinstance(action, OpaqueFunction):
            action.function(arguments)
    opaque = sum(isinstance(action, OpaqueFunction) for action in description)
    assert len(description) == len(recorded["arguments"]) + (opaque or len(recorded["nodes"]))
    nodes = []
    for node in recorded["nodes"]:
        if not _runs(node, arguments):
            continue
        (parameters,) = node["parameters"]
        nodes.append(
            {
                "package": node["package"],
                "executable": node["executable"],
                "name": node["name"],
                "namespace": node.get("namespace", ""),
                "parameters": {k: _resolve(v, arguments) for k, v in parameters.items()},
                "remappings": [tuple(r) for r in node["remappings"]],
                "respawn": node.get("respawn", False),
                "on_exit": node.get("on_exit"),
            }
        )
    return nodes, recorded["arguments"]


def ript_up_view(command: list[str]) -> dict:
    """Parse `python -m module --ros-args ...` back into name, parameters and remappings."""
    args = command[command.index("--ros-args") + 1 :]
    pairs = list(zip(args[::2], args[1::2]))
    remaps = [tuple(value.split(":=", 1)) for flag, value in pairs if flag == "-r"]
    name = next(target for source, target in remaps if source == "__node")
    namespace = next((target.lstrip("/") for source, target in remaps if source == "__ns"), "")
    params = dict(tuple(value.split(":=", 1)) for flag, value in pairs if flag == "-p")
    return {
        "name": name,
        "namespace": namespace,
        "parameters": params,
        "remappings": [r for r in remaps if r[0] not in ("__node", "__ns")],
    }


GRAPHS = [
    ("sim", []),
    ("sim", ["robots=2"]),
    ("franka", []),
    ("franka", ["use_sim=true", "agentview_serial=036522072967"]),
    ("franka", ["use_sim=false", "dry_run=false", "robot_ip=172.16.0.2", "wrist_serial=036522072967"]),
]


@pytest.mark.parametrize("mode,settings", GRAPHS)
def test_launch_file_and_ript_up_start_the_same_graph(mode, settings, monkeypatch):
    arguments = up_cli.launch_arguments(mode, ["checkpoint=/models/policy.ckpt", "run_dir=/runs/x", *settings])
    launched, declared = launch_file_commands(mode, arguments, monkeypatch)
    planned = [ript_up_view(command) for command in up_cli.plan(mode, arguments)]
    specs = active_nodes(mode, arguments)

    assert [n["name"] for n in launched] == [p["name"] for p in planned] == [s.name for s in specs]
    assert [n["namespace"] for n in launched] == [p["namespace"] for p in planned] == [s.namespace for s in specs]
    for node, plan, spec in zip(launched, planned, specs):
        assert (node["package"], node["executable"]) == (ROS_PACKAGE, spec.executable)
        stringified = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in node["parameters"].items()}
        assert stringified == plan["parameters"], node["name"]
        assert node["remappings"] == plan["remappings"], node["name"]
        # the same exit policy: respawned, or its exit shuts the whole launch down
        assert node["respawn"] == spec.respawn, node["name"]
        assert (node["on_exit"] is None) == spec.respawn and (spec.respawn or node["on_exit"][0] == "Shutdown")
    assert {a["name"]: a["default_value"] for a in declared} == {k: v[0] for k, v in ARGUMENTS[mode].items()}
    policy = next(p for p in planned if p["name"] == "policy_node")
    assert policy["parameters"]["record_dir"] == "/runs/x/incoming"
    assert policy["parameters"]["checkpoint"] == "/models/policy.ckpt"


def test_franka_graph_runs_cameras_on_a_robot_and_the_emulator_in_simulation():
    def graph(*settings):
        arguments = up_cli.launch_arguments("franka", ["checkpoint=p.ckpt", *settings])
        return {
            spec.name: ript_up_view(up_cli.node_command(spec, arguments))["parameters"]
            for spec in active_nodes("franka", arguments)
        }

    robot = graph("wrist_serial=036522072967", "robot_ip=172.16.0.2")
    assert set(robot) == {
        "policy_node",
        "trainer_node",
        "operator_panel",
        "franka_bridge",
        "agentview_camera",
        "wrist_camera",
        "success_classifier",
    }
    assert robot["wrist_camera"]["serial"] == "'036522072967'"  # a string: the leading zero survives
    assert robot["agentview_camera"]["serial"] == "''"
    assert robot["franka_bridge"]["dry_run"] == "true" and robot["trainer_node"]["auto_start"] == "false"
    assert robot["franka_bridge"]["gripper_interface"] == "auto"
    # on a robot only the operator's marks count; the classifier (none yet: '') only collects examples
    assert robot["trainer_node"]["reward_mode"] == robot["operator_panel"]["reward_mode"] == "operator"
    assert robot["success_classifier"]["model"] == "''"
    assert robot["success_classifier"]["threshold"] == robot["operator_panel"]["classifier_threshold"] == "0.9"
    simulated = graph("use_sim=true", "dry_run=true")
    assert set(simulated) == {
        "policy_node",
        "trainer_node",
        "operator_panel",
        "franka_bridge",
        "franka_emulator",
        "success_classifier",
    }
    assert simulated["franka_bridge"]["dry_run"] == "false" and simulated["trainer_node"]["auto_start"] == "true"
    assert simulated["franka_bridge"]["gripper_interface"] == "topic"
    with pytest.raises(ValueError, match="true/false"):
        graph("use_sim=maybe")


def test_every_graph_node_module_has_a_main_and_console_script():
    """Each node is a pip script of the `ript` distribution (`ript up`, PATH) and an executable of the
    ament package ript_ros (`ros2 launch`), both pointing at the module `ript up` runs."""
    import importlib

    import tomllib

    root = Path(__file__).resolve().parents[2]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    ament_setup = (root / "ros2_ws" / "src" / ROS_PACKAGE / "setup.py").read_text()
    for mode in MODES:
        for spec in graph_nodes(mode):
            assert callable(importlib.import_module(spec.module).main)
            assert scripts[spec.executable] == f"{spec.module}:main", spec.executable
            assert f'"{spec.executable}": "{spec.module}:main"' in ament_setup, spec.executable


def test_ript_up_rejects_unknown_arguments():
    with pytest.raises(SystemExit, match="unknown argument"):
        up_cli.launch_arguments("sim", ["checkpiont=x"])


def test_ript_up_sim_draws_contexts_per_task_set():
    # One default path for every --tasks would hand `--tasks 1` the contexts drawn earlier for task 0.
    defaults = up_cli.launch_arguments("sim", [])
    first = up_cli.sim_contexts_file("sim", defaults, "0", 4)
    assert first != up_cli.sim_contexts_file("sim", defaults, "1", 4)
    assert first != up_cli.sim_contexts_file("sim", defaults, "0", 8)
    assert up_cli.sim_contexts_file("sim", defaults, "0, 1", 4) == up_cli.sim_contexts_file("sim", defaults, "0,1", 4)
    given = up_cli.launch_arguments("sim", ["contexts_file=mine.npz"])
    assert up_cli.sim_contexts_file("sim", given, "1", 4) == "mine.npz"
    franka = up_cli.launch_arguments("franka", [])
    assert up_cli.sim_contexts_file("franka", franka, "1", 4) == franka["contexts_file"]


def test_robot_bridge_is_never_respawned_and_every_other_node_is():
    for mode in MODES:
        for spec in graph_nodes(mode):
            assert spec.respawn == (spec.name != "franka_bridge"), spec.name


def test_supervisor_restarts_what_can_restart_and_stops_on_what_cannot(tmp_path):
    """ript up's exit policy on real processes: a respawnable node that exits comes back after the
    delay, up to max_retries; a node that must not come back stops the graph at once."""
    from ript.ros.graph import NodeSpec

    counter = tmp_path / "starts"
    crash = [sys.executable, "-c", f"open({str(counter)!r}, 'a').write('x'); raise SystemExit(3)"]
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    lines: list[str] = []
    graph = up_cli.Supervisor(
        [NodeSpec("crashy", None, "x", "x"), NodeSpec("steady", None, "y", "y")],
        [crash, sleep],
        log=lines.append,
        delay_s=0.05,
        max_retries=2,
    )
    try:
        deadline = time.monotonic() + 20
        code = None
        while code is None and time.monotonic() < deadline:
            code = graph.poll()
            time.sleep(0.02)
        assert code == 3, lines
        assert counter.read_text() == "xxx"  # the first start and 2 restarts
        assert graph.processes[1].poll() is None, "the steady node was disturbed"
        assert lines[0] == "crashy exited with 3; restarting it in 0.05 s (restart 1 of 2)"
        assert lines[-1] == "crashy exited with 3 after 2 restarts: stopping the graph"
    finally:
        up_cli.stop(graph.processes, grace_s=1)

    bridge = up_cli.Supervisor(
        [NodeSpec("franka_bridge", None, "x", "x", respawn=False)], [crash], log=lines.append, delay_s=0.05
    )
    try:
        deadline = time.monotonic() + 20
        while (code := bridge.poll()) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (
            code == 3 and lines[-1] == "franka_bridge exited with 3; it is not restarted by itself: stopping the graph"
        )
    finally:
        up_cli.stop(bridge.processes, grace_s=1)


def test_ript_up_sim_renders_cameras_for_a_policy_that_reads_them(tmp_path):
    from ript.policies.checkpoint import save_checkpoint
    from ript.policies.config import VLAConfig
    from ript.policies.vla import build_policy

    def checkpoint(input_mode: str):
        config = VLAConfig(input_mode=input_mode, image_size=64, hidden_dim=16, num_layers=1, num_heads=2, chunk_size=4)
        return str(save_checkpoint(tmp_path / f"{input_mode}.pt", build_policy(config)))

    assert up_cli.policy_reads_cameras(checkpoint("image"))
    assert not up_cli.policy_reads_cameras(checkpoint("state"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="cannot use"):
        up_cli.policy_reads_cameras(str(tmp_path / "junk.pt"))


def test_robots_2_runs_a_policy_node_and_a_bridge_per_robot_under_one_trainer_and_panel():
    arguments = up_cli.launch_arguments("sim", ["checkpoint=p.ckpt", "run_dir=/runs/x", "robots=2"])
    planned = [ript_up_view(command) for command in up_cli.plan("sim", arguments)]
    assert sorted(f"{p['namespace']}/{p['name']}".lstrip("/") for p in planned) == [
        "operator_panel",
        "robot1/libero_bridge",
        "robot1/policy_node",
        "robot2/libero_bridge",
        "robot2/policy_node",
        "trainer_node",
    ]
    trainer = next(p for p in planned if p["name"] == "trainer_node")
    assert trainer["parameters"]["robots"] == "robot1,robot2"
    for node in planned:
        if node["namespace"]:  # a robot's own topics stay under its namespace, the shared ones go to the root
            assert dict(node["remappings"]) == {
                "reward": "/reward",
                "ript/weights": "/ript/weights",
                "ript/trial_aborted": "/ript/trial_aborted",
                "ript/abort_trial": "/ript/abort_trial",
            }
    # one robot: the graph without namespaces, no robots parameter (the trainer's default: one robot)
    single = up_cli.plan("sim", up_cli.launch_arguments("sim", ["checkpoint=p.ckpt"]))
    assert all(ript_up_view(c)["namespace"] == "" and not ript_up_view(c)["remappings"] for c in single)
    assert "robots" not in next(ript_up_view(c) for c in single if "trainer_node" in c[2])["parameters"]
    with pytest.raises(ValueError, match="robots"):
        up_cli.plan("sim", up_cli.launch_arguments("sim", ["checkpoint=p.ckpt", "robots=0"]))
