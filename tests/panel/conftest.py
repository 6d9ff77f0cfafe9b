"""Fixtures for the operator panel tests: the panel node as a subprocess on a free localhost port,
talking real DDS to an rclpy node in the test (same environment pattern as tests/ros: a unique
ROS_DOMAIN_ID, localhost discovery, logs in a temporary folder)."""
from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

TOKEN = "test-token-0123456789"
_domain_ids = iter(range(random.Random(os.getpid() + 7).randrange(100), 10_000))


@pytest.fixture
def ros_env(monkeypatch, tmp_path_factory) -> dict[str, str]:
    env = {"ROS_DOMAIN_ID": str(next(_domain_ids) % 100 + 1), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "ROS_LOG_DIR": str(tmp_path_factory.getbasetemp() / "ros_logs"),
           "RMW_IMPLEMENTATION": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ROS_STATIC_PEERS", raising=False)
    return env


class Harness:
    """One rclpy context, one node, spun by the test (it plays the trainer and the cameras)."""

    def __init__(self, name: str):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, done, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def ros(ros_env, request):
    harness = Harness(re.sub(r"\W", "_", request.node.name)[:60])
    yield harness
    harness.close()


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
