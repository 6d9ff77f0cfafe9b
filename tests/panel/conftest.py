"""Fixtures for the operator panel tests: the panel node as a subprocess on a localhost port of its choosing,
talking real DDS to an rclpy node in the test (`ros_env` and `ros` from tests/conftest.py: a unique
ROS_DOMAIN_ID, localhost discovery, logs in a temporary folder)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from node_process import NodeProcess

from ript.panel.address import parse_announcement

TOKEN = "test-token-0123456789"


class PanelProcess(NodeProcess):
    """The panel node on port 0: it picks a free port and announces it (ript.panel.address)."""

    def __init__(self, run_dir: Path, **params):
        params = {"port": 0, "token": TOKEN, "run_dir": str(run_dir), "undo_window_s": 0.5, **params}
        super().__init__("ript.ros.panel_node", run_dir / "panel.log", **params)
        self.token = TOKEN
        self.auth = {"Authorization": f"Bearer {TOKEN}"}
        self.url = ""
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"panel exited:\n{self.output()}"
            if not self.url:
                found = next(filter(None, map(parse_announcement, self.output().splitlines())), None)
                self.url = found[0] if found else ""
            try:
                if self.url and httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
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
