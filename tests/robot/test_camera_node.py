"""The RealSense camera node with a fake device behind the real CameraDevice interface, over real
DDS: rgb8 frames with capture stamps and frame_id, an unplug followed by a reconnect, and the
error that lists the serials it does see; the real pyrealsense2 driver imports and reports that no
camera is connected on this machine."""

from __future__ import annotations

import numpy as np
import pytest
from fake_camera import FakeBus, FakeCamera, pattern
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from ript.robot.realsense import CameraNotFound, CameraSettings, CameraStream, RealSenseCamera

SERIAL = "036522072967"
SETTINGS = CameraSettings(serial=SERIAL, width=64, height=48, fps=30)


class Log:
    def __init__(self):
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level):
        return lambda message: self.lines.append((level, message))


def test_real_driver_reports_no_camera_with_the_serials_it_sees():
    camera = RealSenseCamera(CameraSettings(serial="123622270136"))
    with pytest.raises(CameraNotFound) as raised:
        camera.open()  # this machine has no RealSense
    assert str(raised.value) == (
        "no RealSense camera with serial '123622270136' is connected (connected serials: none)"
    )
    assert RealSenseCamera.connected_serials() == []
    camera.close()  # closing what never opened is harmless


def test_missing_camera_is_retried_with_backoff_and_the_error_lists_connected_serials():
    now = [0.0]
    bus = FakeBus("111111111111")
    log = Log()
    stream = CameraStream(FakeCamera(SETTINGS, bus), log, retry_s=0.5, max_retry_s=2.0, clock=lambda: now[0])
    attempts = []
    for tick in range(80):  # 4 s at 20 Hz
        now[0] = tick * 0.05
        opens_before = len(log.lines)
        assert stream.poll() is None
        if len(log.lines) > opens_before:
            attempts.append(round(now[0], 2))
    assert attempts == [0.0, 0.5, 1.5, 3.5]  # backoff 0.5, 1, 2, then capped at 2 s
    level, message = log.lines[0]
    assert level == "error" and message == (
        f"no RealSense camera with serial '{SERIAL}' is connected (connected serials: 111111111111); retrying in 0.5 s"
    )
    bus.serials.append(SERIAL)  # plugged in late: it streams without a restart
    now[0] = 6.0
    frame = stream.poll()
    assert frame is not None and stream.is_open and log.lines[-1][0] == "info"


def make_node(ros, bus: FakeBus, **params):
    from ript.ros.camera_node import CameraNode

    values = {
        "serial": SERIAL,
        "width": 64,
        "height": 48,
        "fps": 30,
        "camera_name": "wrist",
        "retry_s": 0.1,
        "max_retry_s": 0.2,
        **params,
    }
    node = CameraNode(
        lambda settings: FakeCamera(settings, bus),
        context=ros.context,
        parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
    )
    ros.executor.add_node(node)
    return node


def test_frames_are_published_with_capture_stamps_and_frame_id(ros):
    bus = FakeBus(SERIAL)
    node = make_node(ros, bus)
    received: list[Image] = []
    ros.node.create_subscription(Image, "camera/wrist/image_raw", received.append, qos_profile_sensor_data)
    try:
        assert ros.spin_until(lambda: len(received) >= 5, 15.0), "fewer than 5 frames"
        device = node.stream.device
        for image in received:
            assert (image.height, image.width, image.encoding, image.step) == (48, 64, "rgb8", 64 * 3)
            assert image.header.frame_id == "wrist_color_optical_frame"
            stamp = image.header.stamp.sec + image.header.stamp.nanosec * 1e-9
            n = min(range(len(device.stamps)), key=lambda i: abs(device.stamps[i] - stamp))
            assert abs(device.stamps[n] - stamp) < 1e-6, "the header carries the capture time"
            pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(48, 64, 3)
            np.testing.assert_array_equal(pixels, pattern(SETTINGS, n + 1))
    finally:
        ros.executor.remove_node(node)
        node.destroy_node()


def test_unplug_then_reconnect_resumes_publishing(ros):
    bus = FakeBus(SERIAL)
    node = make_node(ros, bus, frame_id="wrist_cam")
    received: list[Image] = []
    ros.node.create_subscription(Image, "camera/wrist/image_raw", received.append, qos_profile_sensor_data)
    try:
        assert ros.spin_until(lambda: len(received) >= 3, 15.0)
        assert received[-1].header.frame_id == "wrist_cam"
        bus.serials.remove(SERIAL)  # unplugged: the next read fails, opens fail until it is back
        assert ros.spin_until(lambda: not node.stream.is_open, 5.0)
        ros.spin_until(lambda: False, 0.5)
        count = len(received)
        ros.spin_until(lambda: False, 0.5)
        assert len(received) == count, "frames while unplugged"
        bus.serials.append(SERIAL)
        assert ros.spin_until(lambda: len(received) >= count + 3, 10.0), "no frames after the reconnect"
        assert node.stream.reconnects == 1 and bus.opens == 2
    finally:
        ros.executor.remove_node(node)
        node.destroy_node()
