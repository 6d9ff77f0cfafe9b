"""The other process in the real-DDS tests (tests/ros/test_interfaces.py).

    python tests/ros/dds_peer.py reward TOPIC SERVICE   publish Reward every 0.1 s, serve StartTrial
    python tests/ros/dds_peer.py camera TOPIC           64x48 rgb8 Image at 20 Hz, best effort

Runs until SIGTERM (or a 60 s safety limit), then tears down and exits 0. The values it sends are
the constants below, which the tests import and compare against.
"""

from __future__ import annotations

import signal
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions

REWARD = dict(trial_id="it0003-ctx0012-k2", success=True, reward=1.0, source="operator", confidence=0.75)
IMAGE_SHAPE = (48, 64, 3)  # height, width, channels (rgb8)
IMAGE_FRAME = "agentview"
SAFETY_LIMIT_S = 60.0


def image_pixels() -> np.ndarray:
    """A pattern in which every row differs, so a row-stride bug shows."""
    flat = np.arange(np.prod(IMAGE_SHAPE), dtype=np.uint32) % 251
    return flat.astype(np.uint8).reshape(IMAGE_SHAPE)


def start_trial_reply(context_id: str, stochastic: bool) -> tuple[bool, str, str]:
    """(accepted, trial_id, message) the peer answers to StartTrial."""
    if not context_id:
        return False, "", "empty context_id"
    return True, f"{context_id}/k0/{'sample' if stochastic else 'mode'}", "started"


def run_reward(node, topic: str, service: str) -> list:
    from ript_interfaces.msg import Reward
    from ript_interfaces.srv import StartTrial

    # Rewards are commands, not sensor data: reliable.
    pub = node.create_publisher(Reward, topic, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))

    def publish():
        msg = Reward(**REWARD)
        msg.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)

    def handle(request, response):
        response.accepted, response.trial_id, response.message = start_trial_reply(
            request.context_id, request.stochastic
        )
        return response

    return [node.create_timer(0.1, publish), node.create_service(StartTrial, service, handle)]


def run_camera(node, topic: str) -> list:
    from sensor_msgs.msg import Image

    pub = node.create_publisher(Image, topic, qos_profile_sensor_data)
    pixels = image_pixels()
    msg = Image(height=IMAGE_SHAPE[0], width=IMAGE_SHAPE[1], encoding="rgb8", step=IMAGE_SHAPE[1] * IMAGE_SHAPE[2])
    msg.header.frame_id = IMAGE_FRAME
    msg.data = pixels.tobytes()  # bytes, not the array: assigning an array is ~1000x slower

    def publish():
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)

    return [node.create_timer(0.05, publish)]


def main(argv: list[str]) -> int:
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    # Our own handlers, so SIGTERM leads to the orderly teardown below instead of rclpy's.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(f"peer_{argv[0]}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    if argv[0] == "reward":
        keep = run_reward(node, argv[1], argv[2])
    elif argv[0] == "camera":
        keep = run_camera(node, argv[1])
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")
    print(f"peer {argv[0]} ready", flush=True)
    deadline = time.monotonic() + SAFETY_LIMIT_S
    try:
        while not stop and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        del keep
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown()
    print(f"peer {argv[0]} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
