"""Franka command bridge: the policy's ActionCommand in, a bounded end-effector pose target out to
franka_ros2; the robot's pose and joints back in as RobotState for the policy node.

    /action (ActionCommand)  -> SafetyLayer -> target_pose_topic (PoseStamped, frame_id)  [not in dry_run]
                                             -> ~/dry_run_target (PoseStamped)             [always]
                                             -> gripper: franka_msgs Move/Grasp actions, or a Float64 width topic
    current_pose_topic (PoseStamped) + joint_states_topic (JointState) -> robot/state (RobotState)
    srv robot/estop, robot/release, robot/home (std_srvs/Trigger)

franka_ros2 itself (the robot driver and a Cartesian impedance controller that follows a
PoseStamped target) is not started by ript: start it first for the robot at `robot_ip`. The bridge
starts in **dry run** (targets computed, logged and published on ~/dry_run_target only); set
dry_run:=false once the targets look right. Every limit is a parameter; see safety.py and
docs/ros.md. The software e-stop stops commanding at once; it does not replace the robot's
hardware emergency stop.

    franka_bridge --ros-args -p robot_ip:=172.16.0.2 -p dry_run:=false
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import asdict

import numpy as np
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ript_interfaces.msg import ActionCommand, Reward, RobotState, TrialStart
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from ript.robot.poses import Pose, quat_to_axis_angle
from ript.robot.safety import SafetyConfig, SafetyLayer
from ript.ros.ros_main import spin_node
from ript.ros.trial_start import TrialStartListener

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
GRIPPER_INTERFACES = ("auto", "franka_action", "topic")
# franka_ros2's topics (defaults of the *_topic parameters; the emulator serves the same ones)
TARGET_POSE_TOPIC = "/cartesian_impedance_controller/target_pose"
CURRENT_POSE_TOPIC = "/franka_robot_state_broadcaster/current_pose"
JOINT_STATES_TOPIC = "/joint_states"
GRIPPER_WIDTH_TOPIC = "/fr3_gripper/width_command"


class GripperTopic:
    """Fallback gripper interface: the target finger width (m) as std_msgs/Float64."""

    def __init__(self, node: Node, topic: str, open_width: float) -> None:
        self.publisher = node.create_publisher(Float64, topic, RELIABLE)
        self.open_width = open_width
        self.description = f"std_msgs/Float64 width on {self.publisher.topic_name}"

    def command(self, close: bool) -> None:
        self.publisher.publish(Float64(data=0.0 if close else self.open_width))


class FrankaGripperActions:
    """franka_ros2's gripper: Move (open to a width) and Grasp (close with a force) actions."""

    def __init__(self, node: Node, namespace: str, open_width: float, speed: float, force: float) -> None:
        from franka_msgs.action import Grasp, Move
        from rclpy.action import ActionClient

        self.Grasp, self.Move, self.node = Grasp, Move, node
        self.move = ActionClient(node, Move, f"{namespace}/move")
        self.grasp = ActionClient(node, Grasp, f"{namespace}/grasp")
        self.open_width, self.speed, self.force = open_width, speed, force
        self.description = f"franka_msgs actions {namespace}/move and {namespace}/grasp"

    def command(self, close: bool) -> None:
        client = self.grasp if close else self.move
        if not client.server_is_ready():
            self.node.get_logger().error(f"gripper action server {client._action_name} is not available")
            return
        if close:
            goal = self.Grasp.Goal(width=0.0, speed=self.speed, force=self.force)
            goal.epsilon.inner = goal.epsilon.outer = self.open_width  # any object width counts as grasped
        else:
            goal = self.Move.Goal(width=self.open_width, speed=self.speed)
        client.send_goal_async(goal)


def pose_message(pose: Pose, frame_id: str, stamp) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    p, o = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in pose.position)
    o.x, o.y, o.z, o.w = (float(v) for v in pose.quaternion)
    return msg


def pose_of(msg: PoseStamped) -> Pose:
    """The Pose in a PoseStamped; ValueError for a quaternion that is no rotation."""
    p, q = msg.pose.position, msg.pose.orientation
    return Pose.of([p.x, p.y, p.z], [q.x, q.y, q.z, q.w])


def franka_msgs_available() -> bool:
    return importlib.util.find_spec("franka_msgs") is not None


class FrankaBridge(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("franka_bridge", **node_options)
        # dynamic typing: `-p x:=30` must not be refused for a float default (YAML reads it as int)
        p = lambda name, default: self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True)).value
        floats = lambda name, default: tuple(float(v) for v in p(name, default))
        self.robot_ip = str(p("robot_ip", ""))
        self.dry_run = bool(p("dry_run", True))
        self.frame_id = str(p("frame_id", "fr3_link0"))
        arm_id = str(p("arm_id", "fr3"))
        self.arm_joints = [f"{arm_id}_joint{i}" for i in range(1, 8)]
        self.finger_joints = [f"{arm_id}_finger_joint1", f"{arm_id}_finger_joint2"]
        cameras = tuple(c for c in str(p("watch_cameras", "agentview,wrist")).split(",") if c)
        try:
            # every SafetyConfig field is a parameter of the same name and default (safety.py documents them)
            limits = {
                name: tuple(float(v) for v in p(name, list(default)))
                if isinstance(default, tuple)
                else float(p(name, default))
                for name, default in asdict(SafetyConfig()).items()
                if name != "watched_cameras"
            }
            self.safety = SafetyLayer(SafetyConfig(**limits, watched_cameras=cameras))
            self.home = Pose.of(
                floats("home_position", [0.307, 0.0, 0.487]),  # the FR3's "ready" pose
                floats("home_orientation", [1.0, 0.0, 0.0, 0.0]),
            )
        except ValueError as exc:  # a bad limit or home pose: say which, without a traceback
            raise SystemExit(f"franka_bridge: {exc}") from exc
        self.home_max_steps = int(p("home_max_steps", 400))
        state_rate_hz = float(p("state_rate_hz", 30.0))
        gripper_interface = str(p("gripper_interface", "auto"))
        open_width = float(p("gripper_open_width", 0.08))
        if gripper_interface not in GRIPPER_INTERFACES:
            raise SystemExit(
                f"franka_bridge: gripper_interface must be one of {GRIPPER_INTERFACES}, got {gripper_interface!r}"
            )
        if gripper_interface == "franka_action" or (gripper_interface == "auto" and franka_msgs_available()):
            self.gripper = FrankaGripperActions(
                self,
                str(p("gripper_action_ns", "/fr3_gripper")),
                open_width,
                float(p("gripper_speed", 0.1)),
                float(p("gripper_force", 20.0)),
            )
        else:
            self.gripper = GripperTopic(self, str(p("gripper_topic", GRIPPER_WIDTH_TOPIC)), open_width)

        self.pose: Pose | None = None
        self.pose_stamp = None
        self.joint_positions: dict[str, float] = {}
        self.received_s = {"pose": None, "joints": None}
        self.step = 0
        self.gripper_closed: bool | None = None
        self.homing_steps: int | None = None
        self.hold_kind = ""
        self.drop_logged_s: dict[str, float] = {}

        self.target_pub = self.create_publisher(PoseStamped, str(p("target_pose_topic", TARGET_POSE_TOPIC)), RELIABLE)
        self.dry_run_pub = self.create_publisher(PoseStamped, "~/dry_run_target", RELIABLE)
        self.state_pub = self.create_publisher(RobotState, "robot/state", qos_profile_sensor_data)
        self.create_subscription(
            PoseStamped, str(p("current_pose_topic", CURRENT_POSE_TOPIC)), self._on_pose, qos_profile_sensor_data
        )
        self.create_subscription(
            JointState, str(p("joint_states_topic", JOINT_STATES_TOPIC)), self._on_joints, qos_profile_sensor_data
        )
        for camera in cameras:  # raw: only the arrival time matters, so skip deserializing the pixels
            self.create_subscription(
                Image,
                f"camera/{camera}/image_raw",
                lambda _, c=camera: self.safety.image_received(c, time.monotonic()),
                qos_profile_sensor_data,
                raw=True,
            )
        self.create_subscription(ActionCommand, "action", self._on_action, RELIABLE)
        TrialStartListener(self, self._on_trial_start)  # latched: a restart mid-trial aborts it at once
        self.create_subscription(String, "ript/trial_aborted", lambda m: self.safety.end_trial(m.data), RELIABLE)
        self.create_subscription(Reward, "reward", lambda m: self.safety.end_trial(m.trial_id), RELIABLE)
        self.create_service(Trigger, "robot/estop", self._on_estop)
        self.create_service(Trigger, "robot/release", self._on_release)
        self.create_service(Trigger, "robot/home", self._on_home)
        self.create_timer(self.safety.config.control_period_s, self._control_tick)
        self.create_timer(1.0 / state_rate_hz, self._publish_state)
        output = (
            f"DRY RUN: targets only on {self.dry_run_pub.topic_name}"
            if self.dry_run
            else f"commanding {self.target_pub.topic_name}"
        )
        self.get_logger().info(
            f"franka bridge for robot {self.robot_ip or '(robot_ip not set)'} (franka_ros2 runs separately): "
            f"{output}; gripper via {self.gripper.description}; "
            f"watchdog on state{' and cameras ' + ','.join(cameras) if cameras else ''}"
        )

    # ---- robot state in -------------------------------------------------------------------------
    def _on_pose(self, msg: PoseStamped) -> None:
        try:
            self.pose = pose_of(msg)
        except ValueError as exc:
            self.get_logger().error(f"ignored robot pose: {exc}", throttle_duration_sec=1.0)
            return
        self.pose_stamp = msg.header.stamp
        self._received("pose")

    def _on_joints(self, msg: JointState) -> None:
        # merged by name: arm and gripper joints may come in separate messages (franka's two drivers)
        self.joint_positions.update(zip(msg.name, (float(q) for q in msg.position)))
        self._received("joints")

    def _received(self, what: str) -> None:
        self.received_s[what] = time.monotonic()
        if None not in self.received_s.values():  # fresh only when both pose and joints are
            self.safety.state_received(min(self.received_s.values()))

    def _joint_positions(self, names: list[str]) -> list[float] | None:
        positions = self.joint_positions
        return [positions[n] for n in names] if all(n in positions for n in names) else None

    def _publish_state(self) -> None:
        if self.pose is None or self.safety.stale_state(time.monotonic()):
            return  # the policy node sees no new state and stops acting on its own (stale_after_s)
        fingers = self._joint_positions(self.finger_joints)
        arm = self._joint_positions(self.arm_joints)
        if fingers is None or arm is None:
            self.get_logger().warning(
                f"joint states lack {self.arm_joints + self.finger_joints}", throttle_duration_sec=5.0
            )
            return
        measured = self.pose_stamp.sec or self.pose_stamp.nanosec
        stamp = self.pose_stamp if measured else self.get_clock().now().to_msg()
        self.state_pub.publish(
            RobotState(
                trial_id=self.safety.active_trial,
                step=self.step,
                ee_pos=self.pose.position,
                ee_ori=quat_to_axis_angle(self.pose.quaternion),
                gripper_states=[fingers[0], -fingers[1]],  # LIBERO's sign convention: the second finger mirrored
                joint_states=arm,
                stamp=stamp,
            )
        )

    # ---- commands ---------------------------------------------------------------------------------
    def _on_trial_start(self, msg: TrialStart) -> None:
        self.safety.start_trial(msg.trial_id)
        self.step = 0

    def _on_action(self, msg: ActionCommand) -> None:
        if self.homing_steps is not None:
            self._log_drop("homing")
            return
        command = self.safety.check_action(msg.trial_id, msg.action, self.pose, time.monotonic())
        if command.dropped:
            self._log_drop(command.dropped)
            return
        self._send(command.target, command.gripper_close)
        self.step += 1

    def _log_drop(self, reason: str) -> None:
        """Each kind of drop (the text before a ':') at most once a second: actions come at 20 Hz."""
        kind, now = reason.split(":")[0], time.monotonic()
        if now - self.drop_logged_s.get(kind, -1.0) >= 1.0:
            self.drop_logged_s[kind] = now
            self.get_logger().warning(f"action dropped, holding: {reason}")

    def _send(self, target: Pose, gripper_close: bool | None) -> None:
        msg = pose_message(target, self.frame_id, self.get_clock().now().to_msg())
        self.dry_run_pub.publish(msg)
        if not self.dry_run:
            self.target_pub.publish(msg)
        if gripper_close is not None and gripper_close != self.gripper_closed:
            self.gripper_closed = gripper_close
            if self.dry_run:
                self.get_logger().info(f"dry run: gripper would {'close' if gripper_close else 'open'}")
            else:
                self.gripper.command(gripper_close)

    def _control_tick(self) -> None:
        now = time.monotonic()
        hold = self.safety.blocked(now, self.pose) if not self.safety.estopped else ""
        kind = hold.split(" is ")[0]  # "watchdog: robot state is 0.21 s old": the age changes every tick
        if kind != self.hold_kind:  # log watchdog transitions once, not every tick
            if hold:
                self.get_logger().warning(f"holding: {hold}")
            elif self.hold_kind:
                self.get_logger().info("inputs fresh again: commanding resumes")
            self.hold_kind = kind
        if self.homing_steps is None:
            return
        command, reached = self.safety.home_step(self.pose, self.home, now)
        if reached:
            self.get_logger().info(f"home reached in {self.homing_steps} steps")
            self.homing_steps = None
        elif command.dropped:
            self.get_logger().error(f"homing stopped: {command.dropped}")
            self.homing_steps = None
        elif self.homing_steps >= self.home_max_steps:
            self.get_logger().error(f"homing gave up: home not reached in {self.home_max_steps} steps")
            self.homing_steps = None
        else:
            self._send(command.target, command.gripper_close)
            self.homing_steps += 1

    # ---- services -----------------------------------------------------------------------------------
    def _on_estop(self, request, response):
        self.safety.estop()
        self.homing_steps = None
        self.get_logger().error("E-STOP latched: no command is sent until robot/release")
        response.success, response.message = True, "e-stop latched: commanding stopped (robot/release clears it)"
        return response

    def _on_release(self, request, response):
        was = self.safety.estopped
        self.safety.release()
        self.gripper_closed = None
        if was:
            self.get_logger().warning("e-stop released")
        response.success, response.message = True, "e-stop released" if was else "e-stop was not latched"
        return response

    def _on_home(self, request, response):
        blocked = self.safety.blocked(time.monotonic(), self.pose)
        if blocked:
            response.success, response.message = False, f"cannot home: {blocked}"
        else:
            self.homing_steps = 0
            response.success = True
            response.message = (
                f"homing to {np.round(self.home.position, 3).tolist()} in steps of at most "
                f"{self.safety.config.max_translation_step_m} m (gripper opens)"
            )
        self.get_logger().info(response.message)
        return response


def main(args=None) -> None:
    spin_node(FrankaBridge, args)


if __name__ == "__main__":
    main()
