"""LIBERO bridge node: the simulator plays the robot, its cameras and the success classifier on
the same topics a real robot uses.

    TrialStart (/ript/trial_start)  -> reset to the context's init state, publish step 0
    ActionCommand (/action)         -> one env step, publish the next RobotState (+ images)
    success or step budget          -> Reward(trial_id, success, source=simulator) on /reward

Lock-step: the sim advances only when the action for its current step arrives, so the policy's
speed sets the pace and no step is skipped. If nothing arrives for `republish_s`, the current
observation goes out again with a fresh stamp (sensor topics are best effort: a lost frame must
not stall the trial).

    ript_libero_bridge --ros-args -p contexts_file:=runs/contexts/libero_spatial_seed0.npz
"""

from __future__ import annotations

import time

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ript_interfaces.msg import ActionCommand, Reward, RobotState, TrialStart
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ript.policies import libero_data as keys
from ript.ros.ros_contexts import context_id
from ript.ros.ros_main import spin_node
from ript.ros.trial_start import TrialStartListener
from ript.sim.contexts import load_contexts
from ript.sim.env import LiberoEnv, LiberoEnvConfig

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


class LiberoBridge(Node):
    def __init__(self) -> None:
        super().__init__("libero_bridge")
        # dynamic typing: `-p x:=30` must not be refused for a float default (YAML reads it as int)
        p = lambda name, default: self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
        contexts_file = p("contexts_file", "").value
        self.render = bool(p("render", False).value)
        self.image_size = int(p("image_size", 128).value)
        self.max_steps = int(p("max_steps", 0).value)
        self.republish_s = float(p("republish_s", 0.5).value)
        self.publish_reward = bool(p("publish_reward", True).value)
        """False when an operator or a classifier judges success instead of the simulator."""
        if not contexts_file:
            raise SystemExit("libero_bridge: set 'contexts_file' (write one with `ript contexts --out FILE`)")
        self.contexts = {context_id(c): c for c in load_contexts(contexts_file)}
        self.envs: dict[tuple[str, int], LiberoEnv] = {}
        self.trial_id = ""
        self.step = 0
        self.obs: dict | None = None
        self.last_publish = 0.0

        self.state_pub = self.create_publisher(RobotState, "robot/state", qos_profile_sensor_data)
        self.image_pubs = (
            {
                camera: self.create_publisher(Image, f"camera/{camera}/image_raw", qos_profile_sensor_data)
                for camera in ("agentview", "wrist")
            }
            if self.render
            else {}
        )
        self.reward_pub = self.create_publisher(Reward, "reward", RELIABLE)
        TrialStartListener(self, self._on_trial_start)  # latched: a restart mid-trial aborts it at once
        self.create_subscription(ActionCommand, "action", self._on_action, RELIABLE)
        self.create_subscription(String, "ript/trial_aborted", self._on_aborted, RELIABLE)
        self.create_subscription(Reward, "reward", self._on_reward, RELIABLE)
        self.create_timer(self.republish_s, self._republish)
        self.get_logger().info(
            f"LIBERO bridge ready: {len(self.contexts)} contexts, {'rendering' if self.render else 'state only'}"
        )

    def _env(self, suite: str, task_id: int) -> LiberoEnv:
        key = (suite, task_id)
        if key not in self.envs:  # one env per task, kept: creating one costs seconds, a reset 0.1 s
            self.envs[key] = LiberoEnv(
                LiberoEnvConfig(
                    suite=suite,
                    task_id=task_id,
                    render=self.render,
                    image_size=self.image_size,
                    max_steps=self.max_steps or None,
                )
            )
        return self.envs[key]

    def _on_trial_start(self, msg: TrialStart) -> None:
        context = self.contexts.get(msg.context_id)
        if context is None:
            self.get_logger().error(f"trial {msg.trial_id}: unknown context {msg.context_id!r}; not started")
            self.trial_id = ""
            return
        self.env = self._env(context.suite, context.task_id)
        self.obs = self.env.reset(init_state=context.init_state)
        self.trial_id, self.step = msg.trial_id, 0
        self._publish_observation()

    def _on_action(self, msg: ActionCommand) -> None:
        if msg.trial_id != self.trial_id or msg.step != self.step or not self.trial_id:
            return  # another trial's, or a repeat of a step already taken
        action = np.clip(np.asarray(msg.action, dtype=np.float64), -1.0, 1.0)
        self.obs, _, done, info = self.env.step(action)
        self.step += 1
        if done:
            trial_id, self.trial_id = self.trial_id, ""
            success = bool(info["success"])
            if self.publish_reward:
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
            return
        self._publish_observation()

    def _on_aborted(self, msg: String) -> None:
        if msg.data == self.trial_id:
            self.trial_id = ""

    def _on_reward(self, msg: Reward) -> None:
        if msg.trial_id == self.trial_id and msg.source != Reward.SOURCE_SIMULATOR:
            self.trial_id = ""  # judged by an operator or a classifier: the episode ends here

    def _republish(self) -> None:
        if self.trial_id and time.monotonic() - self.last_publish > self.republish_s:
            self._publish_observation()

    def _publish_observation(self) -> None:
        obs, stamp = self.obs, self.get_clock().now().to_msg()
        self.state_pub.publish(
            RobotState(
                trial_id=self.trial_id,
                step=self.step,
                ee_pos=obs[keys.EE_POS],
                ee_ori=obs[keys.EE_ORI],
                gripper_states=obs[keys.GRIPPER_STATES],
                joint_states=obs[keys.JOINT_STATES].tolist(),
                object_state=obs[keys.OBJECT_STATE].tolist(),
                stamp=stamp,
            )
        )
        for camera, key in (("agentview", keys.AGENTVIEW), ("wrist", keys.WRIST)):
            if camera in self.image_pubs:
                pixels = keys.upright(obs[key])  # robosuite renders upside down; topics carry upright images
                image = Image(height=pixels.shape[0], width=pixels.shape[1], encoding="rgb8", step=pixels.shape[1] * 3)
                image.header.stamp, image.header.frame_id = stamp, camera
                image.data = pixels.tobytes()  # bytes, not the array (~1000x faster)
                self.image_pubs[camera].publish(image)
        self.last_publish = time.monotonic()

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
        self.envs.clear()


def main(args=None) -> None:
    spin_node(LiberoBridge, args, close=lambda node: node.close())


if __name__ == "__main__":
    main()
