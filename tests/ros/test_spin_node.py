"""spin_node, the main() of every ript node: a callback that fails because Ctrl-C already shut the
context down is a clean exit; a callback that fails while the context is up is a crash."""

from __future__ import annotations

import pytest
import rclpy
from rclpy.node import Node
from std_msgs.msg import String

from ript.ros.ros_main import spin_node


class _Publisher(Node):
    def __init__(self, shut_down_first: bool):
        super().__init__("spin_node_probe")
        self.pub = self.create_publisher(String, "probe", 1)
        self.shut_down_first = shut_down_first
        self.closed = False
        self.create_timer(0.01, self._tick)

    def _tick(self):
        if self.shut_down_first:
            rclpy.shutdown()  # what the SIGINT handler does while a callback runs
        self.pub.publish(String(data="x"))
        raise RuntimeError("a real bug in a callback")


def test_callback_racing_the_shutdown_is_a_clean_exit(ros_env):
    nodes = []
    spin_node(
        lambda: nodes.append(_Publisher(shut_down_first=True)) or nodes[-1],
        close=lambda node: setattr(node, "closed", True),
    )
    assert nodes[0].closed and not rclpy.ok()


def test_callback_failing_while_running_is_a_crash(ros_env):
    nodes = []
    with pytest.raises(RuntimeError, match="real bug"):
        spin_node(
            lambda: nodes.append(_Publisher(shut_down_first=False)) or nodes[-1],
            close=lambda node: setattr(node, "closed", True),
        )
    assert nodes[0].closed and not rclpy.ok()  # torn down all the same
