"""The Franka bridge as `ript up` starts it (a subprocess), over real DDS; this test's node plays
franka_ros2 (current pose and joint states in, pose targets and gripper widths out), the trainer
(TrialStart, Reward) and the policy (ActionCommand). Checks: bounded targets and RobotState back
with trial id and step, dropped actions, dry run, e-stop latency, the watchdog, the home routine."""

from __future__ import annotations

import math
import statistics
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ript_interfaces.msg import ActionCommand, Reward, RobotState, TrialStart
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64
from std_srvs.srv import Trigger

from ript.robot.poses import Pose
from ript.ros.franka_bridge import pose_message, pose_of
from ript.ros.trial_start import TRIAL_START_QOS

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
TARGET_TOPIC, POSE_TOPIC, JOINTS_TOPIC = "/target_pose", "/current_pose", "/joint_states"
GRIPPER_TOPIC = "/fr3_gripper/width_command"
TRIAL = "it0001-g000-c000-k0-5f3a"
DOWN = [1.0, 0.0, 0.0, 0.0]
START = Pose.of([0.5, 0.0, 0.3], DOWN)
ESTOP_BOUND_S = 0.1


class FakeFranka:
    """franka_ros2 as the bridge sees it: pose and joints at 100 Hz; records what it is sent."""

    def __init__(self, ros, follow: bool = False):
        node = ros.node
        self.pose, self.follow, self.publishing = START, follow, True
        self.targets: list[tuple[float, PoseStamped]] = []
        self.gripper: list[float] = []
        self.pose_pub = node.create_publisher(PoseStamped, POSE_TOPIC, qos_profile_sensor_data)
        self.joints_pub = node.create_publisher(JointState, JOINTS_TOPIC, qos_profile_sensor_data)
        node.create_subscription(PoseStamped, TARGET_TOPIC, self._on_target, RELIABLE)
        node.create_subscription(Float64, GRIPPER_TOPIC, lambda m: self.gripper.append(m.data), RELIABLE)
        node.create_timer(0.01, self._publish)
        self.node = node

    def _on_target(self, msg: PoseStamped) -> None:
        self.targets.append((time.monotonic(), msg))
        if self.follow:  # an ideal controller: at the target by the next state message
            self.pose = pose_of(msg)

    def _publish(self) -> None:
        if not self.publishing:
            return
        stamp = self.node.get_clock().now().to_msg()
        self.pose_pub.publish(pose_message(self.pose, "fr3_link0", stamp))
        joints = JointState(
            name=[f"fr3_joint{i}" for i in range(1, 8)] + ["fr3_finger_joint1", "fr3_finger_joint2"],
            position=[0.0, -0.8, 0.0, -2.4, 0.0, 1.6, 0.8, 0.03, 0.03],
        )
        joints.header.stamp = stamp
        self.joints_pub.publish(joints)


class Graph:
    """This test's side of the graph: fake Franka, trainer and policy."""

    def __init__(self, ros, start_node, follow=False, **bridge_params):
        self.ros = ros
        self.franka = FakeFranka(ros, follow)
        params = dict(
            target_pose_topic=TARGET_TOPIC,
            current_pose_topic=POSE_TOPIC,
            joint_states_topic=JOINTS_TOPIC,
            gripper_interface="topic",
            watch_cameras="",
            dry_run=False,
        )
        params.update(bridge_params)
        self.bridge = start_node("ript.ros.franka_bridge", **params)
        node = ros.node
        self.states: list[RobotState] = []
        self.dry_run_targets: list[PoseStamped] = []
        node.create_subscription(RobotState, "robot/state", self.states.append, qos_profile_sensor_data)
        node.create_subscription(PoseStamped, "/franka_bridge/dry_run_target", self.dry_run_targets.append, RELIABLE)
        self.start_pub = node.create_publisher(TrialStart, "ript/trial_start", TRIAL_START_QOS)
        self.action_pub = node.create_publisher(ActionCommand, "action", RELIABLE)
        self.reward_pub = node.create_publisher(Reward, "reward", RELIABLE)
        self.services = {name: node.create_client(Trigger, f"robot/{name}") for name in ("estop", "release", "home")}
        ready = lambda: (
            self.states
            and all(c.service_is_ready() for c in self.services.values())
            and self.action_pub.get_subscription_count()
            and self.start_pub.get_subscription_count()
        )
        assert ros.spin_until(ready, 20.0), f"bridge not ready:\n{self.bridge.output()}"

    def start_trial(self, trial_id: str = TRIAL) -> None:
        self.start_pub.publish(TrialStart(trial_id=trial_id, context_id="bench/0", group_size=2))
        assert self.ros.spin_until(lambda: self.states[-1].trial_id == trial_id, 5.0), self.bridge.output()

    def act(self, *values, trial_id: str = TRIAL, pad: bool = True) -> None:
        action = [*values, *[0.0] * (7 - len(values))] if pad else list(values)
        self.action_pub.publish(ActionCommand(trial_id=trial_id, step=self.states[-1].step, action=action))

    def call(self, name: str) -> Trigger.Response:
        future = self.services[name].call_async(Trigger.Request())
        assert self.ros.spin_until(future.done, 5.0), f"robot/{name} did not answer"
        return future.result()

    def quiet(self, seconds: float) -> None:
        self.ros.spin_until(lambda: False, seconds)


def test_actions_become_bounded_targets_and_state_comes_back(ros, start_node):
    g = Graph(ros, start_node)
    state = g.states[-1]
    np.testing.assert_allclose(state.ee_pos, [0.5, 0.0, 0.3])
    np.testing.assert_allclose(state.ee_ori, [math.pi, 0.0, 0.0])  # LIBERO's axis-angle of "pointing down"
    np.testing.assert_allclose(state.gripper_states, [0.03, -0.03])  # LIBERO mirrors the second finger
    assert len(state.joint_states) == 7 and state.trial_id == ""
    g.act(1.0)
    g.quiet(0.3)
    assert g.franka.targets == [], "an action before any trial was executed"
    g.start_trial()
    assert g.states[-1].step == 0
    g.act(1.0, 0, 0, 0, 0, 0, 1.0)
    assert ros.spin_until(lambda: g.franka.targets and g.franka.gripper, 5.0), g.bridge.output()
    target = g.franka.targets[0][1]
    assert target.header.frame_id == "fr3_link0"
    # full-scale +x: 5 cm in LIBERO's scale, limited to 0.25 m/s for one 0.05 s control period
    np.testing.assert_allclose(
        [target.pose.position.x, target.pose.position.y, target.pose.position.z], [0.5125, 0.0, 0.3], atol=1e-9
    )
    assert g.franka.gripper == [0.0]  # +1: close
    assert ros.spin_until(lambda: g.states[-1].step == 1 and g.states[-1].trial_id == TRIAL, 2.0)
    g.act(*[math.nan] * 7)
    g.act(0.0, 0.0, 0.0, pad=False)
    g.act(1.0, trial_id="it0001-g000-c000-k1-other")
    g.quiet(0.5)
    assert len(g.franka.targets) == 1 and g.states[-1].step == 1
    g.reward_pub.publish(Reward(trial_id=TRIAL, success=True, reward=1.0, source="operator"))
    assert ros.spin_until(lambda: g.states[-1].trial_id == "", 2.0)
    g.act(1.0)
    g.quiet(0.3)
    assert len(g.franka.targets) == 1, "an action after the trial's reward was executed"
    log = g.bridge.output()
    assert "gripper via std_msgs/Float64 width on /fr3_gripper/width_command" in log
    for reason in (
        "non-finite action",
        "action has 3 values, expected 7",
        "active trial is 'it0001-g000-c000-k0-5f3a'",
        "active trial is 'none'",
    ):
        assert reason in log, reason


def test_dry_run_publishes_nothing_on_the_command_topic(ros, start_node):
    g = Graph(ros, start_node, dry_run=True)
    g.start_trial()
    for _ in range(5):
        g.act(0.5, 0, 0, 0, 0, 0, 1.0)
        g.quiet(0.06)
    assert ros.spin_until(lambda: len(g.dry_run_targets) == 5, 3.0), g.bridge.output()
    g.quiet(0.3)
    assert g.franka.targets == [] and g.franka.gripper == []
    assert g.dry_run_targets[0].pose.position.x == pytest.approx(0.5125)
    log = g.bridge.output()
    assert "DRY RUN: targets only on /franka_bridge/dry_run_target" in log and "dry run: gripper would close" in log


def test_estop_stops_commands_at_once_and_release_resumes(ros, start_node):
    g = Graph(ros, start_node, follow=True)
    g.start_trial()
    streaming = [True]

    def stream():
        if streaming[0]:
            g.act(0.05)

    ros.node.create_timer(0.01, stream)  # the policy at 100 Hz: worst case for stopping
    latencies, round_trips = [], []
    for _ in range(5):
        count = len(g.franka.targets)
        assert ros.spin_until(lambda: len(g.franka.targets) >= count + 10, 5.0), g.bridge.output()
        sent = time.monotonic()
        future = g.services["estop"].call_async(Trigger.Request())
        assert ros.spin_until(future.done, 2.0) and future.result().success
        answered = time.monotonic()
        g.quiet(0.5)
        after = [t for t, _ in g.franka.targets if t > sent]
        latencies.append((max(after) if after else sent) - sent)
        round_trips.append(answered - sent)
        assert all(t <= answered for t in after), "a target arrived after the e-stop was acknowledged"
        assert g.call("release").success
    streaming[0] = False
    print(
        f"e-stop: last command {1000 * max(latencies):.1f} ms after the call at worst "
        f"(median {1000 * statistics.median(latencies):.1f} ms); service round trip "
        f"median {1000 * statistics.median(round_trips):.1f} ms, max {1000 * max(round_trips):.1f} ms"
    )
    assert max(latencies) < ESTOP_BOUND_S and max(round_trips) < ESTOP_BOUND_S
    assert "E-STOP latched" in g.bridge.output()


def test_watchdog_stops_commands_on_stale_state_or_camera(ros, start_node):
    g = Graph(ros, start_node, watch_cameras="agentview", state_timeout_s=0.2, image_timeout_s=0.3)
    image_pub = ros.node.create_publisher(Image, "camera/agentview/image_raw", qos_profile_sensor_data)
    image = Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(48))
    camera_on = [True]
    ros.node.create_timer(1 / 30, lambda: camera_on[0] and image_pub.publish(image))
    ros.node.create_timer(0.05, lambda: g.act(0.1))
    g.start_trial()

    def commands_flow() -> None:
        count = len(g.franka.targets)
        assert ros.spin_until(lambda: len(g.franka.targets) >= count + 3, 5.0), g.bridge.output()

    def commands_stop(stopped_at: float, timeout_s: float) -> None:
        g.quiet(timeout_s + 0.3)
        late = [t - stopped_at for t, _ in g.franka.targets if t > stopped_at + timeout_s + 0.1]
        assert not late, f"targets {late} s after the input went stale"

    commands_flow()
    g.franka.publishing = False
    stopped = time.monotonic()
    commands_stop(stopped, 0.2)
    last_state = g.states[-1].stamp
    g.quiet(0.2)
    assert g.states[-1].stamp == last_state, "RobotState kept coming without robot state"
    g.franka.publishing = True
    commands_flow()
    camera_on[0] = False
    commands_stop(time.monotonic(), 0.3)
    camera_on[0] = True
    commands_flow()
    log = g.bridge.output()
    assert "holding: watchdog: robot state is" in log and "holding: watchdog: camera 'agentview' is" in log
    assert "inputs fresh again: commanding resumes" in log


def test_home_routine_converges_in_bounded_steps(ros, start_node):
    home = [0.40, 0.10, 0.35]
    # The fake Franka publishes state from this test's spin, which a loaded machine can delay past
    # the default 0.2 s watchdog (homing then stops, correctly); the watchdog has its own test.
    g = Graph(ros, start_node, follow=True, home_position=str(home), home_orientation=str(DOWN), state_timeout_s=1.0)
    g.call("estop")
    refused = g.call("home")
    assert not refused.success and "e-stop latched" in refused.message
    g.call("release")
    reply = g.call("home")
    assert reply.success, reply.message
    reached = lambda: "home reached in" in g.bridge.output()
    assert ros.spin_until(reached, 10.0), g.bridge.output()
    distance, _ = g.franka.pose.distance_to(Pose.of(home, DOWN))
    assert distance <= 0.005
    # 0.15 m at 0.25 m/s in 0.05 s steps, to within 5 mm: 12 steps (more only for ticks that came
    # before the previous target's pose was back)
    steps = len(g.franka.targets)
    assert 12 <= steps <= 20, steps
    assert g.franka.gripper == [0.08]  # homing opens the gripper
    for (_, a), (_, b) in zip(g.franka.targets, g.franka.targets[1:]):  # 0.25 m/s over a 0.05 s tick (+ jitter)
        assert pose_of(a).distance_to(pose_of(b))[0] <= 0.25 * 0.06
