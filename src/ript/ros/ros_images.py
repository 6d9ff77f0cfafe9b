"""sensor_msgs/Image <-> numpy, shared by every node that reads camera topics."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


def image_to_rgb(msg: Image) -> np.ndarray | None:
    """H x W x 3 RGB uint8 from an 8-bit Image (row stride honoured); None for other encodings."""
    channels = CHANNELS.get(msg.encoding)
    if channels is None or msg.height == 0 or msg.width == 0:
        return None
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    if msg.encoding.startswith("bgr"):
        pixels = pixels[..., 2::-1]
    elif channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[..., :3])
