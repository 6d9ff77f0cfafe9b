"""A Franka played by LIBERO's simulated Panda, seen through franka_ros2's interface (plain
Python; the ROS node is franka_emulator.py): the end-effector pose in the robot base frame, arm
and finger joint positions as a real FR3 reports them, and a pose target that it follows the way
a Cartesian impedance controller does, by turning it into LIBERO's OSC_POSE delta action each step.

The bridge scales an action a into target = current + 0.05 m * a (rotation 0.5 rad * a); the
emulator's osc_action inverts that scaling, so an unclipped action reaches LIBERO unchanged.
"""

from __future__ import annotations

import numpy as np

from ript.robot.poses import Pose, quat_conjugate, quat_multiply, rotate, rotation_between
from ript.robot.safety import OSC_MAX_ROTATION_RAD, OSC_MAX_TRANSLATION_M
from ript.sim.env import LiberoEnv


def osc_action(current: Pose, target: Pose | None, close_gripper: bool, base_quaternion: np.ndarray) -> np.ndarray:
    """The LIBERO action [7] that moves `current` toward `target` (both in the base frame; None: hold)."""
    action = np.zeros(7)
    if target is not None:
        # OSC_POSE deltas are in the world frame: rotate the base-frame errors into it
        translation = rotate(base_quaternion, target.position - current.position)
        rotation = rotate(base_quaternion, rotation_between(current.quaternion, target.quaternion))
        action[:3] = translation / OSC_MAX_TRANSLATION_M
        action[3:6] = rotation / OSC_MAX_ROTATION_RAD
    action[6] = 1.0 if close_gripper else -1.0
    return np.clip(action, -1.0, 1.0)


class EmulatedFranka:
    """One LiberoEnv seen as a Franka. `obs` is the newest LIBERO observation."""

    def __init__(self, env: LiberoEnv) -> None:
        self.env = env
        self.obs: dict = {}
        sim = env.robosuite_env.sim
        root = sim.model.body_name2id(env.robosuite_env.robots[0].robot_model.root_body)
        self.base_position = np.array(sim.data.body_xpos[root], dtype=np.float64)
        self.base_quaternion = np.asarray(sim.data.body_xquat[root], dtype=np.float64)[[1, 2, 3, 0]]  # wxyz -> xyzw

    def reset(self, init_state: np.ndarray) -> dict:
        self.obs = self.env.reset(init_state=init_state)
        return self.obs

    def step(self, target: Pose | None, close_gripper: bool) -> tuple[dict, bool, dict]:
        """One LIBERO step toward target; (obs, done, info) as LiberoEnv.step."""
        action = osc_action(self.pose(), target, close_gripper, self.base_quaternion)
        self.obs, _, done, info = self.env.step(action)
        return self.obs, done, info

    def pose(self) -> Pose:
        """End-effector pose in the robot base frame (franka_ros2 reports it in <arm_id>_link0)."""
        raw = self.env.raw_obs
        inverse = quat_conjugate(self.base_quaternion)
        position = rotate(inverse, np.asarray(raw["robot0_eef_pos"], dtype=np.float64) - self.base_position)
        return Pose.of(position, quat_multiply(inverse, np.asarray(raw["robot0_eef_quat"], dtype=np.float64)))

    def finger_positions(self) -> list[float]:
        """Both finger joints as a real Franka reports them (each 0 closed .. 0.04 m open); LIBERO
        mirrors the second one."""
        first, second = self.env.raw_obs["robot0_gripper_qpos"]
        return [float(first), float(-second)]

    def arm_joints(self) -> list[float]:
        return [float(q) for q in self.env.raw_obs["robot0_joint_pos"]]
