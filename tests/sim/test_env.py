"""LiberoEnv on real LIBERO: create, reset to a benchmark init state, step, success check."""

from __future__ import annotations

import numpy as np
import pytest

from ript.policies.libero_data import state_dim
from ript.sim.contexts import evaluation_contexts
from ript.sim.env import NOOP_ACTION, LiberoEnv, LiberoEnvConfig
from ript.sim.expert import ExpertConfig, ScriptedExpert

pytestmark = pytest.mark.slow


def test_reset_to_init_state_and_step(state_env, eval_states):
    obs = state_env.reset(init_state=eval_states[0])
    assert obs["ee_pos"].shape == (3,) and obs["ee_ori"].shape == (3,) and obs["joint_states"].shape == (7,)
    assert obs["gripper_states"].shape == (2,) and obs["ee_states"].shape == (6,)
    assert obs["object_state"].shape == (state_env.config.object_state_dim,)
    assert "agentview_rgb" not in obs  # state-only: nothing rendered
    # The objects of interest (bowl, plate) sit where the init state put them, after settling.
    model = state_env.sim.model._model
    body = state_env.robosuite_env.obj_body_id["akita_black_bowl_1"]
    qpos_address = model.jnt_qposadr[model.body_jntadr[body]]  # the bowl's free joint: xyz first
    # x, y only: init states hold objects slightly above their support and they drop while settling.
    np.testing.assert_allclose(obs["object_state"][:2], eval_states[0][1 + qpos_address : 3 + qpos_address], atol=0.01)
    obs2, reward, done, info = state_env.step(np.array([0.5, 0, 0, 0, 0, 0, -1.0]))
    assert obs2["ee_pos"][0] > obs["ee_pos"][0]  # +x command moves the hand along +x
    assert reward == 0.0 and not done and info["steps"] == 1


def test_same_init_state_and_actions_give_the_same_trajectory(state_env, eval_states):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(15, 7))
    finals = []
    for _ in range(2):
        state_env.reset(init_state=eval_states[3])
        for action in actions:
            obs, *_ = state_env.step(action)
        finals.append(state_env.get_state())
    np.testing.assert_array_equal(finals[0], finals[1])


def test_an_episode_does_not_depend_on_the_one_before(state_env, eval_states):
    """The same init state and actions in a fresh env and in one that ran other episodes: the same
    episode, bit for bit (rollouts that ran on other workers, or again after a crash, are compared)."""
    rng = np.random.default_rng(1)
    actions, other = rng.uniform(-1, 1, size=(120, 7)), rng.uniform(-1, 1, size=(120, 7))
    state_env.reset(init_state=eval_states[5])
    for action in other:
        state_env.step(action)
    fresh = LiberoEnv(LiberoEnvConfig(suite=state_env.config.suite, task_id=state_env.config.task_id, render=False))
    try:
        finals = []
        for env in (state_env, fresh):
            env.reset(init_state=eval_states[3])
            for action in actions:
                env.step(action)
            finals.append(env.get_state())
    finally:
        fresh.close()
    np.testing.assert_array_equal(finals[0], finals[1])


def test_seeded_fresh_resets_are_deterministic(state_env):
    a, b, c = (state_env.sample_init_state(seed) for seed in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[1:] - c[1:]).max() > 1e-3


def test_fresh_placements_put_objects_where_the_benchmark_does():
    """libero_spatial task 9: 'pick up the black bowl on the wooden cabinet'. Every benchmark state
    has that bowl on the cabinet's top; a fresh placement must too (a soft reset used to place it
    ~0.9 m up and beside the cabinet, so it fell onto the table: training never saw the task's layout)."""
    from ript.sim.env import benchmark_init_states

    env = LiberoEnv(LiberoEnvConfig(suite="libero_spatial", task_id=9, render=False))
    try:

        def bowl_after_reset(state: np.ndarray) -> np.ndarray:
            env.reset(init_state=state)  # settled: where it rests when the episode starts
            body = env.robosuite_env.obj_body_id["akita_black_bowl_1"]
            return np.asarray(env.sim.data.body_xpos[body]).copy()

        benchmark = np.array([bowl_after_reset(s) for s in benchmark_init_states("libero_spatial", 9)[:5]])
        fresh = np.array([bowl_after_reset(env.sample_init_state(seed)) for seed in (3, 4, 5)])
        low, high = benchmark.min(axis=0) - 0.03, benchmark.max(axis=0) + 0.03  # on the cabinet top
        assert ((fresh >= low) & (fresh <= high)).all(), (fresh.round(3), benchmark.round(3))
        assert np.abs(fresh[0] - fresh[1]).max() > 1e-3  # still a random placement, not a copy
        obs = env.reset(seed=3)  # reset(seed=...) draws the same way
        np.testing.assert_allclose(obs["object_state"][:3], fresh[0], atol=1e-6)
    finally:
        env.close()


def test_noop_episode_fails(state_env, eval_states):
    state_env.reset(init_state=eval_states[1])
    done, steps = False, 0
    while not done:
        _, reward, done, info = state_env.step(NOOP_ACTION)
        steps += 1
    assert steps == state_env.config.episode_steps == 220
    assert not info["success"] and info["truncated"] and reward == 0.0
    assert not state_env.check_success()


@pytest.mark.parametrize("memoryless", [False, True], ids=["timed", "memoryless"])
def test_scripted_expert_succeeds(state_env, memoryless):
    context = evaluation_contexts("libero_spatial", [0], episodes=1)[0]
    expert = ScriptedExpert(ExpertConfig(memoryless=memoryless))
    obs = state_env.reset(init_state=context.init_state)
    assert not state_env.check_success()
    expert.begin(0, context, obs)
    done = False
    while not done:
        obs, reward, done, info = state_env.step(expert.act_one(0, obs))
    assert info["success"] and reward == 1.0 and info["steps"] < 220
    assert state_env.check_success()


@pytest.mark.parametrize("memoryless", [False, True], ids=["timed", "memoryless"])
def test_memoryless_expert_acts_on_the_observation_alone(state_env, memoryless):
    """At every step of an episode, an expert that has seen the whole episode and a fresh one that
    sees only the current observation command the same action; the timed expert does not (its
    phase and timers are state of its own), which is what this test must be able to tell."""
    context = evaluation_contexts("libero_spatial", [0], episodes=1)[0]
    config = ExpertConfig(memoryless=memoryless)
    expert = ScriptedExpert(config)
    obs = state_env.reset(init_state=context.init_state)
    expert.begin(0, context, obs)
    disagreements, done = 0, False
    while not done:
        action = expert.act_one(0, obs)
        fresh = ScriptedExpert(config)
        fresh.begin(0, context, obs)
        disagreements += not np.allclose(fresh.act_one(0, obs), action)
        obs, _, done, _ = state_env.step(action)
    assert (disagreements == 0) == memoryless, f"{disagreements} steps where history changed the action"


def test_rendered_env_gives_upright_images(eval_states):
    from robosuite.utils.camera_utils import get_camera_transform_matrix, project_points_from_world_to_camera

    from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST, OBS_STATE
    from ript.policies.libero_data import policy_observation

    size = 64
    env = LiberoEnv(LiberoEnvConfig(render=True, image_size=size))
    try:
        obs = env.reset(init_state=eval_states[0])
        assert obs["agentview_rgb"].shape == (size, size, 3) and obs["agentview_rgb"].dtype == np.uint8
        assert obs["eye_in_hand_rgb"].shape == (size, size, 3)
        policy_obs = policy_observation(obs)
        assert policy_obs[OBS_STATE].shape == (state_dim(env.config.object_state_dim),)
        image = policy_obs[OBS_IMAGE_AGENTVIEW]
        assert policy_obs[OBS_IMAGE_WRIST].shape == (size, size, 3)
        # Upright: the camera model projects the (dark) black bowl to where the upright image shows
        # dark pixels, and the brighter table fills the bottom rows while the wall is at the top.
        matrix = get_camera_transform_matrix(env.sim, "agentview", size, size)
        row, col = project_points_from_world_to_camera(obs["object_state"][None, :3], matrix, size, size)[0]
        patch = image[max(row - 2, 0) : row + 3, max(col - 2, 0) : col + 3].mean()
        assert patch < image.mean(), "the bowl should be darker than the scene average at its projection"
        flipped = image[::-1]
        flipped_patch = flipped[max(row - 2, 0) : row + 3, max(col - 2, 0) : col + 3].mean()
        assert patch < flipped_patch
    finally:
        env.close()
