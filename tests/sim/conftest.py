"""Shared fixtures for the LIBERO tests: envs are expensive to build (~10 s each), so build few."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("LP_NUM_THREADS", "1")

import pytest  # noqa: E402

SUITE = "libero_spatial"
TASK = 0


@pytest.fixture(scope="session")
def state_env():
    from ript.sim.env import LiberoEnv, LiberoEnvConfig

    env = LiberoEnv(LiberoEnvConfig(suite=SUITE, task_id=TASK, render=False))
    yield env
    env.close()


@pytest.fixture(scope="session")
def eval_states():
    from ript.sim.env import benchmark_init_states

    return benchmark_init_states(SUITE, TASK)


@pytest.fixture(scope="session")
def vector_env():
    """Two state-only workers, shared by the vector-env and evaluation tests."""
    from ript.sim.env import LiberoEnvConfig
    from ript.sim.vector_env import VectorEnv

    vec = VectorEnv(2, LiberoEnvConfig(suite=SUITE, render=False), step_timeout_s=180)
    yield vec
    vec.close()
