"""DAgger pieces on real LIBERO: the expert recovers a dropped object (so it can label states a
learner drove it into), the labelling agent executes the learner but records the expert, and
`ript record-demos --learner` writes every episode, failures included, as readable demos."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ript.sim.contexts import evaluation_contexts
from ript.sim.expert import ExpertConfig, ScriptedExpert
from ript.sim.record import LabellingAgent
from ript.sim.vector_env import run_episodes

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("memoryless", [False, True], ids=["timed", "memoryless"])
def test_expert_regrasps_an_object_it_dropped(memoryless):
    """The expert drops the bowl mid-carry and picks it up again (not necessarily placing it well:
    a bowl regrasped after a fall can sit tilted in the fingers)."""
    from ript.sim.env import LiberoEnv, LiberoEnvConfig

    env = LiberoEnv(LiberoEnvConfig(suite="libero_spatial", task_id=0, render=False, max_steps=400))
    try:
        context = evaluation_contexts("libero_spatial", [0], episodes=1)[0]
        expert = ScriptedExpert(ExpertConfig(memoryless=memoryless))
        obs = env.reset(init_state=context.init_state)
        expert.begin(0, context, obs)
        while expert._plans[0].phase != "carry":
            obs, _, done, _ = env.step(expert.act_one(0, obs))
            assert not done
        lifted = obs["object_state"][2]
        phases = []
        for _ in range(15):  # open the gripper mid-carry: the bowl falls
            action = expert.act_one(0, obs)
            phases.append(expert._plans[0].phase)
            action[6] = -1.0
            obs, _, _, _ = env.step(action)
        assert obs["object_state"][2] < lifted - 0.05, "the bowl did not fall"
        rested = obs["object_state"][2]
        heights, done = [], False
        while not done and "release" not in phases:
            obs, _, done, _ = env.step(expert.act_one(0, obs))
            phases.append(expert._plans[0].phase)
            heights.append(obs["object_state"][2])
        # Back to the grasp (approach passes in one step when the bowl falls right below it), and
        # carried again: the bowl left the table a second time.
        assert "close" in phases and "carry" in phases[phases.index("close") :], phases
        assert max(heights) > rested + 0.1, "the expert did not pick the dropped bowl up again"
    finally:
        env.close()


class _Constant:
    """A learner that always commands the same action (and logs what it was asked)."""

    def __init__(self, action):
        self.action = np.asarray(action, dtype=np.float64)
        self.begun, self.ended = [], []

    def begin(self, trial, context, obs):
        self.begun.append(trial)

    def act(self, trials, obs):
        return np.tile(self.action, (len(trials), 1))

    def end(self, trial, result):
        self.ended.append(trial)


def test_labelling_agent_executes_the_learner_and_records_the_expert(vector_env):
    contexts = evaluation_contexts("libero_spatial", [0], episodes=2)
    upward = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]  # rise with a closed gripper: never succeeds
    learner = _Constant(upward)
    agent = LabellingAgent(ScriptedExpert(), learner, beta=0.0)
    results = run_episodes(vector_env, contexts, agent)
    assert sorted(learner.begun) == sorted(learner.ended) == [0, 1]
    for trial, result in enumerate(results):
        assert not result.success and result.steps == 220
        _, steps = agent.finished[trial]
        labels = np.stack(steps["actions"])
        assert labels.shape == (220, 7)
        # The expert's labels, not the executed actions: while the learner drove the arm up with the
        # gripper closed, the expert (approaching, until its 40-step phase timeout) wanted it down
        # to the bowl with the gripper open.
        heights = np.array([o["ee_pos"][2] for o in steps["obs"]])
        assert heights[40] > heights[0] + 0.1
        assert np.all(labels[:, 3:6] == 0) and np.all(labels[:40, 6] == -1.0) and np.all(labels[20:40, 2] < -0.5)

    # beta = 1: the expert drives, the learner is only asked, and the task is solved.
    agent = LabellingAgent(ScriptedExpert(), _Constant(upward), beta=1.0)
    assert all(r.success for r in run_episodes(vector_env, contexts, agent))


def test_record_demos_with_a_learner_keeps_failed_episodes(tmp_path):
    from ript.core.paths import files_under
    from ript.policies.checkpoint import save_checkpoint
    from ript.policies.config import VLAConfig
    from ript.policies.libero_data import read_demos, state_dim
    from ript.policies.vla import build_policy
    from ript.sim.env import LiberoEnvConfig

    config = VLAConfig(
        input_mode="state",
        state_dim=state_dim(LiberoEnvConfig().object_state_dim),
        use_language=False,
        hidden_dim=32,
        num_layers=1,
        num_heads=2,
        chunk_size=4,
        execute_steps=4,
    )
    learner = save_checkpoint(tmp_path / "learner.pt", build_policy(config))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ript.cli.main",
            "record-demos",
            "--tasks",
            "0",
            "--demos",
            "2",
            "--state-only",
            "--learner",
            str(learner),
            "--beta",
            "0",
            "--out",
            str(tmp_path / "dagger"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "learner (beta 0.0) success" in result.stdout and "| 0 | 0/2 | 2 |" in result.stdout
    [file] = files_under([tmp_path / "dagger"], ".hdf5", "demo")
    demos = read_demos(file)
    assert [len(d) for d in demos] == [220, 220]  # the untrained learner failed; both kept
    assert all(np.all(d.actions[:, 3:6] == 0) for d in demos)  # labelled by the expert
