"""A stand-in for a RealSense camera implementing ript.robot.realsense.CameraDevice: a USB
"bus" the test plugs and unplugs, and frames with a known pattern and capture time."""

from __future__ import annotations

import time

import numpy as np

from ript.robot.realsense import CameraError, CameraNotFound, CameraSettings


class FakeBus:
    """Which serials are plugged in; shared by every FakeCamera of a test."""

    def __init__(self, *serials: str):
        self.serials = list(serials)
        self.opens = 0


class FakeCamera:
    def __init__(self, settings: CameraSettings, bus: FakeBus):
        self.settings, self.bus = settings, bus
        self.is_open = False
        self.stamps: list[float] = []

    def open(self) -> None:
        if self.settings.serial not in self.bus.serials:
            raise CameraNotFound(self.settings.serial, self.bus.serials)
        self.is_open = True
        self.bus.opens += 1

    def read(self) -> tuple[np.ndarray, float]:
        if not self.is_open:
            raise CameraError("read() before open()")
        if self.settings.serial not in self.bus.serials:
            raise CameraError("Frame didn't arrive within 1000")  # what pyrealsense2 says after an unplug
        self.stamps.append(time.time())
        return pattern(self.settings, len(self.stamps)), self.stamps[-1]

    def close(self) -> None:
        self.is_open = False


def pattern(settings: CameraSettings, n: int) -> np.ndarray:
    """Frame n: every row differs (a stride bug shows) and so does every frame."""
    flat = (np.arange(settings.height * settings.width * 3, dtype=np.uint32) + n) % 251
    return flat.astype(np.uint8).reshape(settings.height, settings.width, 3)
