"""Checkpoint round trip and corruption detection; ONNX export parity; onnxruntime policy."""

from __future__ import annotations

import pytest
import torch
from vla_helpers import random_obs, tiny_config

from ript.policies.backends import load_policy
from ript.policies.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from ript.policies.onnx_export import export_onnx
from ript.policies.onnx_policy import OnnxPolicy, parity_report
from ript.policies.vla import build_policy

CASES = [("regression", "state"), ("regression", "image"), ("tokenized", "state"), ("tokenized", "image")]


def _trained_looking(config):
    """Random weights with non-trivial normalisation stats (so a lost buffer would show)."""
    torch.manual_seed(0)
    policy = build_policy(config).eval()
    policy.set_normalization(
        {
            "state_mean": torch.randn(config.state_dim).tolist(),
            "state_std": (torch.rand(config.state_dim) + 0.5).tolist(),
        }
    )
    return policy


@pytest.mark.parametrize("head,mode", CASES[:3])
def test_save_load_round_trip(tmp_path, head, mode):
    config = tiny_config(head, mode)
    policy = _trained_looking(config)
    stats = {"state_mean": [0.5] * config.state_dim, "action_min": [-1.0] * 7}
    path = save_checkpoint(
        tmp_path / "policy.pt",
        policy,
        stats=stats,
        instruction_embeddings={"go": [0.1] * 384},
        metadata={"stage": "sft"},
    )
    loaded, payload = load_checkpoint(path)
    assert loaded.config == config
    assert payload["stats"] == stats and payload["metadata"]["stage"] == "sft"
    assert list(payload["instruction_embeddings"]) == ["go"]
    obs = random_obs(config)
    gen = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    a, b = policy.sample(obs, generator=gen()), loaded.sample(obs, generator=gen())
    torch.testing.assert_close(a.actions, b.actions)
    torch.testing.assert_close(a.log_probs, b.log_probs)
    assert isinstance(load_policy(path, backend="torch", device="cpu"), type(policy))


def test_checkpoint_keeps_the_exploration_knobs_as_set(tmp_path):
    policy = build_policy(tiny_config("tokenized"))
    policy.temperature, policy.top_k = 0.5, 3
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "tok.pt", policy))
    assert (loaded.temperature, loaded.top_k) == (0.5, 3)
    policy = build_policy(tiny_config("regression"))
    policy.exploration_scale = 2.5
    assert load_checkpoint(save_checkpoint(tmp_path / "reg.pt", policy))[0].exploration_scale == 2.5


def test_corrupt_and_truncated_checkpoints_fail_clearly(tmp_path):
    path = save_checkpoint(tmp_path / "policy.pt", build_policy(tiny_config()))
    data = path.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint(tmp_path / "truncated.pt")
    flipped = bytearray(data)
    flipped[-100] ^= 0xFF
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint(tmp_path / "flipped.pt")
    (tmp_path / "other.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pt")
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file"


@pytest.mark.parametrize("head,mode", CASES)
def test_onnx_parity(tmp_path, head, mode):
    config = tiny_config(head, mode)
    if head == "tokenized":
        config.tokenized.top_k = 8
        config.tokenized.temperature = 0.9
    policy = _trained_looking(config)
    save_checkpoint(tmp_path / "policy.pt", policy)
    onnx_policy = OnnxPolicy(export_onnx(tmp_path / "policy.pt", tmp_path / "onnx"), threads=1)
    assert onnx_policy.providers[-1] == "CPUExecutionProvider"
    report = parity_report(policy, onnx_policy, batch=5)
    assert report["actions"] < 1e-4, report
    assert report["log_probs"] < 1e-3 and report["rescore"] < 1e-3, report
    assert report["act"] < 1e-4, report
    if head == "tokenized":
        assert report["token_mismatch"] == 0.0, report
    # Batch size is dynamic in the graphs.
    assert onnx_policy.sample(random_obs(config, batch=1)).actions.shape == (1, config.chunk_size, 7)


def test_load_policy_onnx_exports_once_beside_the_checkpoint(tmp_path):
    config = tiny_config("regression")
    path = save_checkpoint(tmp_path / "policy.pt", _trained_looking(config))
    policy = load_policy(path, backend="onnx", device="cpu")
    assert isinstance(policy, OnnxPolicy) and (tmp_path / "policy.pt.onnx" / "policy.json").is_file()
    mtime = (tmp_path / "policy.pt.onnx" / "policy.json").stat().st_mtime
    load_policy(path, backend="onnx", device="cpu")
    assert (tmp_path / "policy.pt.onnx" / "policy.json").stat().st_mtime == mtime
    with pytest.raises(ValueError, match="backend"):
        load_policy(path, backend="tensorrt")


def test_load_policy_sets_the_threads_of_a_query(tmp_path):
    # The policy node queries on one thread by default (its `threads` parameter): torch's threads
    # for the torch backend, the sessions' for ONNX.
    path = save_checkpoint(tmp_path / "policy.pt", _trained_looking(tiny_config("regression")))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        load_policy(path, backend="torch", device="cpu", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    onnx = load_policy(path, backend="onnx", device="cpu", threads=1)
    assert all(s.get_session_options().intra_op_num_threads == 1 for s in onnx.sessions.values())
    with pytest.raises(ValueError, match="threads"):
        load_policy(path, backend="torch", threads=0)


def test_onnx_cuda_provider(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers() or not torch.cuda.is_available():
        pytest.skip("no CUDA: onnxruntime offers " + ", ".join(ort.get_available_providers()))
    config = tiny_config("regression", "image")
    policy = _trained_looking(config)
    save_checkpoint(tmp_path / "policy.pt", policy)
    onnx_policy = OnnxPolicy(export_onnx(tmp_path / "policy.pt", tmp_path / "onnx"), device="cuda")
    assert onnx_policy.providers[0] == "CUDAExecutionProvider"
    assert parity_report(policy, onnx_policy)["actions"] < 1e-3


def test_onnx_samples_and_scores_noise_linked_across_queries_as_torch_does(tmp_path):
    # The policy node may serve the ONNX export: with correlate_across_queries it must draw the
    # same linked sample from the same noise and score it alike (the knobs travel in the export).
    policy = _trained_looking(tiny_config("regression", "state"))
    policy.noise_correlation, policy.correlate_across_queries = 0.9, True
    save_checkpoint(tmp_path / "policy.pt", policy)
    onnx_policy = OnnxPolicy(export_onnx(tmp_path / "policy.pt", tmp_path / "onnx"), threads=1)
    assert onnx_policy.links_queries
    obs, previous = random_obs(policy.config, batch=5, seed=0), random_obs(policy.config, batch=5, seed=1)
    linked = {
        **obs,
        **{f"previous_query/obs/{key}": value for key, value in previous.items()},
        "previous_query/action": torch.randn(5, 7),
        "previous_query/step": torch.tensor([0, 1, 2, 3, 3]),
        "previous_query/continues": torch.tensor([False, True, True, True, True]),
    }
    eps = policy.head_distribution.noise(5, torch.Generator().manual_seed(0), "cpu")
    ours, theirs = policy.sample_with_noise(linked, eps), onnx_policy.sample_with_noise(linked, eps)
    torch.testing.assert_close(theirs.scored, ours.scored, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(theirs.log_probs, ours.log_probs, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(onnx_policy.log_prob(linked, ours.scored), ours.log_probs, atol=1e-3, rtol=1e-4)
    unlinked = policy.sample_with_noise(obs, eps)
    assert not torch.allclose(unlinked.scored[1:], ours.scored[1:])  # the link moved the draws
