"""Fixtures for the operator panel tests: the panel node as a subprocess on a free localhost port,
talking real DDS to an rclpy node in the test (`ros_env` and `ros` from tests/conftest.py: a unique
ROS_DOMAIN_ID, localhost discovery, logs in a temporary folder)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest
from node_process import NodeProcess

TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PanelProcess(NodeProcess):
    def __init__(self, run_dir: Path, **params):
        self.port = free_port()
        params = {"port": self.port, "token": TOKEN, "run_dir": str(run_dir), "undo_window_s": 0.5, **params}
        super().__init__("ript.ros.panel_node", run_dir / "panel.log", **params)
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = TOKEN
        self.auth = {"Authorization": f"Bearer {TOKEN}"}
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"panel exited:\n{self.output()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"panel did not come up:\n{self.output()}"
            time.sleep(0.2)


@pytest.fixture
def start_panel(ros_env, tmp_path):
    panels: list[PanelProcess] = []

    def start(**params) -> PanelProcess:
        panels.append(PanelProcess(tmp_path / f"run{len(panels)}", **params))
        return panels[-1]

    yield start
    for panel in panels:
        assert panel.stop() == 0, f"panel did not exit cleanly:\n{panel.output()}"
