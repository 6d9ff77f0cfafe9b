"""Fixtures shared by every test that talks real DDS (tests/ros, tests/panel).

Each test gets its own ROS_DOMAIN_ID (and discovery limited to localhost), so tests don't hear each
other and other test runs on the same machine are unlikely to; ROS logs go to a temporary directory.
Subprocesses started by a test inherit the same environment. rclpy is imported lazily so that
tests without ROS never load it.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# Domain ids 1..100 are safe for Fast DDS port mapping; start at a random point so two test runs
# on one machine are unlikely to share a domain, then hand out distinct ids within this run.
_first_domain = random.Random(os.getpid()).randrange(100)
_domain_ids = ((_first_domain + i) % 100 + 1 for i in itertools.count())


@pytest.fixture(scope="session")
def ros_log_dir(tmp_path_factory) -> Path:
    # rcl configures logging once per process, so one directory serves the whole session.
    return tmp_path_factory.mktemp("ros_logs")


@pytest.fixture
def ros_env(monkeypatch, ros_log_dir) -> dict[str, str]:
    """A fresh domain id, localhost-only discovery and a temporary log dir, for this process and
    the processes it starts."""
    env = {
        "ROS_DOMAIN_ID": str(next(_domain_ids)),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOG_DIR": str(ros_log_dir),
        "RMW_IMPLEMENTATION": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ROS_STATIC_PEERS", raising=False)
    return env


class RosHarness:
    """One rclpy context with one node and a single-threaded executor, spun by the test."""

    def __init__(self, name: str):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Spin until done() is true; False when timeout_s passes first."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def close(self) -> None:
        # Executor, then node, then the context: shutting the context down first leaves the
        # executor waiting on destroyed entities.
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


@pytest.fixture
def ros(ros_env, request):
    harness = RosHarness(re.sub(r"\W", "_", request.node.name)[:60])
    yield harness
    harness.close()


@pytest.fixture
def one_torch_thread():
    """torch on one thread: on a small shared CPU, two OpenMP threads competing with another busy
    process made tiny training steps ~20x slower than one thread."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def browser():
    """Debian's headless Chromium driven by Selenium (no browser download); the test module skips
    itself when chromium/chromedriver are missing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ript-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1180,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
