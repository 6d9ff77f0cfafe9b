"""The LIBERO HDF5 contract: round trip, official-layout files, and the policy observation."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST, OBS_LANGUAGE, OBS_STATE
from ript.policies.libero_data import Demo, policy_observation, read_demos, state_dim, upright, write_demos


def _demo(length: int, images: bool = True, seed: int = 0) -> Demo:
    rng = np.random.default_rng(seed)
    obs = {
        "joint_states": rng.normal(size=(length, 7)),
        "gripper_states": rng.normal(size=(length, 2)),
        "ee_pos": rng.normal(size=(length, 3)),
        "ee_ori": rng.normal(size=(length, 3)),
        "object_state": rng.normal(size=(length, 21)),
    }
    obs["ee_states"] = np.concatenate([obs["ee_pos"], obs["ee_ori"]], axis=1)
    if images:
        obs["agentview_rgb"] = rng.integers(0, 256, size=(length, 16, 16, 3), dtype=np.uint8)
        obs["eye_in_hand_rgb"] = rng.integers(0, 256, size=(length, 16, 16, 3), dtype=np.uint8)
    rewards = np.zeros(length)
    rewards[-1] = 1
    return Demo(
        obs,
        rng.uniform(-1, 1, size=(length, 7)),
        rng.normal(size=(length, 92)),
        rewards,
        rewards.copy(),
        "pick up the black bowl",
        "a_task",
        {"seed": seed},
    )


def test_round_trip(tmp_path):
    demos = [_demo(5, seed=0), _demo(12, images=False, seed=1)]
    path = write_demos(tmp_path / "a_task_demo.hdf5", demos, {"suite": "libero_spatial", "task_id": 0})
    back = read_demos(path)
    assert len(back) == 2 and len(read_demos(path, max_demos=1)) == 1
    for original, loaded in zip(demos, back):
        assert loaded.obs.keys() == original.obs.keys()
        for key in original.obs:
            np.testing.assert_array_equal(loaded.obs[key], original.obs[key])
            assert loaded.obs[key].dtype == original.obs[key].dtype
        for name in ("actions", "states", "rewards", "dones"):
            np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
        assert loaded.instruction == original.instruction and loaded.task_name == "a_task"
        assert loaded.attrs["seed"] == original.attrs["seed"]
    with h5py.File(path) as f:
        assert json.loads(f["data"].attrs["problem_info"])["language_instruction"] == "pick up the black bowl"
        assert json.loads(f["data"].attrs["env_args"])["suite"] == "libero_spatial"
        assert f["data/demo_1"].attrs["num_samples"] == 12


def test_reads_official_layout(tmp_path):
    # An official LIBERO file: instruction only in data.attrs['problem_info'], demos numbered
    # without zero padding (demo_10 must come after demo_2), no per-demo instruction attrs.
    path = tmp_path / "KITCHEN_SCENE3_turn_on_the_stove_demo.hdf5"
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["problem_info"] = json.dumps(
            {"problem_name": "libero_kitchen", "language_instruction": "turn on the stove"}
        )
        data.attrs["env_args"] = json.dumps({"env_name": "Libero_Kitchen"})
        for i in (0, 2, 10):
            group = data.create_group(f"demo_{i}")
            group.create_dataset("obs/agentview_rgb", data=np.zeros((i + 1, 8, 8, 3), np.uint8))
            group.create_dataset("obs/ee_pos", data=np.zeros((i + 1, 3)))
            group.create_dataset("actions", data=np.zeros((i + 1, 7)))
            group.create_dataset("states", data=np.zeros((i + 1, 40)))
            group.create_dataset("rewards", data=np.zeros(i + 1))
            group.create_dataset("dones", data=np.zeros(i + 1))
    demos = read_demos(path)
    assert [len(d) for d in demos] == [1, 3, 11]
    assert all(d.instruction == "turn on the stove" for d in demos)
    assert demos[0].task_name == "KITCHEN_SCENE3_turn_on_the_stove"


def test_policy_observation_features_and_flip():
    demo = _demo(4)
    out = policy_observation(demo.obs, instruction_embedding=np.ones(384), image_size=8)
    assert out[OBS_STATE].shape == (4, state_dim(21)) and out[OBS_STATE].dtype == np.float32
    np.testing.assert_allclose(out[OBS_STATE][:, :3], demo.obs["ee_pos"], rtol=1e-6)
    np.testing.assert_allclose(out[OBS_STATE][:, 6:8], demo.obs["gripper_states"], rtol=1e-6)
    assert out[OBS_IMAGE_AGENTVIEW].shape == (4, 8, 8, 3) and out[OBS_IMAGE_WRIST].dtype == np.uint8
    assert out[OBS_LANGUAGE].shape == (4, 384)
    # One step gives the same features as the same row of the stack; the flip is vertical only.
    step = policy_observation({k: v[2] for k, v in demo.obs.items()})
    np.testing.assert_array_equal(step[OBS_STATE], policy_observation(demo.obs)[OBS_STATE][2])
    np.testing.assert_array_equal(step[OBS_IMAGE_AGENTVIEW][0], demo.obs["agentview_rgb"][2][-1])
    np.testing.assert_array_equal(upright(demo.obs["agentview_rgb"])[:, :, 0], demo.obs["agentview_rgb"][:, ::-1, 0])


def test_state_features_give_object_positions_from_the_gripper():
    ee = np.array([0.1, -0.2, 1.0])
    objects = np.zeros(21)
    objects[0:7] = [0.3, 0.1, 0.9, 0, 0, 0, 1]  # bowl
    objects[7:14] = [-0.1, 0.0, 0.95, 0, 0, 0, 1]  # plate; the third slot is padding
    obs = {"ee_pos": ee, "ee_ori": np.zeros(3), "gripper_states": np.array([0.04, -0.04]), "object_state": objects}
    features = policy_observation(obs)[OBS_STATE]
    assert features.shape == (state_dim(21),) == (8 + 21 + 9,)
    np.testing.assert_allclose(features[8:29], objects, rtol=1e-6)
    np.testing.assert_allclose(features[29:], [0.2, 0.3, -0.1, -0.2, 0.2, -0.05, 0, 0, 0], atol=1e-6)
    # image mode has no object poses, so no relative features either
    assert policy_observation({k: v for k, v in obs.items() if k != "object_state"})[OBS_STATE].shape == (8,)


def test_demo_validates_lengths():
    demo = _demo(3)
    with pytest.raises(ValueError, match="mismatched"):
        Demo(demo.obs, demo.actions[:2], demo.states, demo.rewards, demo.dones, "x")
