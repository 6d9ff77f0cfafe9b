"""Who can talk to the graph: discovery stays on this machine unless widened, and a graph asked to
run with DDS security (SROS2) on a ROS 2 that cannot enforce it refuses to start instead of
running unprotected (the pip wheels' Fast DDS has no security plugins: docs/ros.md)."""

from __future__ import annotations

import os

import pytest

from ript.cli import up as up_cli


def test_discovery_stays_on_this_machine_unless_widened():
    assert up_cli.graph_environment({"PATH": "/bin"})["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert (
        up_cli.graph_environment({"ROS_AUTOMATIC_DISCOVERY_RANGE": ""})["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    )
    widened = up_cli.graph_environment({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_DOMAIN_ID": "7"})
    assert widened["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET" and widened["ROS_DOMAIN_ID"] == "7"


def test_security_requested_but_not_enforceable_refuses_to_start(ros_env, tmp_path):
    environ = {
        **os.environ,
        **ros_env,
        "ROS_SECURITY_ENABLE": "true",
        "ROS_SECURITY_STRATEGY": "Enforce",
        "ROS_SECURITY_KEYSTORE": str(tmp_path / "keystore"),
    }
    (tmp_path / "keystore" / "enclaves").mkdir(parents=True)
    with pytest.raises(SystemExit, match="cannot create a secured node.*SECURITY"):
        up_cli.check_dds_security(environ)
    up_cli.check_dds_security({**os.environ, **ros_env})  # security not asked for: nothing to check
