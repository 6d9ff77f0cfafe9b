"""ROS 2 trainer node: K trials per context, LOOP updates, new weights to the policy node.

A thin adapter around `InteractiveTrainer` (the same DynamicSampler, LOOP update and checkpoints
as `ript train`). It announces each trial (TrialStart), matches /reward and the policy node's
TrialRecord to it by trial_id, stores the trial (verified file) before acknowledging it on
/ript/status, and after each iteration publishes the new weights (WeightsUpdate, latched).
Restarted on the same run_dir it resumes: checkpoint + replay of the stored trials.

Trials start automatically (`auto_start`, the simulator) or when an operator calls
/ript/start_trial after resetting the scene (a real robot). /ript/abort_trial drops a trial.

Several robots (`robots`: their namespaces, e.g. robot1,robot2): each robot's nodes live under its
namespace; the trainer announces a trial on that robot's /<robot>/ript/trial_start (and, for the
panel and other monitors, on /ript/trial_start), takes its TrialRecords on
/<robot>/policy/trial_record only (a record names its robot by the topic it arrives on), and hands
the open group's next trial to whichever robot is free (`RobotSchedule`). Rewards, weights, aborts
and the status stay on the shared topics: they name their trial.

    ros2 run ript_ros trainer_node --ros-args -p checkpoint:=policy.ckpt -p run_dir:=runs/ros/run1 \
        -p contexts_file:=runs/contexts/libero_spatial_seed0.npz
"""

from __future__ import annotations

import dataclasses
import logging
import re
import typing
from pathlib import Path

import yaml
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ript_interfaces.msg import Reward, TrainerStatus, TrialRecord, TrialStart, WeightsUpdate
from ript_interfaces.srv import AbortTrial, StartTrial
from std_msgs.msg import String

from ript.core.config_io import from_dict, merged, set_dotted
from ript.core.interactive import ContextInfo, InteractiveTrainer, Verdict
from ript.core.learner import TrainConfig, UnresumableRunError
from ript.core.robot_schedule import RobotSchedule
from ript.core.trial_identity import TrialTicket
from ript.policies.vla import SAMPLING_KNOBS
from ript.ros.ros_main import spin_node
from ript.ros.trial_start import TRIAL_START_QOS

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


# Short ROS parameter names (the graph's launch arguments) -> TrainConfig field. Every field is also
# a parameter of its own, `train.<field>` (train_fields), and `config` names a YAML tree; unset, each
# keeps `ript train`'s recipe (TrainConfig's defaults): one tree for `ript train` and the node.
TRAIN_PARAMETERS = {
    "iterations": "iterations",
    "learning_rate": "learning_rate",
    "frozen_parameters": "frozen_parameters",
    "group_size": "sampler.group_size",
    "batch_size": "sampler.batch_size",
    "dynamic": "sampler.dynamic",
    "context_selection": "sampler.context_selection",
    "uniform_fraction": "sampler.uniform_fraction",
    "ppo_epochs": "loop.ppo_epochs",
    "minibatch_size": "loop.minibatch_size",
    "clip_low": "loop.clip_low",
    "clip_high": "loop.clip_high",
    "max_grad_norm": "loop.max_grad_norm",
    "target_kl": "loop.target_kl",
    "loss_normalization": "loop.loss_normalization",
}
UNSET = ("auto", "", None)
"""A parameter at one of these keeps the recipe's value (training) or the checkpoint's (sampling knobs)."""
LIST_PARAMETERS = {"frozen_parameters": str, "fixed_action_dims": int}
"""Lists travel as comma-separated strings ('' = empty): ROS cannot declare an empty list's type."""


BOOL_KNOBS = ("correlate_across_queries",)


def _as_bool(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"parameter {name} must be true or false, got {value!r}")
    return text == "true"


def _as_list(value, item_type) -> list:
    if isinstance(value, (list, tuple)):
        return [item_type(v) for v in value]
    return [item_type(v.strip()) for v in str(value).split(",") if v.strip()]


NODE_MANAGED = ("eval_every", "keep_best", "rollback_drop", "parallel_groups", "seed", "sampler.seed")
"""TrainConfig fields the node sets itself or has no use for: no evaluation runs (so no best
evaluation to keep or roll back to), one trial at a time, its own seed."""


def train_fields(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """Every leaf of the training config tree the node takes, dotted ('sampler.skip_solved'): each is
    a parameter 'train.<field>' of the node."""
    hints = typing.get_type_hints(cls)
    names = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            names += train_fields(hints[f.name], f"{prefix}{f.name}.")
        elif prefix + f.name not in NODE_MANAGED:
            names.append(prefix + f.name)
    return names


def _as_yaml(value) -> str:
    """A parameter value as the YAML text `set_dotted` parses ('none' for a field that may be None)."""
    if isinstance(value, (list, tuple)):
        return yaml.safe_dump(list(value), default_flow_style=True).strip()
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if str(value).strip().lower() == "none" else str(value)


def config_from_parameters(get) -> tuple[TrainConfig, dict]:
    """TrainConfig and sampling knobs from node parameters: `get(name, default)` returns the value.

    One tree, in layers (later wins): the recipe (`ript train`'s defaults); the YAML file named by
    `config` (a TrainConfig tree, or a `ript train` config whose `train` section is used); the short
    names the graph passes (TRAIN_PARAMETERS); then `train.<field>` for every field of the tree
    (train_fields). A parameter at 'auto' (or '') is not set; target_kl <= 0 means none; a
    sampling knob left at 'auto' keeps the checkpoint's value."""
    data = dataclasses.asdict(TrainConfig())
    config_file = get("config", "")
    if config_file not in UNSET:
        tree = yaml.safe_load(Path(config_file).read_text()) or {}
        if isinstance(tree, dict) and isinstance(tree.get("train"), dict):
            tree = tree["train"]
        data = dataclasses.asdict(from_dict(TrainConfig, merged(data, tree)))  # unknown keys refused here
    assignments = []
    for name, path in TRAIN_PARAMETERS.items():
        value = get(name, "auto")
        if value in UNSET:
            continue  # a launch argument left unset: the recipe's (or the config file's) value
        if name in LIST_PARAMETERS:
            value = _as_list(value, LIST_PARAMETERS[name])
        elif name == "target_kl":
            value = float(value) if float(value) > 0 else None
        assignments.append(f"{path}={_as_yaml(value)}")
    for path in train_fields():
        value = get(f"train.{path}", "auto")
        if value in UNSET:
            continue
        current = data
        for key in path.split("."):
            current = current[key]
        if isinstance(current, list) and isinstance(value, str) and not value.lstrip().startswith("["):
            value = _as_list(value, str)  # a list field as ROS carries it: comma-separated text
        assignments.append(f"{path}={_as_yaml(value)}")
    for assignment in assignments:
        set_dotted(data, assignment)
    config = from_dict(TrainConfig, data)  # the dataclasses validate (and quote) bad values
    knobs = {}
    for name in SAMPLING_KNOBS:
        value = get(name, "auto")
        if value in UNSET:
            continue
        if name in LIST_PARAMETERS:
            knobs[name] = _as_list(value, LIST_PARAMETERS[name])
        elif name in BOOL_KNOBS:
            knobs[name] = _as_bool(name, value)
        else:
            knobs[name] = int(value) if name in ("execute_steps", "top_k") else float(value)
    return config, knobs


ROBOT_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,62}$"
"""A robot's name is its ROS namespace: one token, no slashes."""


def robot_names(value) -> list[str]:
    """The `robots` parameter (comma-separated namespaces) as a list; [""] (one robot, no namespace)
    when empty. Raises ValueError for a name that is no namespace token, or a repeated one."""
    names = _as_list(value, str)
    for name in names:
        if not re.fullmatch(ROBOT_NAME, name):
            raise ValueError(f"robot name {name!r} is not a namespace token ({ROBOT_NAME})")
    if len(set(names)) != len(names):
        raise ValueError(f"robot names repeat: {names}")
    return names or [""]


def robot_topic(robot: str, name: str) -> str:
    """A robot's own topic: /<robot>/<name>, or the plain relative name in a one-robot graph."""
    return f"/{robot}/{name}" if robot else name


def load_contexts(path: str) -> list[ContextInfo]:
    """A LIBERO contexts .npz (`ript contexts`) or a YAML list of {context_id, instruction} (robot)."""
    if path.endswith(".npz"):
        from ript.ros.ros_contexts import load_context_infos

        return load_context_infos(path)
    import yaml

    return [ContextInfo(str(c["context_id"]), str(c["instruction"])) for c in yaml.safe_load(Path(path).read_text())]


class TrainerNode(Node):
    def __init__(self) -> None:
        super().__init__("trainer_node")
        # dynamic typing: `-p x:=30` must not be refused for a float default (YAML reads it as int)
        p = lambda name, default: self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
        checkpoint = p("checkpoint", "").value
        run_dir = Path(p("run_dir", "runs/ros/run").value)
        contexts_file = p("contexts_file", "").value
        self.auto_start = bool(p("auto_start", True).value)
        self.wait_for_subscribers = int(p("wait_for_subscribers", 2).value)
        """Subscribers each robot's trial-start topic needs before a trial starts there."""
        try:
            self.robots = robot_names(p("robots", "").value)
        except ValueError as exc:
            raise SystemExit(f"trainer_node: robots: {exc}") from None
        self.schedule = RobotSchedule(self.robots)
        self.trial_timeout_s = float(p("trial_timeout_s", 120.0).value)
        self.reward_mode = str(p("reward_mode", "any").value)
        """'operator': only Reward(source=operator) counts; the simulator's check is a suggestion for
        the operator panel. 'any': every judge's reward counts."""
        if self.reward_mode not in ("any", "operator"):
            raise SystemExit(f"trainer_node: reward_mode must be 'any' or 'operator', got {self.reward_mode!r}")
        seed = int(p("seed", 0).value)
        self.trajectory_dir = Path(p("trajectory_dir", "").value or run_dir / "incoming")
        """The one folder trajectory files named by TrialRecord messages are read from (the policy
        node's record_dir); anything else a message names is refused unread."""
        self.max_trajectory_bytes = int(p("max_trajectory_bytes", 1 << 30).value)
        self._weights_refusals = 0
        config, knobs = config_from_parameters(lambda name, default: p(name, default).value)
        config.eval_every, config.seed, config.sampler.seed = 0, seed, seed
        if not checkpoint or not contexts_file:
            raise SystemExit("trainer_node: set 'checkpoint' (policy to train) and 'contexts_file'")
        from ript.policies.checkpoint import load_checkpoint, save_checkpoint
        from ript.policies.vla import apply_sampling_knobs

        policy, payload = load_checkpoint(checkpoint)
        apply_sampling_knobs(policy, knobs)  # before the first weights go out: the policy node samples with them

        def save_weights(path: Path) -> None:
            save_checkpoint(
                path,
                policy,
                stats=payload.get("stats"),
                instruction_embeddings=payload.get("instruction_embeddings"),
                metadata={**payload.get("metadata", {}), "ript_run": str(run_dir)},
            )

        self.trainer = InteractiveTrainer(
            policy,
            load_contexts(contexts_file),
            config,
            run_dir,
            save_weights,
            checkpoint,
            extra_config={"ros": {"checkpoint": checkpoint, "contexts_file": contexts_file}},
        )
        resume = str(p("resume", "auto").value)
        if resume not in ("auto", "fresh"):
            raise SystemExit(f"trainer_node: resume must be 'auto' or 'fresh', got {resume!r}")
        try:
            resumed = self.trainer.resume(fresh=resume == "fresh")
        except UnresumableRunError as exc:
            raise SystemExit(f"trainer_node: {exc}") from None
        if resumed:
            # every stored trial replayed (a group still open counts too), and the iteration it belongs to
            self.get_logger().info(
                f"resumed {run_dir}: {self.trainer.iteration} iteration(s) done, "
                f"{self.trainer.replayed_trials} stored trials of iteration "
                f"{self.trainer.iteration + 1} replayed"
            )
        self.message = "starting"

        # latched: a node that (re)starts mid-trial hears of the trial and has it aborted at once
        self.start_pubs = {
            robot: self.create_publisher(TrialStart, robot_topic(robot, "ript/trial_start"), TRIAL_START_QOS)
            for robot in self.robots
        }
        self.instruction_pubs = {
            robot: self.create_publisher(String, robot_topic(robot, "instruction"), LATCHED) for robot in self.robots
        }
        self.several_robots = self.robots != [""]
        if self.several_robots:  # every start, on the shared topics too: the panel and monitors
            self.monitor_start_pub = self.create_publisher(TrialStart, "ript/trial_start", TRIAL_START_QOS)
            self.monitor_instruction_pub = self.create_publisher(String, "instruction", LATCHED)
        self.weights_pub = self.create_publisher(WeightsUpdate, "ript/weights", LATCHED)
        self.status_pub = self.create_publisher(TrainerStatus, "ript/status", RELIABLE)
        self.aborted_pub = self.create_publisher(String, "ript/trial_aborted", RELIABLE)
        self.create_subscription(Reward, "reward", self._on_reward, RELIABLE)
        for robot in self.robots:
            self.create_subscription(
                TrialRecord,
                robot_topic(robot, "policy/trial_record"),
                lambda msg, robot=robot: self._on_record(msg, robot),
                RELIABLE,
            )
        if self.several_robots:  # a policy node outside every robot's namespace: heard, and refused
            self.create_subscription(
                TrialRecord, "policy/trial_record", lambda msg: self._on_record(msg, None), RELIABLE
            )
        self.create_service(StartTrial, "ript/start_trial", self._on_start_request)
        self.create_service(AbortTrial, "ript/abort_trial", self._on_abort_request)
        self.create_timer(0.05, self._tick)
        self.create_timer(1.0, self._publish_status)
        self._publish_weights()
        self.get_logger().info(
            f"trainer ready: {len(self.trainer.contexts)} contexts, K={config.sampler.group_size}, "
            f"B={config.sampler.batch_size}, run {run_dir}"
            + (f", robots {', '.join(self.robots)}" if self.several_robots else "")
        )

    # ---- outgoing ------------------------------------------------------------------------------
    def _publish_weights(self) -> None:
        from ript.core.safe_io import file_digest

        path = self.trainer.verified_weights_path()  # a damaged file is rebuilt, never announced
        self.published_version = self.trainer.weights_version
        self.weights_pub.publish(
            WeightsUpdate(
                version=self.trainer.weights_version,
                path=str(path.resolve()),
                sha256=file_digest(path),
                stamp=self.get_clock().now().to_msg(),
            )
        )

    def _start(self, ticket: TrialTicket) -> None:
        robot = ticket.robot
        self.schedule.started(robot)
        self.instruction_pubs[robot].publish(String(data=ticket.instruction))
        start = TrialStart(
            trial_id=ticket.trial_id,
            context_id=ticket.context_id,
            iteration=ticket.iteration,
            trial_index=ticket.trial_index,
            group_size=ticket.group_size,
            instruction=ticket.instruction,
            stochastic=True,
            weights_version=ticket.weights_version,
            stamp=self.get_clock().now().to_msg(),
        )
        self.start_pubs[robot].publish(start)
        if self.several_robots:
            self.monitor_instruction_pub.publish(String(data=ticket.instruction))
            self.monitor_start_pub.publish(start)
        self.message = f"started {ticket.trial_id} on {ticket.context_id}" + (f" on {robot}" if robot else "")
        self.get_logger().info(self.message)
        self._publish_status()

    def _publish_status(self) -> None:
        t = self.trainer
        if t.done:
            state = TrainerStatus.STATE_IDLE
        elif t.pending is not None:
            state = TrainerStatus.STATE_COLLECTING
        else:
            state = TrainerStatus.STATE_WAITING_FOR_RESET
        self.status_pub.publish(
            TrainerStatus(state=state, message=self.message, stamp=self.get_clock().now().to_msg(), **t.status())
        )

    # ---- incoming ------------------------------------------------------------------------------
    def _verdict(self, what: str, verdict: Verdict) -> None:
        if not verdict.accepted:
            self.get_logger().warn(f"{what} rejected: {verdict.reason}")
        elif "duplicate" in verdict.reason:
            self.get_logger().info(f"{what} ignored: {verdict.reason}")
        self.message = verdict.reason
        if verdict.iteration_row is not None:
            row = verdict.iteration_row
            self.get_logger().info(
                f"iteration {row['iteration']} done: success {row.get('rollout/success_rate', 0):.2f}, "
                f"loss {row.get('loss/policy', float('nan')):.4f}, weights v{self.trainer.weights_version}"
            )
            self._publish_weights()
        if verdict.trial_stored:
            self.get_logger().info(verdict.reason)
            self._publish_status()  # the acknowledgement: only ever after the trial is on disk
            if self.trainer.done:
                self.get_logger().info(
                    f"training finished at iteration {self.trainer.iteration}"
                    + (f" ({self.trainer.stopped_reason})" if self.trainer.stopped_reason else "")
                )

    def _on_reward(self, msg: Reward) -> None:
        if self.reward_mode == "operator" and msg.source != Reward.SOURCE_OPERATOR:
            self.get_logger().info(
                f"reward for {msg.trial_id!r} from {msg.source or 'unknown'} ignored: reward_mode is 'operator'"
            )
            return
        self._verdict(
            f"reward for {msg.trial_id!r} from {msg.source or 'unknown'}",
            self.trainer.on_reward(msg.trial_id, 1.0 if msg.success else 0.0, msg.source),
        )

    def _on_record(self, msg: TrialRecord, robot: str | None) -> None:
        """A TrialRecord names a file any DDS peer could have written: where it came from is checked
        first (a robot of this trainer, the one the trial was issued to) and the trial id (a stray
        record reads nothing), then the path (inside trajectory_dir, a regular file, bounded size),
        the announced digest, a tensors-only load and the trajectory's schema. Any failure aborts
        the trial with the reason; nothing a message names can crash the node. `robot` is the
        robot whose topic the record arrived on; None: a topic of no robot of this trainer."""
        from ript.core.safe_io import CorruptFileError
        from ript.core.trial_store import load_announced_trajectory

        if robot is None:
            self._verdict(
                f"trajectory for {msg.trial_id!r}",
                Verdict(
                    False,
                    f"record on {self.resolve_topic_name('policy/trial_record')} is from no robot of this "
                    f"trainer (robots {', '.join(self.robots)} send theirs on /<robot>/policy/trial_record)",
                ),
            )
            return
        refused = self.trainer.trajectory_wanted(msg.trial_id, robot)
        if refused is not None:
            self._verdict(f"trajectory for {msg.trial_id!r}", refused)
            return
        if not msg.path:
            self._abort(msg.trial_id, f"policy node sent no trajectory: {msg.message}")
            if msg.weights_version != self.trainer.weights_version:
                # the policy node could not load the announced weights: check and rebuild the file,
                # announce it again, and wait before the next trial instead of starting it into the
                # same refusal (a loop of hundreds of aborted trials a minute otherwise)
                self._weights_refusals += 1
                hold_s = min(30.0, 0.5 * 2 ** min(self._weights_refusals, 6))
                self.schedule.hold(robot, hold_s, "its policy node refused the announced weights")
                self.get_logger().error(
                    f"policy node{' of ' + robot if robot else ''} runs weights v{msg.weights_version}, the "
                    f"trial wanted v{self.trainer.weights_version}: re-announcing them, next trial "
                    f"{'there ' if robot else ''}in {hold_s:.1f} s"
                )
                self._publish_weights()
            return
        self._weights_refusals = 0
        try:
            path, trajectory = load_announced_trajectory(
                msg.path, msg.sha256, msg.trial_id, self.trajectory_dir, self.max_trajectory_bytes
            )
        except (OSError, CorruptFileError, ValueError) as exc:
            self._abort(msg.trial_id, f"unreadable trajectory: {exc}")
            return
        verdict = self.trainer.on_trajectory(msg.trial_id, trajectory, robot)
        if not verdict.accepted and msg.trial_id in self.trainer.running:
            self._abort(msg.trial_id, verdict.reason)  # unusable: the group gets another trial now
            return
        self._verdict(f"trajectory for {msg.trial_id!r}", verdict)
        if verdict.trial_stored:
            path.unlink(missing_ok=True)  # the trial store holds its own verified copy

    def _abort(self, trial_id: str, reason: str) -> Verdict:
        verdict = self.trainer.abort(trial_id, reason)
        if verdict.accepted:
            self.aborted_pub.publish(String(data=trial_id))
        self._verdict(f"abort of {trial_id!r}", verdict)
        return verdict

    def _on_start_request(self, request: StartTrial.Request, response: StartTrial.Response):
        if request.context_id:
            response.accepted, response.message = False, "choosing a context is the sampler's job; send it empty"
            return response
        busy = {pending.ticket.robot for pending in self.trainer.running.values()}
        # the operator starts a trial on the robot they reset: a hold only delays automatic starts
        robot = next((robot for robot in self.robots if robot not in busy), None)
        ticket = self.trainer.next_trial(robot) if robot is not None else None
        if ticket is None:
            running = self.trainer.pending
            response.accepted = False
            response.message = (
                "training is done"
                if self.trainer.done
                else f"trial {running.ticket.trial_id} is still running"
                if running
                else "no trial available"
            )
            return response
        self._start(ticket)
        response.accepted, response.trial_id, response.message = True, ticket.trial_id, "started"
        return response

    def _on_abort_request(self, request: AbortTrial.Request, response: AbortTrial.Response):
        verdict = self._abort(request.trial_id, request.reason or "operator")
        response.accepted, response.message = verdict.accepted, verdict.reason
        return response

    def _tick(self) -> None:
        t = self.trainer
        for pending in list(t.running.values()):
            if self.trial_timeout_s and pending.age_s > self.trial_timeout_s:
                robot = pending.ticket.robot
                self._abort(
                    pending.ticket.trial_id,
                    f"no reward and trajectory within {self.trial_timeout_s:g} s" + (f" from {robot}" if robot else ""),
                )
                if self.several_robots:  # it stopped answering: the trial's next try goes to another robot
                    self.schedule.hold(robot, self.trial_timeout_s, "its last trial timed out")
        if not self.auto_start or t.done:
            return
        busy = {pending.ticket.robot for pending in t.running.values()}
        for robot in self.schedule.free_robots(busy, self._ready):
            ticket = t.next_trial(robot)
            if t.weights_version != self.published_version:  # the sampler closed an iteration by itself
                self._publish_weights()
            if ticket is None:
                return  # every trial of the open group is issued, or training is done
            self._start(ticket)

    def _ready(self, robot: str) -> bool:
        """The robot's nodes hear its trial starts (the policy node and its bridge)."""
        publisher = self.start_pubs[robot]
        if publisher.get_subscription_count() >= self.wait_for_subscribers:
            return True
        if not self.trainer.running:
            self.message = f"waiting for {self.wait_for_subscribers} subscribers of {publisher.topic_name}"
        return False


def main(args=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
    spin_node(TrainerNode, args, close=lambda node: node.trainer.close())


if __name__ == "__main__":
    main()
