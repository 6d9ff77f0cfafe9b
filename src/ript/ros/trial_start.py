"""Hearing of trials on /ript/trial_start, for every node that takes part in one (policy node,
robot bridges, emulator).

The trainer publishes TrialStart latched (transient local, the newest one), so a node that starts
or restarts while a trial runs still hears of it. Such a node cannot serve that trial: the policy
node has no record of its first steps, a bridge does not know where the episode stood. Waiting for
the trainer's `trial_timeout_s` (minutes on a robot) would waste the trial's time, so the node asks
the trainer to abort it at once (/ript/abort_trial, with the reason) and the group gets another
trial. "Started before this node" is judged by the trial's stamp against the node's own start: both
come from the same clock on one machine (keep the clocks of a multi-machine graph in sync).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ript_interfaces.msg import TrialStart
from ript_interfaces.srv import AbortTrial

TRIAL_START_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
"""Publisher (trainer) and participants alike; a volatile subscriber (the panel, a test) is compatible."""
ABORT_RETRY_S = 10.0
"""How long a late joiner keeps trying to reach /ript/abort_trial (service discovery takes a moment)."""


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class TrialStartListener:
    """Calls `on_start(msg)` for each trial announced after this node started; asks the trainer to
    abort a trial announced before (a latched start this node missed)."""

    def __init__(self, node: Node, on_start: Callable[[TrialStart], None]) -> None:
        self.node, self.on_start = node, on_start
        self.joined_ns = node.get_clock().now().nanoseconds
        self.abort_client = node.create_client(AbortTrial, "ript/abort_trial")
        self._aborts: list[tuple[AbortTrial.Request, float]] = []
        node.create_subscription(TrialStart, "ript/trial_start", self._on_start, TRIAL_START_QOS)
        self._timer = node.create_timer(0.2, self._send_aborts)

    def _on_start(self, msg: TrialStart) -> None:
        started_ns = stamp_ns(msg.stamp)
        if started_ns == 0 or started_ns >= self.joined_ns:
            self.on_start(msg)
            return
        reason = (
            f"{self.node.get_name()} started {(self.joined_ns - started_ns) * 1e-9:.1f} s after trial "
            f"{msg.trial_id} began and cannot serve it"
        )
        self.node.get_logger().warn(f"{reason}: asking the trainer to abort it")
        self._aborts.append(
            (AbortTrial.Request(trial_id=msg.trial_id, reason=reason), time.monotonic() + ABORT_RETRY_S)
        )
        self._send_aborts()

    def _send_aborts(self) -> None:
        if not self._aborts:
            return
        if self.abort_client.service_is_ready():
            for request, _ in self._aborts:
                self.abort_client.call_async(request)  # the trainer judges it (a trial already over: refused)
            self._aborts.clear()
            return
        now = time.monotonic()
        for request, _deadline in [a for a in self._aborts if a[1] <= now]:
            self.node.get_logger().error(
                f"could not reach ript/abort_trial to abort {request.trial_id}; the trainer's trial timeout will end it"
            )
        self._aborts = [a for a in self._aborts if a[1] > now]
