"""RealSense colour cameras behind a small interface, and a stream that survives an unplug
(plain Python, no rclpy; the ROS node is camera_node.py).

    device = RealSenseCamera(CameraSettings(serial="123622270136", width=640, height=480, fps=30))
    device.open(); rgb, stamp = device.read(); device.close()

`CameraStream` owns one device: it opens it, reads frames, and on a read error closes it and
retries the open with exponential backoff, so a camera that is unplugged and plugged back in
streams again without restarting anything. pyrealsense2 is imported on first open.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class CameraSettings:
    serial: str = ""
    """Device serial number; '' opens any connected camera (only sensible with one camera)."""
    width: int = 640
    height: int = 480
    fps: int = 30

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise ValueError(f"width, height and fps must be > 0, got {self.width}x{self.height}@{self.fps}")


class CameraError(RuntimeError):
    """The camera could not be opened or stopped delivering frames."""


class CameraNotFound(CameraError):
    """No camera with the requested serial is connected; the message lists the ones that are."""

    def __init__(self, serial: str, available: list[str]):
        self.serial, self.available = serial, list(available)
        wanted = f"serial {serial!r}" if serial else "any serial"
        seen = ", ".join(self.available) if self.available else "none"
        super().__init__(f"no RealSense camera with {wanted} is connected (connected serials: {seen})")


class CameraDevice(Protocol):
    """One colour camera. read() blocks until the next frame."""

    settings: CameraSettings

    def open(self) -> None: ...

    def read(self) -> tuple[np.ndarray, float]:
        """(RGB uint8 [height, width, 3], capture time in seconds on the host clock)."""
        ...

    def close(self) -> None: ...


class RealSenseCamera:
    """The colour stream of an Intel RealSense (D4xx) through pyrealsense2."""

    READ_TIMEOUT_MS = 1000

    def __init__(self, settings: CameraSettings) -> None:
        self.settings = settings
        self._pipeline = None

    @staticmethod
    def connected_serials() -> list[str]:
        import pyrealsense2 as rs

        return [device.get_info(rs.camera_info.serial_number) for device in rs.context().query_devices()]

    def open(self) -> None:
        import pyrealsense2 as rs

        s = self.settings
        available = self.connected_serials()
        if (s.serial and s.serial not in available) or not available:
            raise CameraNotFound(s.serial, available)
        config = rs.config()
        if s.serial:
            config.enable_device(s.serial)
        config.enable_stream(rs.stream.color, s.width, s.height, rs.format.rgb8, s.fps)
        pipeline = rs.pipeline()
        try:
            pipeline.start(config)
        except RuntimeError as exc:  # e.g. a mode the camera does not offer, or the device is busy
            raise CameraError(
                f"RealSense {s.serial or '(any)'}: cannot stream {s.width}x{s.height}@{s.fps} rgb8: {exc}"
            ) from exc
        self._pipeline = pipeline

    def read(self) -> tuple[np.ndarray, float]:
        import pyrealsense2 as rs

        if self._pipeline is None:
            raise CameraError("read() before open()")
        try:
            frames = self._pipeline.wait_for_frames(self.READ_TIMEOUT_MS)
        except RuntimeError as exc:  # timeout: unplugged, or the USB link dropped
            raise CameraError(f"RealSense {self.settings.serial or '(any)'}: no frame: {exc}") from exc
        color = frames.get_color_frame()
        pixels = np.asanyarray(color.get_data()).copy()  # the SDK reuses the buffer
        # global/system time domains are the host clock in ms; the hardware clock is not, so fall
        # back to the arrival time
        domain = color.get_frame_timestamp_domain()
        host_domains = (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time)
        stamp = color.get_timestamp() / 1000.0 if domain in host_domains else time.time()
        return pixels, stamp

    def close(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            try:
                pipeline.stop()
            except RuntimeError:
                pass  # already gone with the device


class CameraStream:
    """Reads one camera forever: opens it, and after any error closes it and retries the open
    with exponential backoff (retry_s, doubling up to max_retry_s). `poll()` never raises."""

    def __init__(
        self,
        device: CameraDevice,
        log,
        retry_s: float = 0.5,
        max_retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device, self.log, self.clock = device, log, clock
        self.retry_s, self.max_retry_s = retry_s, max_retry_s
        self.is_open = False
        self.next_open_s = 0.0
        self.backoff_s = retry_s
        self.frames = 0
        self.reconnects = 0

    def poll(self) -> tuple[np.ndarray, float] | None:
        """The next frame, or None while the camera is (re)connecting."""
        if not self.is_open and not self._try_open():
            return None
        try:
            frame = self.device.read()
        except Exception as exc:  # any driver error means the same: drop the device, reconnect
            self.log.warning(f"camera read failed ({exc}); closing and reconnecting")
            self._close()
            self.next_open_s = self.clock() + self.retry_s
            self.backoff_s = self.retry_s
            return None
        self.frames += 1
        return frame

    def _try_open(self) -> bool:
        now = self.clock()
        if now < self.next_open_s:
            return False
        try:
            self.device.open()
        except Exception as exc:
            self.log.error(f"{exc}; retrying in {self.backoff_s:.1f} s")
            self.next_open_s = now + self.backoff_s
            self.backoff_s = min(self.backoff_s * 2, self.max_retry_s)
            return False
        self.is_open, self.backoff_s = True, self.retry_s
        if self.frames:
            self.reconnects += 1
        s = self.device.settings
        self.log.info(
            f"camera {s.serial or '(any)'} streaming {s.width}x{s.height}@{s.fps}"
            + (f" (reconnect {self.reconnects})" if self.reconnects else "")
        )
        return True

    def _close(self) -> None:
        self.is_open = False
        try:
            self.device.close()
        except Exception as exc:
            self.log.warning(f"camera close failed ({exc}); ignored")

    def close(self) -> None:
        if self.is_open:
            self._close()
