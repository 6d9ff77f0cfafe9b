"""The `main()` every ript node shares: init, spin one node, and tear down in the right order
(executor, then the node's own resources, then the node, then rclpy) even on Ctrl-C."""

from __future__ import annotations

import signal
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def spin_node(make_node: Callable[[], Node], args=None, close: Callable[[Node], None] | None = None) -> None:
    rclpy.init(args=args)
    node = None
    executor = SingleThreadedExecutor()
    try:
        node = make_node()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # Ctrl-C shuts the context down from the signal handler; a callback still running then
        # fails (e.g. publish: "publisher's context is invalid"). That is a shutdown, not a crash.
        if rclpy.ok():
            raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the teardown short
        executor.shutdown()
        if node is not None:
            if close is not None:
                close(node)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
