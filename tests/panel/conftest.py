"""Fixtures for the operator panel tests: the panel node as a subprocess on a free localhost port,
talking real DDS to an rclpy node in the test (`ros_env` and `ros` from tests/conftest.py: a unique
ROS_DOMAIN_ID, localhost discovery, logs in a temporary folder)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

TOKEN = "test-token-0123456789"
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PanelProcess:
    def __init__(self, run_dir: Path, **params):
        self.port = free_port()
        params = {"port": self.port, "token": TOKEN, "run_dir": str(run_dir), "undo_window_s": 0.5, **params}
        command = [sys.executable, "-m", "ript_trainer.panel.node", "--ros-args"]
        for key, value in params.items():
            command += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
        self.log_path = run_dir / "panel.log"
        run_dir.mkdir(parents=True, exist_ok=True)
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
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

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT, as `ript up` stops its nodes
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def start_panel(ros_env, tmp_path):
    panels: list[PanelProcess] = []

    def start(**params) -> PanelProcess:
        panels.append(PanelProcess(tmp_path / f"run{len(panels)}", **params))
        return panels[-1]

    yield start
    for panel in panels:
        assert panel.stop() == 0, f"panel did not exit cleanly:\n{panel.output()}"
