"""Fixtures for the ROS graph tests; the DDS environment and the rclpy harness (`ros_env`, `ros`)
come from tests/conftest.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PEER = Path(__file__).with_name("dds_peer.py")


class Peer:
    """tests/ros/dds_peer.py running in its own process."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._output: str | None = None

    def stop(self) -> str:
        """SIGTERM (the peer tears down and exits 0), then everything it printed."""
        if self._output is None:
            if self.proc.poll() is None:
                self.proc.terminate()
            try:
                self._output = self.proc.communicate(timeout=10)[0]
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out = self.proc.communicate()[0]
                self._output = f"(killed: no exit within 10 s of SIGTERM)\n{out}"
        return self._output


@pytest.fixture
def start_peer(ros_env):
    """Start peers; at teardown each is stopped and must have exited cleanly."""
    peers: list[Peer] = []

    def start(*args: str) -> Peer:
        peers.append(Peer(*args))
        return peers[-1]

    yield start
    for peer in peers:
        out = peer.stop()
        assert peer.proc.returncode == 0, f"peer exited with {peer.proc.returncode}:\n{out}"


@pytest.fixture
def graphs():
    """Sim graphs a test starts (tests/ros/test_sim_graph.py's SimGraph); any still running is stopped."""
    started: list = []
    yield started
    for graph in started:
        if not graph.log.closed:
            graph.stop()
