"""The Franka bridge's safety layer (plain Python, no rclpy): every pose target the bridge sends
goes through `SafetyLayer`, whether it comes from a policy action or from the home routine.

Actions follow the LIBERO convention: 7-D OSC_POSE deltas in [-1, 1] (translation xyz, rotation
as a base-frame axis-angle vector, gripper -1 open / +1 close), scaled by robosuite's OSC_POSE
`output_max` (robosuite/controllers/config/osc_pose.json, which LIBERO loads: 0.05 m and 0.5 rad
for |a| = 1). target = current pose moved by the scaled delta, then bounded:

1. dropped outright (the robot holds its last target): e-stop latched, action for a trial other
   than the active one, wrong length, any NaN/inf, robot state or camera images stale, no pose yet;
2. per step: |target - current| <= max_translation_step_m and max_rotation_step_rad;
3. velocity: |target - previous target| <= max_linear_speed_m_s * dt (and angular), dt the time
   since the previous command (the control period for the first one);
4. workspace: the target position is clamped into the box [workspace_min, workspace_max].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ript.robot.poses import Pose, clip_norm, rotation_between

ACTION_DIM = 7
OSC_MAX_TRANSLATION_M = 0.05
OSC_MAX_ROTATION_RAD = 0.5
"""robosuite OSC_POSE output_max (controllers/config/osc_pose.json): what |a| = 1 means."""


@dataclass
class SafetyConfig:
    workspace_min: tuple[float, float, float] = (0.20, -0.45, 0.01)
    """Lower corner (m, robot base frame) of the box the target position is clamped into."""
    workspace_max: tuple[float, float, float] = (0.80, 0.45, 0.70)
    max_translation_step_m: float = OSC_MAX_TRANSLATION_M
    """Largest distance between the current position and a target (LIBERO's full-scale action)."""
    max_rotation_step_rad: float = OSC_MAX_ROTATION_RAD
    max_linear_speed_m_s: float = 0.25
    """Target speed limit: 1.25 cm per 20 Hz step, about what LIBERO's OSC achieves at |a| = 1."""
    max_angular_speed_rad_s: float = 1.0
    control_period_s: float = 0.05
    """The policy's control period (20 Hz, as LIBERO); dt of the first command's velocity limit."""
    state_timeout_s: float = 0.2
    """Robot state older than this stops commanding (watchdog)."""
    image_timeout_s: float = 0.5
    """A watched camera's newest image older than this stops commanding (watchdog)."""
    watched_cameras: tuple[str, ...] = ()
    home_tolerance_m: float = 0.005
    home_tolerance_rad: float = 0.02

    def __post_init__(self) -> None:
        low, high = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if low.shape != (3,) or high.shape != (3,) or not np.all(low < high):
            raise ValueError(
                f"workspace_min < workspace_max needed per axis, got {self.workspace_min}, {self.workspace_max}"
            )
        positive = {
            name: getattr(self, name)
            for name in (
                "max_translation_step_m",
                "max_rotation_step_rad",
                "max_linear_speed_m_s",
                "max_angular_speed_rad_s",
                "control_period_s",
                "state_timeout_s",
                "image_timeout_s",
                "home_tolerance_m",
                "home_tolerance_rad",
            )
        }
        bad = {k: v for k, v in positive.items() if not (np.isfinite(v) and v > 0)}
        if bad:
            raise ValueError(f"must be finite and > 0: {bad}")


@dataclass(frozen=True)
class Command:
    """What the bridge sends for one action: a bounded target (and gripper), or why nothing."""

    target: Pose | None = None
    gripper_close: bool | None = None
    dropped: str = ""
    """Non-empty: the action was dropped and the robot holds; the reason, for the log."""


class SafetyLayer:
    def __init__(self, config: SafetyConfig) -> None:
        self.config = config
        self.estopped = False
        self.active_trial = ""
        self.last_state_s: float | None = None
        self.last_image_s: dict[str, float] = {}
        self.last_target: Pose | None = None
        self.last_command_s: float | None = None

    # ---- latches and inputs ------------------------------------------------------------------
    def estop(self) -> None:
        """Latch the e-stop: nothing is commanded until release()."""
        self.estopped = True

    def release(self) -> None:
        self.estopped = False
        self.last_target, self.last_command_s = None, None  # restart from where the robot is

    def start_trial(self, trial_id: str) -> None:
        self.active_trial = trial_id

    def end_trial(self, trial_id: str) -> None:
        if trial_id == self.active_trial:
            self.active_trial = ""

    def state_received(self, now: float) -> None:
        self.last_state_s = now

    def image_received(self, camera: str, now: float) -> None:
        self.last_image_s[camera] = now

    def stale_state(self, now: float) -> str:
        """Why the robot state is not fresh ('' when it is)."""
        if self.last_state_s is None:
            return "no robot state yet"
        if now - self.last_state_s > self.config.state_timeout_s:
            return (
                f"robot state is {now - self.last_state_s:.2f} s old (> state_timeout_s {self.config.state_timeout_s})"
            )
        return ""

    def stale(self, now: float) -> str:
        """Why the watchdog holds the robot now ('' when state and watched cameras are fresh)."""
        c = self.config
        stale_state = self.stale_state(now)
        if stale_state:
            return stale_state
        for camera in c.watched_cameras:
            seen = self.last_image_s.get(camera)
            if seen is None:
                return f"no image from camera {camera!r} yet"
            if now - seen > c.image_timeout_s:
                return f"camera {camera!r} is {now - seen:.2f} s old (> image_timeout_s {c.image_timeout_s})"
        return ""

    def blocked(self, now: float, current: Pose | None) -> str:
        """Why no target may be sent at all now ('' when one may)."""
        if self.estopped:
            return "e-stop latched (call robot/release to clear)"
        stale = self.stale(now)
        if stale:
            return f"watchdog: {stale}"
        if current is None:
            return "no robot pose yet"
        if not (np.all(np.isfinite(current.position)) and np.all(np.isfinite(current.quaternion))):
            return "robot pose is not finite"
        return ""

    # ---- commands ----------------------------------------------------------------------------
    def check_action(self, trial_id: str, action, current: Pose | None, now: float) -> Command:
        """A policy action -> a bounded target, or the reason it is dropped."""
        if trial_id != self.active_trial:
            active = self.active_trial or "none"
            return Command(dropped=f"action for trial {trial_id!r}, active trial is {active!r}")
        values = np.asarray(action, dtype=np.float64).ravel()
        if values.shape != (ACTION_DIM,):
            return Command(dropped=f"action has {values.size} values, expected {ACTION_DIM}")
        if not np.all(np.isfinite(values)):
            return Command(dropped=f"non-finite action {values.tolist()}")
        blocked = self.blocked(now, current)
        if blocked:
            return Command(dropped=blocked)
        values = np.clip(values, -1.0, 1.0)  # robosuite clips to input_min/max before scaling
        desired = current.moved(values[:3] * OSC_MAX_TRANSLATION_M, values[3:6] * OSC_MAX_ROTATION_RAD)
        return Command(target=self.bound(current, desired, now), gripper_close=bool(values[6] > 0))

    def home_step(self, current: Pose | None, home: Pose, now: float) -> tuple[Command, bool]:
        """One bounded step of the home routine; (command, reached). Reached sends no target."""
        blocked = self.blocked(now, current)
        if blocked:
            return Command(dropped=blocked), False
        position_error, rotation_error = current.distance_to(home)
        if position_error <= self.config.home_tolerance_m and rotation_error <= self.config.home_tolerance_rad:
            return Command(), True
        return Command(target=self.bound(current, home, now), gripper_close=False), False

    def bound(self, current: Pose, desired: Pose, now: float) -> Pose:
        """desired, limited per step, in speed and to the workspace; remembered as the last target."""
        c = self.config
        target = step_toward(current, desired, c.max_translation_step_m, c.max_rotation_step_rad)
        if self.last_target is not None and self.last_command_s is not None:
            dt = max(now - self.last_command_s, 0.0)
            target = step_toward(self.last_target, target, c.max_linear_speed_m_s * dt, c.max_angular_speed_rad_s * dt)
        else:
            dt = c.control_period_s
            target = step_toward(current, target, c.max_linear_speed_m_s * dt, c.max_angular_speed_rad_s * dt)
        clamped = Pose(np.clip(target.position, c.workspace_min, c.workspace_max), target.quaternion)
        # a robot outside the box is brought back one step at a time, never in one jump
        target = step_toward(current, clamped, c.max_translation_step_m, c.max_rotation_step_rad)
        self.last_target, self.last_command_s = target, now
        return target


def step_toward(start: Pose, goal: Pose, max_m: float, max_rad: float) -> Pose:
    """The pose at most max_m / max_rad from start on the way to goal."""
    translation = clip_norm(goal.position - start.position, max_m)
    rotation = clip_norm(rotation_between(start.quaternion, goal.quaternion), max_rad)
    return start.moved(translation, rotation)
