"""Which robot runs the next trial, when one trainer drives several robots.

The trainer asks `free_robots` for the robots that may take a trial now: not running one, not
held, ready (e.g. their nodes subscribe), the one that started a trial least recently first, so
trials spread over the robots. A robot is held for a while after it stopped answering (its trial
timed out: the trial is re-issued to another robot meanwhile) or refused the announced weights.
No rclpy here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass


@dataclass
class _RobotState:
    last_started: float = float("-inf")
    held_until: float = 0.0
    why_held: str = ""


class RobotSchedule:
    def __init__(self, robots: Sequence[str], clock: Callable[[], float] = time.monotonic) -> None:
        if not robots or len(set(robots)) != len(robots):
            raise ValueError(f"robots must be distinct and at least one, got {list(robots)}")
        self.robots = list(robots)
        self.clock = clock
        self._state = {robot: _RobotState() for robot in self.robots}

    def __contains__(self, robot: str) -> bool:
        return robot in self._state

    def free_robots(self, busy: Collection[str], ready: Callable[[str], bool] = lambda robot: True) -> list[str]:
        """Robots that may take a trial now, the least recently started first."""
        now = self.clock()
        free = [
            robot
            for robot in self.robots
            if robot not in busy and self._state[robot].held_until <= now and ready(robot)
        ]
        return sorted(free, key=lambda robot: self._state[robot].last_started)

    def started(self, robot: str) -> None:
        self._state[robot].last_started = self.clock()

    def hold(self, robot: str, seconds: float, why: str) -> None:
        """No trial for `robot` during the next `seconds`."""
        state = self._state[robot]
        state.held_until, state.why_held = self.clock() + seconds, why

    def held(self, robot: str) -> str:
        """Why `robot` is held now ('' when it is not)."""
        state = self._state[robot]
        return state.why_held if state.held_until > self.clock() else ""
