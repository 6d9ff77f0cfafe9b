"""The Franka bridge's safety layer and pose algebra, without ROS: LIBERO's action scaling, the
workspace clamp, per-step and velocity limits, dropped actions (NaN/inf, wrong trial, e-stop,
stale inputs) and the home routine's bounded convergence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ript.robot.poses import Pose, quat_to_axis_angle, rotation_between
from ript.robot.safety import SafetyConfig, SafetyLayer

DOWN = [1.0, 0.0, 0.0, 0.0]  # gripper pointing down (xyzw)
TRIAL = "it0001-g000-c000-k0-abc"
FAST = dict(max_linear_speed_m_s=100.0, max_angular_speed_rad_s=100.0)
"""Speed limits out of the way, to test the per-step limits alone."""


def layer(now: float = 0.0, **config) -> SafetyLayer:
    safety = SafetyLayer(SafetyConfig(**config))
    safety.start_trial(TRIAL)
    safety.state_received(now)
    return safety


def action(*values) -> list[float]:
    return [*values, *[0.0] * (7 - len(values))]


def test_pose_algebra_matches_robosuite():
    from robosuite.utils.transform_utils import quat2axisangle

    rng = np.random.default_rng(0)
    for q in rng.normal(size=(50, 4)):
        q /= np.linalg.norm(q)
        np.testing.assert_allclose(quat_to_axis_angle(q), quat2axisangle(q), atol=1e-9)
    start = Pose.of([0.4, 0.0, 0.3], DOWN)
    for rotvec in rng.normal(scale=0.6, size=(20, 3)):
        moved = start.moved(np.zeros(3), rotvec)
        np.testing.assert_allclose(rotation_between(start.quaternion, moved.quaternion), rotvec, atol=1e-9)
    with pytest.raises(ValueError, match="not a rotation"):
        Pose.of([0, 0, 0], [0, 0, 0, 0])


def test_small_action_is_libero_scaled_delta():
    safety = layer()
    current = Pose.of([0.5, 0.0, 0.3], DOWN)
    command = safety.check_action(TRIAL, action(0.1, -0.2, 0.0, 0.0, 0.0, 0.1, 1.0), current, now=0.05)
    assert command.dropped == "" and command.gripper_close is True
    np.testing.assert_allclose(command.target.position, [0.505, -0.01, 0.3], atol=1e-9)  # 0.05 m * a
    np.testing.assert_allclose(
        rotation_between(current.quaternion, command.target.quaternion), [0, 0, 0.05], atol=1e-9
    )  # 0.5 rad * a, about the base z axis
    assert safety.check_action(TRIAL, action(0, 0, 0, 0, 0, 0, -1), current, 0.1).gripper_close is False


def test_per_step_limits_bound_translation_and_rotation():
    safety = layer(**FAST, max_translation_step_m=0.02, max_rotation_step_rad=0.1)
    current = Pose.of([0.5, 0.0, 0.3], DOWN)
    command = safety.check_action(TRIAL, action(1, 1, 1, 1, -1, 1), current, now=0.05)
    translation = command.target.position - current.position
    assert np.linalg.norm(translation) == pytest.approx(0.02)
    np.testing.assert_allclose(translation / np.linalg.norm(translation), np.ones(3) / math.sqrt(3))  # direction kept
    assert np.linalg.norm(rotation_between(current.quaternion, command.target.quaternion)) == pytest.approx(0.1)
    # out-of-range actions are clipped to [-1, 1] first, as robosuite does
    big = layer(**FAST).check_action(TRIAL, action(40.0), current, 0.05)
    assert big.target.position[0] == pytest.approx(0.55)


def test_velocity_limits_follow_the_control_period_and_command_spacing():
    safety = layer(max_linear_speed_m_s=0.25, max_angular_speed_rad_s=1.0, control_period_s=0.05, state_timeout_s=10.0)
    current = Pose.of([0.5, 0.0, 0.3], DOWN)
    first = safety.check_action(TRIAL, action(1, 0, 0, 0, 0, 1), current, now=1.0)
    assert first.target.position[0] - 0.5 == pytest.approx(0.25 * 0.05)  # the first command: one control period
    assert np.linalg.norm(rotation_between(current.quaternion, first.target.quaternion)) == pytest.approx(0.05)
    soon = safety.check_action(TRIAL, action(1), current, now=1.01)  # 10 ms later: 2.5 mm further at most
    assert soon.target.position[0] - first.target.position[0] == pytest.approx(0.25 * 0.01)
    safety.state_received(3.0)
    later = safety.check_action(TRIAL, action(1), current, now=3.0)  # long pause: the per-step limit rules
    assert later.target.position[0] == pytest.approx(0.55)


def test_workspace_clamp_and_a_robot_outside_is_brought_back_step_by_step():
    safety = layer(**FAST, workspace_min=(0.2, -0.3, 0.05), workspace_max=(0.7, 0.3, 0.6))
    near_table = Pose.of([0.5, 0.29, 0.06], DOWN)
    command = safety.check_action(TRIAL, action(0, 1, -1), near_table, now=0.05)
    np.testing.assert_allclose(command.target.position, [0.5, 0.3, 0.05])
    outside = Pose.of([0.9, 0.0, 0.3], DOWN)  # 0.2 m beyond x max
    command = safety.check_action(TRIAL, action(1), outside, now=0.1)
    assert command.target.position[0] == pytest.approx(0.85)  # one 5 cm step toward the box, not a jump


@pytest.mark.parametrize(
    "bad", [action(math.nan), action(0, 0, math.inf), action(0, 0, 0, 0, 0, 0, -math.inf), [0.0] * 6, [0.0] * 8]
)
def test_non_finite_or_misshapen_actions_are_dropped(bad):
    safety = layer()
    command = safety.check_action(TRIAL, bad, Pose.of([0.5, 0, 0.3], DOWN), now=0.05)
    assert command.target is None and command.dropped
    assert ("non-finite" in command.dropped) == (len(bad) == 7)
    assert safety.last_target is None  # a dropped action leaves no trace in the velocity limit


def test_actions_of_another_trial_or_no_trial_are_dropped():
    safety = layer()
    current = Pose.of([0.5, 0, 0.3], DOWN)
    assert "active trial is" in safety.check_action("it0001-other", action(1), current, 0.05).dropped
    safety.end_trial("not-the-active-one")
    assert not safety.check_action(TRIAL, action(1), current, 0.05).dropped
    safety.end_trial(TRIAL)  # reward or abort
    assert "active trial is 'none'" in safety.check_action(TRIAL, action(1), current, 0.1).dropped


def test_estop_latches_until_release():
    safety = layer()
    current = Pose.of([0.5, 0, 0.3], DOWN)
    safety.estop()
    for now in (0.05, 0.1):
        assert "e-stop latched" in safety.check_action(TRIAL, action(1), current, now).dropped
    assert "e-stop" in safety.home_step(current, current, 0.1)[0].dropped
    safety.release()
    assert safety.check_action(TRIAL, action(1), current, 0.15).target is not None


def test_watchdog_holds_on_stale_state_or_camera():
    safety = layer(now=0.0, state_timeout_s=0.2, image_timeout_s=0.5, watched_cameras=("agentview",))
    current = Pose.of([0.5, 0, 0.3], DOWN)
    assert "no image from camera 'agentview'" in safety.check_action(TRIAL, action(1), current, 0.1).dropped
    safety.image_received("agentview", 0.1)
    assert safety.check_action(TRIAL, action(1), current, 0.15).target is not None
    assert "robot state is 0.30 s old" in safety.check_action(TRIAL, action(1), current, 0.3).dropped
    safety.state_received(0.55)
    assert "camera 'agentview' is 0.55 s old" in safety.check_action(TRIAL, action(1), current, 0.65).dropped
    safety.image_received("agentview", 0.65)
    assert safety.stale(0.66) == ""
    assert "no robot pose" in safety.check_action(TRIAL, action(1), None, 0.66).dropped
    fresh = SafetyLayer(SafetyConfig())
    fresh.start_trial(TRIAL)
    assert "no robot state yet" in fresh.check_action(TRIAL, action(1), current, 0.0).dropped


def test_home_converges_in_bounded_steps():
    """A robot that reaches each target before the next control tick gets home in about
    distance / (speed * period) steps, every step within the limits."""
    config = dict(max_linear_speed_m_s=0.25, max_angular_speed_rad_s=1.0, control_period_s=0.05)
    safety = layer(**config)
    home = Pose.of([0.307, 0.0, 0.487], DOWN)
    tilted = Pose.of([0, 0, 0], DOWN).moved(np.zeros(3), [0.0, 0.3, 0.8]).quaternion
    pose = Pose.of([0.55, 0.2, 0.15], tilted)
    distance, angle = pose.distance_to(home)
    bound = math.ceil(max(distance / (0.25 * 0.05), angle / (1.0 * 0.05))) + 1
    for step in range(1, 1000):
        now = step * 0.05
        safety.state_received(now)
        command, reached = safety.home_step(pose, home, now)
        if reached:
            break
        moved, turned = pose.distance_to(command.target)
        assert moved <= 0.25 * 0.05 + 1e-9 and turned <= 1.0 * 0.05 + 1e-9
        assert command.gripper_close is False  # homing opens the gripper
        pose = command.target
    assert reached and step - 1 <= bound, (step, bound)
    final_distance, final_angle = pose.distance_to(home)
    assert final_distance <= 0.005 and final_angle <= 0.02


def test_config_is_validated():
    with pytest.raises(ValueError, match="workspace_min < workspace_max"):
        SafetyConfig(workspace_min=(0.5, 0, 0), workspace_max=(0.4, 1, 1))
    with pytest.raises(ValueError, match="max_linear_speed_m_s"):
        SafetyConfig(max_linear_speed_m_s=0.0)
    with pytest.raises(ValueError, match="control_period_s"):
        SafetyConfig(control_period_s=math.nan)
