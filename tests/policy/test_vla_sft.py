"""SFT from HDF5 demos: featurisation through policy_observation, overfitting one demo, scale calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vla_helpers import INSTRUCTION, tiny_config, write_demo_file

from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_LANGUAGE, OBS_STATE
from ript.policies.libero_data import policy_observation, read_demos, state_dim
from ript.policies.sft import DemoDataset, SFTConfig, action_chunks, calibrate_scale, train_sft
from ript.policies.vla import build_policy

EMBEDDINGS = {INSTRUCTION: np.random.default_rng(0).normal(size=384).astype(np.float32)}


def test_action_chunks_pad_with_last_action_and_mask():
    actions = np.arange(10, dtype=np.float32).reshape(5, 2)
    chunks, mask = action_chunks(actions, 3)
    assert chunks.shape == (5, 3, 2)
    np.testing.assert_array_equal(chunks[3, :, 0], [6, 8, 8])
    np.testing.assert_array_equal(mask[3], [True, True, False])


def test_dataset_featurises_like_policy_observation(tmp_path):
    demos = read_demos(write_demo_file(tmp_path))
    config = tiny_config("regression", input_mode="image")
    dataset = DemoDataset(demos, config, EMBEDDINGS)
    reference = policy_observation(
        {k: v for k, v in demos[0].obs.items() if k != "object_state"},
        EMBEDDINGS[INSTRUCTION],
        image_size=config.image_size,
    )
    for key in (OBS_STATE, OBS_IMAGE_AGENTVIEW, OBS_LANGUAGE):
        np.testing.assert_array_equal(dataset.obs[key].numpy(), reference[key])
    assert dataset.obs[OBS_STATE].shape[1] == config.state_dim  # image mode: proprio only
    np.testing.assert_allclose(dataset.chunks[:, 0].numpy(), demos[0].actions, rtol=1e-6)
    stats = dataset.stats()
    assert set(stats) >= {"state_mean", "state_std", "action_min", "action_max"}
    # State mode appends the object poses.
    assert DemoDataset(demos, tiny_config("regression"), EMBEDDINGS).obs[OBS_STATE].shape[1] == state_dim(7)


@pytest.mark.parametrize("head", ["regression", "tokenized"])
def test_sft_overfits_one_demo(tmp_path, head):
    torch.manual_seed(0)
    demos = read_demos(write_demo_file(tmp_path))
    config = tiny_config(head, hidden_dim=64)
    policy = build_policy(config)
    dataset = DemoDataset(demos, config, EMBEDDINGS)
    sft = SFTConfig(steps=300, tokenizer_steps=300, batch_size=32, learning_rate=2e-3, seed=0)
    history = train_sft(policy, dataset, sft, progress=False)
    losses = [row["loss/sft"] for row in history if row["phase"] == "sft"]
    first, last = np.mean(losses[:5]), np.mean(losses[-20:])
    assert first / last > 10.0, f"SFT loss only fell {first:.4f} -> {last:.4f}"
    # The trained policy reproduces the demo actions (greedy / mean).
    obs, chunks, mask = dataset.batch(torch.arange(len(dataset)), policy.device)
    error = (policy.act(obs) - chunks).abs().mean(-1)[mask].mean()
    assert float(error) < 0.15
    # State normalisation from the data is in the model (and so in checkpoints and ONNX graphs).
    torch.testing.assert_close(policy.encoder.state.state_mean, dataset.obs[OBS_STATE].float().mean(0))


def test_calibrate_scale_fits_nll_with_mean_frozen(tmp_path):
    torch.manual_seed(0)
    demos = read_demos(write_demo_file(tmp_path))
    config = tiny_config("regression", regression={"loss": "l1", "init_scale": 0.5})
    policy = build_policy(config)
    dataset = DemoDataset(demos, config, EMBEDDINGS)
    train_sft(policy, dataset, SFTConfig(steps=100, batch_size=32, learning_rate=2e-3), progress=False)
    obs, chunks, mask = dataset.batch(torch.arange(len(dataset)), policy.device)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    mean_before, scale_before = policy.regression_params(obs)
    history = calibrate_scale(policy, dataset, SFTConfig(steps=150, batch_size=32, learning_rate=1e-2), progress=False)
    assert history[-1]["loss/scale"] < history[0]["loss/scale"] - 0.5
    changed = {k for k, v in policy.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("head.scale_head.") for k in changed), changed
    with torch.no_grad():
        mean_after, scale_after = policy.regression_params(obs)
    torch.testing.assert_close(mean_after, mean_before.detach())
    # Laplace MLE of b is the mean absolute residual: the calibrated scale should be near it.
    residual = (chunks - mean_after).abs()[mask].mean()
    assert float(scale_after.mean()) < float(scale_before.detach().mean())
    assert 0.3 < float(scale_after[mask].mean() / residual) < 3.0
    assert all(p.requires_grad for p in policy.parameters())


def test_image_mode_trains_end_to_end(tmp_path):
    demos = read_demos(write_demo_file(tmp_path))
    config = tiny_config("regression", input_mode="image")
    policy = build_policy(config)
    dataset = DemoDataset(demos, config, EMBEDDINGS)
    history = train_sft(
        policy, dataset, SFTConfig(steps=30, batch_size=8, learning_rate=2e-3, image_shift=2), progress=False
    )
    losses = [row["loss/sft"] for row in history]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_sft_fits_the_demo_gripper_switch_as_a_bernoulli(tmp_path):
    # The synthetic demo opens (-1) for its first half and closes (+1) after: a BCE on the gripper
    # logit must reproduce the switch in the mode and make the sampled gripper nearly certain.
    torch.manual_seed(0)
    demos = read_demos(write_demo_file(tmp_path))
    config = tiny_config("regression", hidden_dim=64)
    assert config.regression.gripper == "bernoulli"
    policy = build_policy(config)
    dataset = DemoDataset(demos, config, EMBEDDINGS)
    train_sft(policy, dataset, SFTConfig(steps=300, batch_size=32, learning_rate=2e-3, seed=0), progress=False)
    obs, chunks, mask = dataset.batch(torch.arange(len(dataset)), policy.device)
    target = chunks[..., 6]
    assert set(target.unique().tolist()) == {-1.0, 1.0}
    agree = (policy.act(obs)[..., 6] == target)[mask].float().mean()
    assert float(agree) > 0.95
    sampled = policy.sample(obs, generator=torch.Generator().manual_seed(0)).actions[..., 6]
    assert float((sampled == target)[mask].float().mean()) > 0.9
