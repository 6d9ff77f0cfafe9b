"""The classifier node over real DDS (a subprocess; this test's rclpy node plays trainer, camera
and operator): a confident success goes out on /reward with its confidence, an unsure trial gets
its verdict at the step budget, and an operator's mark stores the trial's last frame as a labelled
example for the next training run."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from classifier_scenes import dataset, scene
from node_process import NodeProcess
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from ript_interfaces.msg import Reward, RobotState, TrialStart
from sensor_msgs.msg import Image

from ript.policies.success_classifier import ClassifierConfig, Examples, save_classifier, train_classifier

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.set_num_threads(1)
    config = ClassifierConfig(image_size=64, epochs=10, batch_size=32, holdout_fraction=0.2)
    model, report = train_classifier(Examples(*dataset(100, seed=2)), config, progress=False)
    assert report["heldout"]["accuracy"] >= 0.9
    path = tmp_path_factory.mktemp("classifier") / "classifier.ckpt"
    save_classifier(model, config, path, report)
    return path


def to_msg(pixels: np.ndarray) -> Image:
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding="rgb8", step=pixels.shape[1] * 3)
    msg.data = pixels.tobytes()
    return msg


def test_classifier_node_judges_and_collects_operator_labels(ros, tmp_path, model_path):
    node_process = NodeProcess(
        "ript.ros.classifier_node",
        tmp_path / "classifier.log",
        run_dir=str(tmp_path),
        model=str(model_path),
        threshold=0.9,
        confirm_frames=2,
        episode_steps=5,
    )
    try:
        node = ros.node
        rewards: list[Reward] = []
        node.create_subscription(Reward, "reward", rewards.append, RELIABLE)
        start_pub = node.create_publisher(TrialStart, "ript/trial_start", RELIABLE)
        reward_pub = node.create_publisher(Reward, "reward", RELIABLE)
        camera_pub = node.create_publisher(Image, "camera/agentview/image_raw", qos_profile_sensor_data)
        state_pub = node.create_publisher(RobotState, "robot/state", qos_profile_sensor_data)
        assert ros.spin_until(
            lambda: (
                start_pub.get_subscription_count()
                and camera_pub.get_subscription_count()
                and reward_pub.get_subscription_count()
            ),
            60,
        ), node_process.output()
        rng = np.random.default_rng(5)

        def run_trial(trial_id, success_scene, until, steps=None):
            start_pub.publish(TrialStart(trial_id=trial_id, context_id="c", group_size=2))
            ros.spin_until(lambda: False, 0.3)  # TrialStart is reliable, frames are not: let it land first
            step = 0
            deadline = time.monotonic() + 20

            def tick():
                nonlocal step
                step += 1
                if steps is not None:
                    state_pub.publish(RobotState(trial_id=trial_id, step=min(step, steps)))
                camera_pub.publish(to_msg(scene(success_scene, rng)))
                ros.spin_until(lambda: False, 0.1)
                return until() or time.monotonic() > deadline

            ros.spin_until(tick, 30)

        # 1. an obvious success: judged after two confident frames
        run_trial("t1", True, lambda: any(r.trial_id == "t1" for r in rewards))
        (verdict,) = [r for r in rewards if r.trial_id == "t1"]
        assert (verdict.success, verdict.source) == (True, "classifier") and verdict.confidence >= 0.9

        # 2. a failure scene never reaches the success threshold: verdict at the step budget
        run_trial("t2", False, lambda: any(r.trial_id == "t2" for r in rewards), steps=5)
        (verdict,) = [r for r in rewards if r.trial_id == "t2"]
        assert (verdict.success, verdict.source) == (False, "classifier")

        # 3. the operator marks a trial: its last frame becomes a labelled example, no verdict follows
        example = tmp_path / "classifier" / "examples" / "t3.npz"
        start_pub.publish(TrialStart(trial_id="t3", context_id="c", group_size=2))
        ros.spin_until(lambda: False, 0.3)
        frame = scene(False, rng)
        for _ in range(5):  # best effort: send the same frame a few times
            camera_pub.publish(to_msg(frame))
            ros.spin_until(lambda: False, 0.1)
        reward_pub.publish(Reward(trial_id="t3", success=True, reward=1.0, source="operator", confidence=1.0))
        assert ros.spin_until(example.exists, 10), node_process.output()
        with np.load(example) as data:
            assert data["labels"].tolist() == [1] and data["groups"].tolist() == ["t3"]
            np.testing.assert_array_equal(data["images"][0], frame)
        assert [r.source for r in rewards if r.trial_id == "t3"] == ["operator"]
    finally:
        node_process.stop()
