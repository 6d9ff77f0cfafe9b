"""A simulator of the tests' own, registered by name: it counts steps and succeeds when the summed
x actions pass the context's task id. No LIBERO: what VectorEnv needs of an env is this much."""

from __future__ import annotations

import os


class CountingEnv:
    def __init__(self, target: int) -> None:
        self.target, self.total, self.steps = target, 0.0, 0

    def reset(self, init_state=None) -> dict:
        self.total, self.steps = 0.0, 0
        return {"steps": 0, "pid": os.getpid()}

    def step(self, action):
        self.total += float(action[0])
        self.steps += 1
        success = self.total >= self.target
        return {"steps": self.steps, "pid": os.getpid()}, float(success), success, {"success": success}

    def close(self) -> None:
        pass


def make_env(base_config, context) -> CountingEnv:
    return CountingEnv(target=context.task_id)
