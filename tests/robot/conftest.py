"""Fixtures for the robot tests: robot-side nodes as subprocesses started the way `ript up` starts
them, on this test's DDS domain (`ros_env`/`ros` from tests/conftest.py)."""

from __future__ import annotations

import pytest
from node_process import NodeProcess


@pytest.fixture
def start_node(ros_env, tmp_path):
    """start_node(module, **params); each node must exit cleanly on SIGINT at teardown."""
    started: list[NodeProcess] = []

    def start(module: str, **params) -> NodeProcess:
        started.append(NodeProcess(module, tmp_path / f"{module.rsplit('.', 1)[-1]}{len(started)}.log", **params))
        return started[-1]

    yield start
    for node in started:
        assert node.stop() == 0, f"{node.log_path.name} did not exit cleanly:\n{node.output()}"
