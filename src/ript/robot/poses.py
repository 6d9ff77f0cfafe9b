"""End-effector poses and the little rotation algebra the bridge needs (numpy only).

Quaternions are xyzw (ROS geometry_msgs and robosuite order). Rotation deltas are axis-angle
vectors applied in the base frame, `R_goal = R(delta) @ R_current`, as robosuite's OSC_POSE
controller does (robosuite/utils/control_utils.py: set_goal_orientation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of xyzw quaternions (rotation b first, then a)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    return np.array([-q[0], -q[1], -q[2], q[3]])


def rotate(q: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """The vector rotated by the quaternion q."""
    return quat_multiply(quat_multiply(q, np.append(vector, 0.0)), quat_conjugate(q))[:3]


def axis_angle_to_quat(rotvec: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    axis = np.asarray(rotvec, dtype=np.float64) / angle
    return np.concatenate([axis * np.sin(angle / 2), [np.cos(angle / 2)]])


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """Axis-angle of a unit quaternion, the same formula as robosuite's quat2axisangle (so a real
    robot's RobotState.ee_ori matches what LIBERO-trained policies saw; angle in [0, 2*pi))."""
    w = float(np.clip(q[3], -1.0, 1.0))
    den = np.sqrt(1.0 - w * w)
    if np.isclose(den, 0.0):
        return np.zeros(3)
    return np.asarray(q[:3], dtype=np.float64) * 2.0 * np.arccos(w) / den


def rotation_between(q_from: np.ndarray, q_to: np.ndarray) -> np.ndarray:
    """The shortest base-frame rotation vector d with R(d) @ R(q_from) = R(q_to)."""
    error = quat_multiply(q_to, quat_conjugate(q_from))
    if error[3] < 0:  # q and -q are the same rotation: take the short way round
        error = -error
    return quat_to_axis_angle(error)


def clip_norm(vector: np.ndarray, max_norm: float) -> np.ndarray:
    """The vector scaled down (direction kept) so its norm is at most max_norm."""
    norm = float(np.linalg.norm(vector))
    return vector * (max_norm / norm) if norm > max_norm else vector


@dataclass(frozen=True)
class Pose:
    """An end-effector pose in the robot's base frame: position (m) and unit quaternion xyzw."""

    position: np.ndarray
    quaternion: np.ndarray

    @staticmethod
    def of(position, quaternion) -> Pose:
        q = np.asarray(quaternion, dtype=np.float64)
        norm = float(np.linalg.norm(q))
        if not np.isfinite(norm) or norm < 1e-9:
            raise ValueError(f"not a rotation: quaternion {list(quaternion)}")
        return Pose(np.asarray(position, dtype=np.float64).copy(), q / norm)

    def moved(self, translation: np.ndarray, rotvec: np.ndarray) -> Pose:
        """This pose moved by a base-frame translation and a base-frame rotation (OSC_POSE delta)."""
        quaternion = quat_multiply(axis_angle_to_quat(rotvec), self.quaternion)
        return Pose(self.position + translation, quaternion / np.linalg.norm(quaternion))

    def distance_to(self, other: Pose) -> tuple[float, float]:
        """(translation m, rotation rad) from this pose to another."""
        return (
            float(np.linalg.norm(other.position - self.position)),
            float(np.linalg.norm(rotation_between(self.quaternion, other.quaternion))),
        )
