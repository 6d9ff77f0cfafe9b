"""The ROS graph, defined once: which nodes run, with which parameters and remappings.

`launch/sim.launch.py` and `launch/franka.launch.py` turn this into launch_ros Node actions (for
`ros2 launch ript_policy sim.launch.py` in a full ROS 2 install); `ript up sim|franka` starts the
same nodes as subprocesses (the pip environment has no `ros2 launch`). A test loads the launch
files with stand-in launch modules and compares them with `ript up`'s plan, so they cannot drift.

Parameter values are plain values, `Arg(name)` (a launch argument) or a list of parts joined as
strings (e.g. [Arg("run_dir"), "/incoming"]), which maps to launch substitutions one to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MODES = ("sim", "franka")


@dataclass(frozen=True)
class Arg:
    """A launch argument, resolved by `ros2 launch name:=value` or `ript up --set name=value`."""

    name: str


@dataclass(frozen=True)
class NodeSpec:
    name: str
    package: str | None
    """ROS package whose lib/ holds the executable; None: the executable is on PATH (pip script)."""
    executable: str
    module: str
    """The same node as `python -m module` (how `ript up` starts it)."""
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()


# Launch arguments both graphs take, then each graph's own (name -> (default, description)).
_SHARED_ARGUMENTS: dict[str, tuple[str, str]] = {
    "checkpoint": ("", "policy checkpoint to post-train (required)"),
    "backend": ("torch", "policy runtime: torch or onnx"),
    "group_size": ("8", "K: trials per context"),
    "batch_size": ("32", "B: informative trials per iteration"),
    "iterations": ("10", "RIPT iterations"),
    "learning_rate": ("0.0001", "LOOP learning rate"),
    "ppo_epochs": ("2", "N: PPO epochs per iteration"),
    "dynamic": ("true", "reject groups whose K rewards are all equal"),
    "panel_host": ("127.0.0.1", "operator panel bind address (localhost unless the screen is elsewhere)"),
    "panel_port": ("8000", "operator panel port (0: any free port, printed at start)"),
    "panel_token": ("auto", "operator panel access token ('auto': a random one, printed at start)"),
    "auto_accept": ("false", "the panel forwards the simulator's success check as the operator's mark"),
}

ARGUMENTS: dict[str, dict[str, tuple[str, str]]] = {
    "sim": {
        **_SHARED_ARGUMENTS,
        "run_dir": ("runs/ros/sim", "trainer run folder: checkpoints, stored trials, weights; resumed if present"),
        "contexts_file": ("runs/contexts/libero_spatial_seed0.npz", "training contexts (`ript contexts --out`)"),
        "max_steps": ("0", "episode budget in the simulator (0: the suite's standard)"),
        "render": ("false", "render cameras (image-mode policies); state-mode policies need none"),
        "sim_reward": ("true", "the simulator's success check publishes /reward (false: an operator/classifier)"),
        "trial_timeout_s": ("120.0", "abort a trial without reward and trajectory after this long"),
        "reward_mode": ("any", "'operator': only the operator's marks count (simulator rewards become "
                               "suggestions in the panel); 'any': every judge"),
    },
    "franka": {
        **_SHARED_ARGUMENTS,
        "run_dir": ("runs/ros/franka", "trainer run folder; resumed if present"),
        "contexts_file": ("contexts.yaml", "YAML list of {context_id, instruction} the operator sets up"),
        "control_rate_hz": ("20.0", "policy control rate (LIBERO/Franka OSC runs at 20 Hz)"),
        "trial_timeout_s": ("600.0", "abort a trial without reward and trajectory after this long"),
        "reward_mode": ("any", "'operator': only the operator's marks count (a classifier's rewards are "
                               "ignored); 'any': every judge"),
    },
}

_TRAINER_ARGS = ("checkpoint", "run_dir", "contexts_file", "group_size", "batch_size", "iterations",
                 "learning_rate", "ppo_epochs", "dynamic", "trial_timeout_s", "reward_mode")


def _policy(mode: str) -> NodeSpec:
    parameters = {"checkpoint": Arg("checkpoint"), "backend": Arg("backend"),
                  "record_dir": [Arg("run_dir"), "/incoming"], "stale_after_s": 0.5, "action_bound": 1.0}
    remappings: tuple[tuple[str, str], ...] = ()
    if mode == "sim":
        parameters["control_rate_hz"] = 0.0  # lock-step with the simulator: act on each observation
    else:
        parameters["control_rate_hz"] = Arg("control_rate_hz")
        # realsense2_camera's default topic names, one camera per namespace.
        remappings = (("camera/agentview/image_raw", "/agentview/color/image_raw"),
                      ("camera/wrist/image_raw", "/wrist/color/image_raw"))
    return NodeSpec("policy_node", "ript_policy", "policy_node", "ript_policy.policy_node", parameters, remappings)


def _trainer(mode: str) -> NodeSpec:
    parameters: dict[str, Any] = {name: Arg(name) for name in _TRAINER_ARGS}
    if mode == "sim":
        parameters.update(auto_start=True, wait_for_subscribers=2)  # policy node + bridge
    else:
        parameters.update(auto_start=False, wait_for_subscribers=1)  # the operator starts each trial
    return NodeSpec("trainer_node", "ript_trainer", "trainer_node", "ript_trainer.trainer_node", parameters)


def _panel() -> NodeSpec:
    return NodeSpec("operator_panel", "ript_trainer", "ript_panel", "ript_trainer.panel.node",
                    {"host": Arg("panel_host"), "port": Arg("panel_port"), "token": Arg("panel_token"),
                     "auto_accept": Arg("auto_accept"), "reward_mode": Arg("reward_mode"),
                     "run_dir": Arg("run_dir")})


def graph_nodes(mode: str) -> list[NodeSpec]:
    """The nodes of a mode. franka: the Franka/RealSense driver bridge that publishes RobotState and
    executes ActionCommand is not part of ript yet (see docs/ros.md); start it beside this graph."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    nodes = [_policy(mode), _trainer(mode), _panel()]
    if mode == "sim":
        nodes.append(NodeSpec("libero_bridge", None, "ript_libero_bridge", "ript_sim.libero_bridge",
                              {"contexts_file": Arg("contexts_file"), "max_steps": Arg("max_steps"),
                               "render": Arg("render"), "publish_reward": Arg("sim_reward")}))
    return nodes


def resolve(value: Any, arguments: dict[str, str]) -> Any:
    """A parameter value with its launch arguments filled in (what `ros2 launch` would pass)."""
    if isinstance(value, Arg):
        return arguments[value.name]
    if isinstance(value, list):
        return "".join(str(resolve(part, arguments)) for part in value)
    return value
