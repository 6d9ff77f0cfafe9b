"""ript_interfaces and sensor images over real DDS between two processes on this machine.

The peer process (dds_peer.py) publishes and serves; this process subscribes and calls. Needs
ript_interfaces built into the venv (scripts/build_interfaces.sh, run by scripts/setup.sh).
"""

from __future__ import annotations

import numpy as np
import pytest
from dds_peer import IMAGE_FRAME, IMAGE_SHAPE, REWARD, image_pixels, start_trial_reply
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

DISCOVERY_TIMEOUT_S = 15.0


@pytest.fixture(autouse=True, scope="module")
def interfaces_built():
    try:
        import ript_interfaces.msg  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"ript_interfaces is not built into this venv ({exc}); run scripts/build_interfaces.sh")


def test_interfaces_import_with_type_support():
    from rclpy.type_support import check_for_type_support
    from ript_interfaces.msg import ActionChunk, Reward, TrainerStatus, TrialStart, WeightsUpdate
    from ript_interfaces.srv import AbortTrial, StartTrial

    for t in (ActionChunk, Reward, TrainerStatus, TrialStart, WeightsUpdate, AbortTrial, StartTrial):
        check_for_type_support(t)
    assert Reward.SOURCE_OPERATOR == "operator"
    assert TrainerStatus.STATE_WAITING_FOR_RESET == "waiting_for_reset"
    # Every message that belongs to one trial names it.
    for t in (ActionChunk, Reward, TrialStart, TrainerStatus, AbortTrial.Request):
        assert "trial_id" in t.get_fields_and_field_types(), t.__name__
    chunk = ActionChunk(chunk_size=2, action_dim=3, actions=np.arange(6, dtype=np.float32))
    assert chunk.actions.tolist() == [0, 1, 2, 3, 4, 5]


def test_reward_and_start_trial_across_processes(ros, start_peer):
    from ript_interfaces.msg import Reward
    from ript_interfaces.srv import StartTrial

    topic, service = "/ript_test/reward", "/ript_test/start_trial"
    peer = start_peer("reward", topic, service)
    received: list[Reward] = []
    ros.node.create_subscription(
        Reward, topic, received.append, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    )
    if not ros.spin_until(lambda: received or peer.proc.poll() is not None, DISCOVERY_TIMEOUT_S):
        pytest.fail(f"no Reward within {DISCOVERY_TIMEOUT_S} s; peer output:\n{peer.stop()}")
    assert received, f"peer died before publishing:\n{peer.stop()}"

    msg = received[0]
    assert msg.trial_id == REWARD["trial_id"]
    assert msg.success is True
    assert msg.reward == pytest.approx(REWARD["reward"])
    assert msg.source == Reward.SOURCE_OPERATOR
    assert msg.confidence == pytest.approx(REWARD["confidence"])
    assert msg.stamp.sec > 0, "peer stamps each reward with its clock"

    client = ros.node.create_client(StartTrial, service)
    assert ros.spin_until(client.service_is_ready, DISCOVERY_TIMEOUT_S), "no StartTrial server"
    for context_id, stochastic in [("libero_spatial/3/init07", True), ("", False)]:
        future = client.call_async(StartTrial.Request(context_id=context_id, stochastic=stochastic))
        assert ros.spin_until(future.done, 10.0), "StartTrial call timed out"
        reply = future.result()
        accepted, trial_id, message = start_trial_reply(context_id, stochastic)
        assert (reply.accepted, reply.trial_id, reply.message) == (accepted, trial_id, message)
    assert peer.stop().strip().endswith("peer reward stopped")


def test_camera_image_best_effort_across_processes(ros, start_peer):
    from sensor_msgs.msg import Image

    topic = "/ript_test/camera/image_raw"
    peer = start_peer("camera", topic)
    received: list[Image] = []
    ros.node.create_subscription(Image, topic, received.append, qos_profile_sensor_data)
    if not ros.spin_until(lambda: len(received) >= 3 or peer.proc.poll() is not None, DISCOVERY_TIMEOUT_S):
        pytest.fail(f"fewer than 3 images in {DISCOVERY_TIMEOUT_S} s; peer output:\n{peer.stop()}")
    assert len(received) >= 3, f"peer died:\n{peer.stop()}"

    img = received[-1]
    assert (img.height, img.width, img.encoding) == (IMAGE_SHAPE[0], IMAGE_SHAPE[1], "rgb8")
    assert img.step == IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
    assert img.header.frame_id == IMAGE_FRAME
    pixels = np.frombuffer(bytes(img.data), dtype=np.uint8).reshape(IMAGE_SHAPE)
    np.testing.assert_array_equal(pixels, image_pixels())
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in received]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), "frames repeat or reorder"


def test_trial_start_carries_every_field_of_a_trials_identity():
    """The wire message and the one identity type (ript.core.trial_identity) name a trial alike:
    whatever the trainer's ticket holds, but its place in the sampler and its robot (named by the
    topic it goes out on, /<robot>/ript/trial_start), goes out in TrialStart."""
    from dataclasses import fields

    from ript_interfaces.msg import TrialStart

    from ript.core.trial_identity import TrialIdentity, TrialTicket

    on_the_wire = set(TrialStart.get_fields_and_field_types())
    not_in_the_message = {"group_id", "context_index", "robot"}
    missing = {f.name for f in fields(TrialTicket)} - not_in_the_message - on_the_wire
    assert not missing, f"TrialStart lacks {sorted(missing)}"
    assert {f.name for f in fields(TrialIdentity)} <= on_the_wire
