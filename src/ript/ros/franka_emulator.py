"""Franka emulator node: LIBERO plays the robot behind franka_ros2's topics, so the franka graph
(franka_bridge and its safety layer included) runs unchanged against the simulator
(`ript up franka --set use_sim=true`).

    target_pose_topic (PoseStamped)   -> followed every step (LIBERO OSC_POSE delta toward it)
    gripper_topic (Float64 width, m)  -> close below half the open width, else open
    current_pose_topic (PoseStamped), joint_states_topic (JointState), camera/{agentview,wrist}/image_raw <- each step
    TrialStart                        -> reset to the context's init state (the operator's scene reset)
    success or step budget            -> Reward(trial_id, success, source=simulator) on /reward

Unlike the lock-step LIBERO bridge, it runs in real time like a robot: one LIBERO step per
1/rate_hz (or slower, as fast as rendering allows), holding the last target between commands.

    ript_franka_emulator --ros-args -p contexts_file:=runs/contexts/libero_spatial_seed0.npz
"""

from __future__ import annotations

from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ript_interfaces.msg import Reward, TrialStart
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String

from ript.policies import libero_data as keys
from ript.robot.poses import Pose
from ript.ros.camera_node import rgb8_image
from ript.ros.franka_bridge import (
    CURRENT_POSE_TOPIC,
    GRIPPER_WIDTH_TOPIC,
    JOINT_STATES_TOPIC,
    TARGET_POSE_TOPIC,
    pose_message,
    pose_of,
)
from ript.ros.ros_contexts import context_id
from ript.ros.ros_main import spin_node
from ript.ros.trial_start import TrialStartListener
from ript.sim.contexts import load_contexts
from ript.sim.emulated_franka import EmulatedFranka
from ript.sim.env import LiberoEnv, LiberoEnvConfig

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
CAMERAS = (("agentview", keys.AGENTVIEW), ("wrist", keys.WRIST))


class FrankaEmulator(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("franka_emulator", **node_options)
        p = lambda name, default: self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True)).value
        contexts_file = str(p("contexts_file", ""))
        self.render = bool(p("render", True))
        self.image_size = int(p("image_size", 128))
        self.max_steps = int(p("max_steps", 0))
        self.publish_reward = bool(p("publish_reward", True))
        self.frame_id = str(p("frame_id", "fr3_link0"))
        arm_id = str(p("arm_id", "fr3"))
        self.joint_names = [f"{arm_id}_joint{i}" for i in range(1, 8)] + [f"{arm_id}_finger_joint{i}" for i in (1, 2)]
        self.open_width = float(p("gripper_open_width", 0.08))
        rate_hz = float(p("rate_hz", 20.0))
        if not contexts_file:
            raise SystemExit("franka_emulator: set 'contexts_file' (write one with `ript contexts --out FILE`)")
        self.contexts = {context_id(c): c for c in load_contexts(contexts_file)}
        self.robots: dict[tuple[str, int], EmulatedFranka] = {}
        self.trial_id = ""
        self.target: Pose | None = None
        self.close_gripper = False

        self.pose_pub = self.create_publisher(
            PoseStamped, str(p("current_pose_topic", CURRENT_POSE_TOPIC)), qos_profile_sensor_data
        )
        self.joints_pub = self.create_publisher(
            JointState, str(p("joint_states_topic", JOINT_STATES_TOPIC)), qos_profile_sensor_data
        )
        self.image_pubs = (
            {
                camera: self.create_publisher(Image, f"camera/{camera}/image_raw", qos_profile_sensor_data)
                for camera, _ in CAMERAS
            }
            if self.render
            else {}
        )
        self.reward_pub = self.create_publisher(Reward, "reward", RELIABLE)
        self.create_subscription(PoseStamped, str(p("target_pose_topic", TARGET_POSE_TOPIC)), self._on_target, RELIABLE)
        self.create_subscription(
            Float64,
            str(p("gripper_topic", GRIPPER_WIDTH_TOPIC)),
            lambda m: setattr(self, "close_gripper", m.data < self.open_width / 2),
            RELIABLE,
        )
        TrialStartListener(self, self._on_trial_start)  # latched: a restart mid-trial aborts it at once
        self.create_subscription(String, "ript/trial_aborted", self._on_aborted, RELIABLE)
        first = next(iter(self.contexts.values()))  # the robot stands in the first context's scene until a trial starts
        self.robot = self._robot(first.suite, first.task_id)
        self.robot.reset(first.init_state)
        self.create_timer(1.0 / rate_hz, self._step)
        self.get_logger().info(
            f"Franka emulator on LIBERO: {len(self.contexts)} contexts, "
            f"{'rendering' if self.render else 'no cameras'}, {rate_hz:g} Hz"
        )

    def _robot(self, suite: str, task_id: int) -> EmulatedFranka:
        key = (suite, task_id)
        if key not in self.robots:  # one env per task, kept: creating one costs seconds, a reset 0.1 s
            self.robots[key] = EmulatedFranka(
                LiberoEnv(
                    LiberoEnvConfig(
                        suite=suite,
                        task_id=task_id,
                        render=self.render,
                        image_size=self.image_size,
                        max_steps=self.max_steps or None,
                    )
                )
            )
        return self.robots[key]

    def _on_target(self, msg: PoseStamped) -> None:
        try:
            self.target = pose_of(msg)
        except ValueError as exc:
            self.get_logger().error(f"ignored target: {exc}")

    def _on_trial_start(self, msg: TrialStart) -> None:
        context = self.contexts.get(msg.context_id)
        if context is None:
            self.get_logger().error(f"trial {msg.trial_id}: unknown context {msg.context_id!r}; scene not reset")
            return
        self.robot = self._robot(context.suite, context.task_id)
        self.robot.reset(context.init_state)
        self.trial_id, self.target, self.close_gripper = msg.trial_id, None, False  # reset: hold where it stands
        self.get_logger().info(f"trial {msg.trial_id}: scene reset to {msg.context_id}")

    def _on_aborted(self, msg: String) -> None:
        if msg.data == self.trial_id:
            self.trial_id = ""

    def _step(self) -> None:
        obs, done, info = self.robot.step(self.target, self.close_gripper)
        if self.trial_id and done:
            trial_id, self.trial_id = self.trial_id, ""
            if self.publish_reward:
                success = bool(info["success"])
                self.reward_pub.publish(
                    Reward(
                        trial_id=trial_id,
                        success=success,
                        reward=float(success),
                        source=Reward.SOURCE_SIMULATOR,
                        confidence=1.0,
                        stamp=self.get_clock().now().to_msg(),
                    )
                )
        stamp = self.get_clock().now().to_msg()
        self.pose_pub.publish(pose_message(self.robot.pose(), self.frame_id, stamp))
        joints = JointState(name=self.joint_names, position=self.robot.arm_joints() + self.robot.finger_positions())
        joints.header.stamp = stamp
        self.joints_pub.publish(joints)
        for camera, key in CAMERAS:
            if camera in self.image_pubs:
                # robosuite renders upside down; topics carry upright images
                image = rgb8_image(keys.upright(obs[key]), stamp, f"{camera}_color_optical_frame")
                self.image_pubs[camera].publish(image)

    def close(self) -> None:
        for robot in self.robots.values():
            robot.env.close()
        self.robots.clear()


def main(args=None) -> None:
    spin_node(FrankaEmulator, args, close=lambda node: node.close())


if __name__ == "__main__":
    main()
