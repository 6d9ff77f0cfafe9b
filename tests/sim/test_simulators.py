"""A new simulator is a module plus a registration: VectorEnv's workers build envs through
ript.core.registry.SIMULATORS (the worker process is handed the registered target, so a
registration made in the parent reaches a freshly spawned worker)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ript.core.registry import SIMULATORS
from ript.sim.contexts import Context
from ript.sim.env import LiberoEnvConfig
from ript.sim.vector_env import VectorEnv


def test_vector_env_runs_a_registered_simulator_in_its_workers(monkeypatch):
    monkeypatch.setattr(SIMULATORS, "_entries", {**SIMULATORS._entries, "counting": "counting_simulator:make_env"})
    contexts = [Context("toy", task_id=2, init_state=np.zeros(1)), Context("toy", task_id=3, init_state=np.zeros(1))]
    with VectorEnv(2, LiberoEnvConfig(render=False), simulator="counting", step_timeout_s=60) as vec:
        first = vec.reset(contexts)
        assert {obs["pid"] for obs in first} - {os.getpid()} == {obs["pid"] for obs in first}  # in the workers
        actions = np.zeros((2, 7))
        actions[:, 0] = 1.0
        successes = []
        for _ in range(3):
            step = vec.step(actions)
            assert not step.crashed.any()
            successes.append(step.successes.tolist())
    assert successes == [[False, False], [True, False], [True, True]]  # targets 2 and 3


def test_an_unknown_simulator_fails_before_any_worker_starts():
    with pytest.raises(KeyError, match="unknown simulator 'maniskill'; known: libero"):
        VectorEnv(1, simulator="maniskill")
