"""Two LIBERO workers: batched stepping, per-env reset, and crash -> restart -> retry."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from ript.sim.contexts import evaluation_contexts
from ript.sim.env import NOOP_ACTION
from ript.sim.expert import ScriptedExpert
from ript.sim.vector_env import run_episodes

pytestmark = pytest.mark.slow


def test_batched_step_and_per_env_reset(vector_env):
    contexts = evaluation_contexts("libero_spatial", [0], episodes=2)
    obs = vector_env.reset(contexts)
    assert len(obs) == 2
    # Different init states -> different object poses.
    assert np.abs(obs[0]["object_state"] - obs[1]["object_state"]).max() > 1e-3
    actions = np.stack([np.array([0.8, 0, 0, 0, 0, 0, -1.0]), NOOP_ACTION])
    step = vector_env.step(actions)
    assert not step.crashed.any() and not step.dones.any() and not step.successes.any()
    assert step.obs[0]["ee_pos"][0] > obs[0]["ee_pos"][0]  # env 0 moved along +x
    assert abs(step.obs[1]["ee_pos"][0] - obs[1]["ee_pos"][0]) < 5e-3  # env 1 held still
    # Reset env 1 only: env 1 starts over, env 0 keeps its state.
    before = step.obs[0]["sim_state"]
    again = vector_env.reset([contexts[1]], env_ids=[1])[0]
    np.testing.assert_allclose(again["object_state"], obs[1]["object_state"], atol=1e-9)
    step = vector_env.step(NOOP_ACTION[None], env_ids=[0])
    assert step.obs[0]["sim_state"][0] > before[0]  # env 0's sim time advanced from where it was


class KillingExpert(ScriptedExpert):
    """Kills the worker running trial 0 once, mid-episode."""

    def __init__(self, vec) -> None:
        super().__init__()
        self.vec, self.killed, self.begins = vec, False, []

    def begin(self, trial, context, obs):
        self.begins.append(trial)
        super().begin(trial, context, obs)

    def act(self, trials, obs):
        if not self.killed and 0 in trials and self._plans[0].phase == "carry":
            os.kill(self.vec.pid(trials.index(0)), signal.SIGKILL)
            self.killed = True
        return super().act(trials, obs)


def test_crashed_worker_is_restarted_and_trial_retried(vector_env):
    contexts = evaluation_contexts("libero_spatial", [0], episodes=2)
    restarts = vector_env.restarts
    agent = KillingExpert(vector_env)
    results = run_episodes(vector_env, contexts, agent)
    assert agent.killed
    assert vector_env.restarts == restarts + 1
    assert agent.begins.count(0) == 2 and agent.begins.count(1) == 1  # trial 0 restarted from its start
    assert results[0].retries == 1 and results[1].retries == 0
    # The retried trial ran to its real end: the expert solves both (not a silent failure).
    assert [r.success for r in results] == [True, True]


class ThreadCountingExpert(ScriptedExpert):
    """Notes torch's intra-op thread count whenever it is asked for actions."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def act(self, trials, obs):
        import torch

        self.threads.add(torch.get_num_threads())
        return super().act(trials, obs)


def test_agents_query_on_one_thread_and_torchs_setting_is_given_back(vector_env):
    import torch

    context = evaluation_contexts("libero_spatial", [0], episodes=1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        agent = ThreadCountingExpert()
        run_episodes(vector_env, context, agent)
        assert agent.threads == {1} and torch.get_num_threads() == 2
        agent = ThreadCountingExpert()
        run_episodes(vector_env, context, agent, policy_threads=None)
        assert agent.threads == {2}
    finally:
        torch.set_num_threads(before)
