"""The ROS graph, defined once: which nodes run, with which parameters and remappings.

`launch/sim.launch.py` and `launch/franka.launch.py` turn this into launch_ros Node actions (for
`ros2 launch ript_ros sim.launch.py` in a full ROS 2 install); `ript up sim|franka` starts the
same nodes as subprocesses (the pip environment has no `ros2 launch`). A test loads the launch
files with stand-in launch modules and compares them with `ript up`'s plan, so they cannot drift.

Parameter values are plain values, `Arg(name)` (a launch argument), a list of parts joined as
strings (e.g. [Arg("run_dir"), "/incoming"]), `IfElse(name, a, b)` (a when the launch argument is
true) or `Text(value)` (always a string parameter, even "036522072967"), which map to launch
substitutions one to one. A node with `run_if=(name, True/False)` runs only when that launch
argument is true/false (launch's IfCondition/UnlessCondition).

`robots:=N` (sim) runs N robots under one trainer and one panel: each robot's policy node and
LIBERO bridge under the namespace robot1 … robotN, where their own topics (robot/state, action,
cameras, ript/trial_start, policy/trial_record) live; the shared ones (reward, weights, aborts) are
remapped to the root. N = 1 is the one-robot graph without namespaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

MODES = ("sim", "franka")


@dataclass(frozen=True)
class Arg:
    """A launch argument, resolved by `ros2 launch name:=value` or `ript up --set name=value`."""

    name: str


@dataclass(frozen=True)
class IfElse:
    """`if_true` when the launch argument `name` is true, else `if_false` (launch's IfElseSubstitution)."""

    name: str
    if_true: Any
    if_false: Any


@dataclass(frozen=True)
class Text:
    """A string parameter even when its value looks like a number (a camera serial such as
    036522072967 would otherwise arrive as an int, its leading zero lost)."""

    value: Any


@dataclass(frozen=True)
class NodeSpec:
    name: str
    executable: str
    """Its name in ROS_PACKAGE's lib/ (ros2 launch) and on PATH (the `ript` distribution's scripts)."""
    module: str
    """The same node as `python -m module` (how `ript up` starts it)."""
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    run_if: tuple[str, bool] | None = None
    """(launch argument, value): the node runs only when the argument is true (or false)."""
    respawn: bool = True
    """Restarted when it exits (every ript node recovers its state: the trainer resumes its run folder,
    the panel its journal, the others hear of the running trial and have it aborted). False: its exit
    stops the whole graph instead (a robot bridge: a restart would command a robot nobody watched)."""
    namespace: str = ""
    """The ROS namespace the node runs in ('' : the root); a robot's nodes run under its name."""

    @property
    def full_name(self) -> str:
        """The node's name with its namespace (robot2/policy_node): unique in a graph."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


ROS_PACKAGE = "ript_ros"
"""The ament package (ros2_ws/src/ript_ros) that installs every node executable for `ros2 launch`."""

RESPAWN_DELAY_S = 2.0
"""Pause before a node is restarted (launch's respawn_delay)."""
RESPAWN_MAX_RETRIES = 5
"""Restarts of one node before its next exit stops the graph (launch's respawn_max_retries)."""


# Launch arguments both graphs take, then each graph's own (name -> (default, description)).
_SHARED_ARGUMENTS: dict[str, tuple[str, str]] = {
    "checkpoint": ("", "policy checkpoint to post-train (`ript up sim` without one builds a starter policy once)"),
    "backend": ("torch", "policy runtime: torch or onnx"),
    "group_size": ("auto", "K: trials per context (auto: the recipe's, 8)"),
    "batch_size": ("auto", "B: informative trials per iteration (auto: the recipe's, 48)"),
    "iterations": ("10", "RIPT iterations"),
    "learning_rate": ("auto", "LOOP learning rate (auto: the recipe's, 2e-5; 1e-4 left the trust region)"),
    "ppo_epochs": ("auto", "N: PPO epochs per iteration (auto: the recipe's, 4)"),
    "minibatch_size": ("auto", "LOOP minibatch, in policy queries (auto: the recipe's, 2048)"),
    "dynamic": ("true", "reject groups whose K rewards are all equal"),
    # 'auto' below: the recipe's value (ript.core.learner.TrainConfig's defaults) or the checkpoint's knob
    "target_kl": (
        "auto",
        "undo the LOOP step that leaves the policy further than this KL from the sampling one, "
        "and stop the update (0: never; auto: the recipe's)",
    ),
    "loss_normalization": ("auto", "token | query | trial: how LOOP averages scored elements (auto: the recipe's)"),
    "context_selection": ("auto", "mixed (contexts near 50 % first) | uniform (auto: the recipe's)"),
    "frozen_parameters": ("auto", "comma-separated parameter prefixes LOOP leaves alone, e.g. head.scale_head"),
    "execute_steps": ("auto", "actions executed per policy query (auto: the checkpoint's)"),
    "exploration_scale": ("auto", "regression head: factor on the sampling scale (auto: the checkpoint's)"),
    "exploration_floor": ("auto", "regression head: floor on the sampling scale (auto: the checkpoint's)"),
    "fixed_action_dims": (
        "auto",
        "regression head: comma-separated dims executed at the mean (auto: the checkpoint's)",
    ),
    "gripper_temperature": ("auto", "Bernoulli gripper: p(close) = sigmoid(logit / T) (auto: the checkpoint's)"),
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
        "robots": (
            "1",
            "LIBERO robots under one trainer: N > 1 runs a policy node and a bridge per robot, "
            "under the namespaces robot1 … robotN",
        ),
        "trial_timeout_s": ("120.0", "abort a trial without reward and trajectory after this long"),
        "reward_mode": (
            "any",
            "'operator': only the operator's marks count (simulator rewards become "
            "suggestions in the panel); 'any': every judge",
        ),
    },
    "franka": {
        **_SHARED_ARGUMENTS,
        "run_dir": ("runs/ros/franka", "trainer run folder; resumed if present"),
        "contexts_file": (
            "contexts.yaml",
            "YAML list of {context_id, instruction} the operator sets up (use_sim: a LIBERO contexts .npz)",
        ),
        "control_rate_hz": ("20.0", "policy control rate (LIBERO/Franka OSC runs at 20 Hz)"),
        "trial_timeout_s": ("600.0", "abort a trial without reward and trajectory after this long"),
        "reward_mode": (
            "operator",
            "'operator' (a robot's default): only the operator's marks count; the "
            "panel turns a confident classifier verdict into a mark the operator can "
            "undo; 'any': every judge",
        ),
        "classifier": (
            "",
            "success-classifier checkpoint (`ript train-classifier`); '' : none, the node only "
            "stores the operator's marks as training examples",
        ),
        "classifier_threshold": (
            "0.9",
            "confidence at which the classifier's verdict becomes a mark; below it the operator is asked",
        ),
        "classifier_episode_steps": (
            "0",
            "steps after which the classifier gives its verdict whatever its confidence (0: only confident successes)",
        ),
        "use_sim": (
            "false",
            "LIBERO plays the robot and cameras (franka_emulator) behind the same franka_bridge; "
            "trials start by themselves and dry_run is off",
        ),
        "robot_ip": ("", "the Franka's address: for franka_ros2's own launch (ript does not start franka_ros2)"),
        "dry_run": ("true", "franka_bridge computes and logs targets but commands nothing; false moves the robot"),
        "agentview_serial": ("", "serial of the RealSense that plays LIBERO's agentview camera"),
        "wrist_serial": ("", "serial of the wrist RealSense"),
        "camera_width": ("640", "RealSense colour stream width"),
        "camera_height": ("480", "RealSense colour stream height"),
        "camera_fps": ("30", "RealSense colour stream rate"),
        "target_pose_topic": (
            "/cartesian_impedance_controller/target_pose",
            "PoseStamped target of franka_ros2's Cartesian impedance controller",
        ),
        "current_pose_topic": ("/franka_robot_state_broadcaster/current_pose", "franka_ros2's end-effector pose"),
        "joint_states_topic": ("/joint_states", "arm and finger joint states"),
        "max_steps": ("0", "use_sim: episode budget in the simulator (0: the suite's standard)"),
    },
}

_TRAINER_ARGS = (
    "checkpoint",
    "run_dir",
    "contexts_file",
    "group_size",
    "batch_size",
    "iterations",
    "learning_rate",
    "ppo_epochs",
    "minibatch_size",
    "dynamic",
    "trial_timeout_s",
    "reward_mode",
    "target_kl",
    "loss_normalization",
    "context_selection",
    "frozen_parameters",
    "execute_steps",
    "exploration_scale",
    "exploration_floor",
    "fixed_action_dims",
    "gripper_temperature",
)


SHARED_TOPICS = ("reward", "ript/weights", "ript/trial_aborted", "ript/abort_trial")
"""What a robot's nodes share with the trainer and the panel (each message names its trial): remapped
from the robot's namespace to the root. Everything else a robot's node names stays in its namespace."""


def robot_namespaces(count: int) -> list[str]:
    """robot1 … robotN; [''] for one robot (the graph without namespaces)."""
    if count < 1:
        raise ValueError(f"robots must be >= 1, got {count}")
    return [""] if count == 1 else [f"robot{n}" for n in range(1, count + 1)]


def robot_count(arguments: dict[str, str]) -> int:
    """The `robots` launch argument (1 where the mode has none)."""
    text = arguments.get("robots", "1")
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"robots must be a whole number >= 1, got {text!r}") from None


def _in_namespace(spec: NodeSpec, namespace: str) -> NodeSpec:
    if not namespace:
        return spec
    shared = tuple((name, f"/{name}") for name in SHARED_TOPICS)
    return replace(spec, namespace=namespace, remappings=spec.remappings + shared)


def _policy(mode: str) -> NodeSpec:
    parameters = {
        "checkpoint": Arg("checkpoint"),
        "backend": Arg("backend"),
        "record_dir": [Arg("run_dir"), "/incoming"],
        "weights_dir": [Arg("run_dir"), "/weights"],
        "stale_after_s": 0.5,
        "action_bound": 1.0,
    }
    if mode == "sim":
        parameters["control_rate_hz"] = 0.0  # lock-step with the simulator: act on each observation
    else:
        parameters["control_rate_hz"] = Arg("control_rate_hz")
        # images (30 fps) and robot state arrive independently: allow a bit more than one frame apart
        parameters["sync_tolerance_s"] = 0.05
    # cameras publish camera/<name>/image_raw (the LIBERO bridge, the RealSense nodes or the
    # emulator), where the policy node listens: no remapping
    return NodeSpec("policy_node", "policy_node", "ript.ros.policy_node", parameters)


def _trainer(mode: str) -> NodeSpec:
    parameters: dict[str, Any] = {name: Arg(name) for name in _TRAINER_ARGS}
    parameters["trajectory_dir"] = [Arg("run_dir"), "/incoming"]  # the policy node's record_dir: the one it reads
    if mode == "sim":
        parameters.update(auto_start=True, wait_for_subscribers=2)  # policy node + bridge
    else:
        # a robot: the operator resets the scene and starts each trial; in simulation the emulator
        # resets LIBERO itself (subscribers: policy node, franka bridge, emulator, panel)
        parameters.update(auto_start=Arg("use_sim"), wait_for_subscribers=4)
    return NodeSpec("trainer_node", "trainer_node", "ript.ros.trainer_node", parameters)


def _panel(mode: str) -> NodeSpec:
    parameters = {
        "host": Arg("panel_host"),
        "port": Arg("panel_port"),
        "token": Arg("panel_token"),
        "auto_accept": Arg("auto_accept"),
        "reward_mode": Arg("reward_mode"),
        "run_dir": Arg("run_dir"),
    }
    if mode == "franka":
        parameters["classifier_threshold"] = Arg("classifier_threshold")
    return NodeSpec("operator_panel", "ript_panel", "ript.ros.panel_node", parameters)


def _classifier() -> NodeSpec:
    """Judges trials from the agentview camera and turns every operator mark into a training example."""
    return NodeSpec(
        "success_classifier",
        "ript_classifier",
        "ript.ros.classifier_node",
        {
            "model": Text(Arg("classifier")),
            "threshold": Arg("classifier_threshold"),
            "episode_steps": Arg("classifier_episode_steps"),
            "camera": "agentview",
            "run_dir": Arg("run_dir"),
        },
    )


def _camera(name: str) -> NodeSpec:
    """A RealSense camera publishing camera/<name>/image_raw, where the policy node and panel listen."""
    return NodeSpec(
        f"{name}_camera",
        "realsense_camera",
        "ript.ros.camera_node",
        {
            "serial": Text(Arg(f"{name}_serial")),
            "camera_name": name,
            "width": Arg("camera_width"),
            "height": Arg("camera_height"),
            "fps": Arg("camera_fps"),
        },
        run_if=("use_sim", False),
    )


def _franka_bridge() -> NodeSpec:
    # not respawned: the robot holds (franka_ros2's controller keeps its last target) and the graph
    # stops, so nobody is surprised by a bridge that comes back and moves the arm on its own
    return NodeSpec(
        "franka_bridge",
        "franka_bridge",
        "ript.ros.franka_bridge",
        respawn=False,
        parameters={
            "robot_ip": Text(Arg("robot_ip")),
            "dry_run": IfElse("use_sim", False, Arg("dry_run")),  # the emulator is no hardware to protect
            # the emulator serves the fallback gripper topic; franka_ros2's gripper takes actions
            "gripper_interface": IfElse("use_sim", "topic", "auto"),
            "target_pose_topic": Arg("target_pose_topic"),
            "current_pose_topic": Arg("current_pose_topic"),
            "joint_states_topic": Arg("joint_states_topic"),
            "watch_cameras": "agentview,wrist",
            "control_period_s": 0.05,
            # CPU rendering makes an emulator step take up to ~0.25 s on a busy machine: a robot's
            # watchdog timeouts would hold it every few steps
            "state_timeout_s": IfElse("use_sim", 1.0, 0.2),
            "image_timeout_s": IfElse("use_sim", 1.0, 0.5),
        },
    )


def _franka_emulator() -> NodeSpec:
    return NodeSpec(
        "franka_emulator",
        "ript_franka_emulator",
        "ript.ros.franka_emulator",
        {
            "contexts_file": Arg("contexts_file"),
            "max_steps": Arg("max_steps"),
            "render": True,
            "target_pose_topic": Arg("target_pose_topic"),
            "current_pose_topic": Arg("current_pose_topic"),
            "joint_states_topic": Arg("joint_states_topic"),
        },
        run_if=("use_sim", True),
    )


def _libero_bridge() -> NodeSpec:
    return NodeSpec(
        "libero_bridge",
        "ript_libero_bridge",
        "ript.ros.libero_bridge",
        {
            "contexts_file": Arg("contexts_file"),
            "max_steps": Arg("max_steps"),
            "render": Arg("render"),
            "publish_reward": Arg("sim_reward"),
        },
    )


def graph_nodes(mode: str, robots: int = 1) -> list[NodeSpec]:
    """Every node of a mode, conditional ones included (`active_nodes` picks those that run).
    franka: franka_ros2 (the robot driver and its Cartesian impedance controller) is not part of
    ript; start it beside this graph. sim: `robots` LIBERO robots (a policy node and a bridge each)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if robots != 1 and mode != "sim":
        raise ValueError(f"several robots are a sim graph's; {mode} runs one")
    namespaces = robot_namespaces(robots)
    if namespaces != [""]:
        trainer = _trainer(mode)
        trainer.parameters["robots"] = ",".join(namespaces)
        return [
            *(_in_namespace(_policy(mode), namespace) for namespace in namespaces),
            trainer,
            _panel(mode),
            *(_in_namespace(_libero_bridge(), namespace) for namespace in namespaces),
        ]
    nodes = [_policy(mode), _trainer(mode), _panel(mode)]
    if mode == "sim":
        nodes.append(_libero_bridge())
    else:
        nodes += [_franka_bridge(), _camera("agentview"), _camera("wrist"), _franka_emulator(), _classifier()]
    return nodes


def is_true(text: str) -> bool:
    """A launch argument as a condition, read as launch reads it."""
    if text.strip().lower() in ("true", "1"):
        return True
    if text.strip().lower() in ("false", "0"):
        return False
    raise ValueError(f"expected true/false/1/0 for a condition, got {text!r}")


def active_nodes(mode: str, arguments: dict[str, str]) -> list[NodeSpec]:
    """The nodes that run with these launch arguments."""
    return [
        spec
        for spec in graph_nodes(mode, robot_count(arguments))
        if spec.run_if is None or is_true(arguments[spec.run_if[0]]) == spec.run_if[1]
    ]


def resolve(value: Any, arguments: dict[str, str]) -> Any:
    """A parameter value with its launch arguments filled in (what `ros2 launch` would pass)."""
    if isinstance(value, Arg):
        return arguments[value.name]
    if isinstance(value, list):
        return "".join(str(resolve(part, arguments)) for part in value)
    if isinstance(value, IfElse):
        return resolve(value.if_true if is_true(arguments[value.name]) else value.if_false, arguments)
    if isinstance(value, Text):
        return str(resolve(value.value, arguments))
    return value
