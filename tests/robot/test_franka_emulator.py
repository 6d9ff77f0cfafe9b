"""The Franka bridge driven against real LIBERO through franka_ros2's interface: the emulator
(ript.ros.franka_emulator) plays the robot, the bridge and its safety layer sit in between, this
test plays the trainer and the policy. Actions move the simulated end effector in the commanded
direction, the gripper closes, and the state comes back as RobotState with the trial and step."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ript_interfaces.msg import ActionCommand, RobotState, TrialStart

from ript.ros.trial_start import TRIAL_START_QOS

pytestmark = pytest.mark.slow
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def contexts_file(tmp_path_factory):
    from ript.sim.contexts import evaluation_contexts, save_contexts

    path = tmp_path_factory.mktemp("emulator") / "contexts.npz"
    # a benchmark init state: read from the package, no env to build (a training context samples one)
    save_contexts(path, evaluation_contexts("libero_spatial", [0], episodes=1))
    return path


def test_bridge_moves_the_libero_robot_in_the_commanded_direction(ros, start_node, contexts_file):
    from ript.ros.ros_contexts import context_id
    from ript.sim.contexts import load_contexts

    emulator = start_node("ript.ros.franka_emulator", contexts_file=str(contexts_file), render=False, max_steps=400)
    bridge = start_node("ript.ros.franka_bridge", dry_run=False, watch_cameras="", gripper_interface="topic")
    node = ros.node
    states: list[RobotState] = []
    node.create_subscription(RobotState, "robot/state", states.append, qos_profile_sensor_data)
    start_pub = node.create_publisher(TrialStart, "ript/trial_start", TRIAL_START_QOS)
    action_pub = node.create_publisher(ActionCommand, "action", RELIABLE)
    logs = lambda: f"emulator:\n{emulator.output()[-3000:]}\nbridge:\n{bridge.output()[-3000:]}"
    assert ros.spin_until(lambda: states and start_pub.get_subscription_count() >= 2, 60.0), logs()

    trial = "it0001-g000-c000-k0-e1e1"
    (context,) = load_contexts(contexts_file)
    start_pub.publish(TrialStart(trial_id=trial, context_id=context_id(context), group_size=2))
    assert ros.spin_until(lambda: f"trial {trial}: scene reset" in emulator.output(), 20.0), logs()
    # the bridge holds while the emulator resets (state stale); wait for fresh post-reset states
    ros.spin_until(lambda: False, 0.5)
    assert states[-1].trial_id == trial
    before = states[-1]
    assert 0.3 < before.ee_pos[0] < 0.6 and abs(before.ee_pos[1]) < 0.1, before.ee_pos  # robot base frame
    assert before.gripper_states[0] > 0.03 and before.gripper_states[1] < -0.03  # open, LIBERO's signs

    def act(action, steps):
        for _ in range(steps):
            action_pub.publish(ActionCommand(trial_id=trial, step=states[-1].step, action=action))
            ros.spin_until(lambda: False, 0.05)  # the policy's 20 Hz

    act([1.0, 0, 0, 0, 0, 0, -1.0], 15)
    ros.spin_until(lambda: False, 0.5)  # the impedance-like follower catches up with the last target
    after = states[-1]
    moved = np.asarray(after.ee_pos) - np.asarray(before.ee_pos)
    assert moved[0] > 0.05 and abs(moved[1]) < 0.02 and abs(moved[2]) < 0.02, moved
    assert after.step == 15 and after.trial_id == trial, logs()

    act([0, 0, 0, 0, 0, 0, 1.0], 10)
    assert ros.spin_until(lambda: states[-1].gripper_states[0] < 0.01, 5.0), states[-1].gripper_states
    assert "Franka emulator on LIBERO" in emulator.output()
