"""RealSense camera node: one colour camera -> sensor_msgs/Image (rgb8, upright) on
`camera/<camera_name>/image_raw`, best-effort sensor QoS (the newest frame replaces a lost one).

A thin adapter over `ript.robot.realsense.CameraStream`. A camera that is missing at start
or unplugged later is not fatal: the node logs the error (with the serials it does see) and keeps
retrying with backoff (retry_s doubling up to max_retry_s), so cameras may be plugged in after the
graph is up and an unplug costs only the frames it misses. Stamps are the capture times.

    realsense_camera --ros-args -p serial:=123622270136 -p camera_name:=agentview
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import Image

from ript.robot.realsense import CameraDevice, CameraSettings, CameraStream, RealSenseCamera
from ript.ros.ros_main import spin_node


def rgb8_image(pixels: np.ndarray, stamp, frame_id: str) -> Image:
    """sensor_msgs/Image of an upright RGB uint8 [H, W, 3] array."""
    image = Image(height=pixels.shape[0], width=pixels.shape[1], encoding="rgb8", step=pixels.shape[1] * 3)
    image.header.stamp, image.header.frame_id = stamp, frame_id
    image.data = pixels.tobytes()  # bytes, not the array (~1000x faster)
    return image


class CameraNode(Node):
    def __init__(self, make_device: Callable[[CameraSettings], CameraDevice] = RealSenseCamera, **node_options) -> None:
        super().__init__("realsense_camera", **node_options)
        # dynamic typing: a serial such as 123622270136 arrives as an int from `-p serial:=...`
        p = lambda name, default: self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
        try:
            settings = CameraSettings(
                serial=str(p("serial", "").value),
                width=int(p("width", 640).value),
                height=int(p("height", 480).value),
                fps=int(p("fps", 30).value),
            )
        except ValueError as exc:
            raise SystemExit(f"realsense_camera: {exc}") from exc
        self.camera_name = str(p("camera_name", "agentview").value)
        self.frame_id = str(p("frame_id", "").value) or f"{self.camera_name}_color_optical_frame"
        retry_s, max_retry_s = float(p("retry_s", 0.5).value), float(p("max_retry_s", 5.0).value)
        self.publisher = self.create_publisher(Image, f"camera/{self.camera_name}/image_raw", qos_profile_sensor_data)
        self.stream = CameraStream(make_device(settings), self.get_logger(), retry_s, max_retry_s)
        # read() blocks until the camera's next frame, so the camera paces this timer
        self.create_timer(1.0 / settings.fps, self._publish_frame)
        self.get_logger().info(
            f"camera {self.camera_name!r}: serial {settings.serial or '(any)'}, "
            f"{settings.width}x{settings.height}@{settings.fps} -> {self.publisher.topic_name}"
        )

    def _publish_frame(self) -> None:
        frame = self.stream.poll()
        if frame is None:
            return
        pixels, stamp = frame
        self.publisher.publish(rgb8_image(pixels, Time(nanoseconds=int(stamp * 1e9)).to_msg(), self.frame_id))

    def close(self) -> None:
        self.stream.close()


def main(args=None) -> None:
    spin_node(CameraNode, args, close=lambda node: node.close())


if __name__ == "__main__":
    main()
