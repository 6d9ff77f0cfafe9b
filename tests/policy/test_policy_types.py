"""A checkpoint names its policy type and loading builds that type through the registry: a new
policy type is one module plus one registration, never an edit of checkpoint.py."""

from __future__ import annotations

import pytest
import torch
from vla_helpers import random_obs, tiny_config

from ript.core.registry import POLICY_TYPES, Registry
from ript.core.safe_io import load_verified, save_verified
from ript.policies.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from ript.policies.vla import VLAPolicy, build_policy, policy_from_config


class DoubledVLA(VLAPolicy):
    """A policy type of a test's own: the VLA with its trunk output scaled, so its actions differ."""

    policy_type = "doubled_vla"

    def encode(self, obs):
        return 2.0 * super().encode(obs)


def doubled_from_config(config: dict) -> DoubledVLA:
    return DoubledVLA(policy_from_config(config).config)


def test_a_checkpoint_names_its_type_and_loads_as_it(tmp_path):
    policy = build_policy(tiny_config())
    path = save_checkpoint(tmp_path / "policy.pt", policy)
    assert read_checkpoint(path)["policy_type"] == "vla"
    loaded, _ = load_checkpoint(path)
    assert type(loaded) is VLAPolicy


def test_a_registered_type_is_rebuilt_from_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(
        POLICY_TYPES, "_entries", {**POLICY_TYPES._entries, "doubled_vla": "test_policy_types:doubled_from_config"}
    )
    torch.manual_seed(0)
    policy = DoubledVLA(tiny_config())
    path = save_checkpoint(tmp_path / "policy.pt", policy)
    loaded, _ = load_checkpoint(path)
    assert type(loaded) is DoubledVLA
    obs = random_obs(policy.config, batch=3)
    with torch.no_grad():
        assert torch.allclose(loaded.act(obs), policy.eval().act(obs))


def test_an_unknown_type_is_refused_with_the_known_ones(tmp_path):
    path = save_checkpoint(tmp_path / "policy.pt", build_policy(tiny_config()))
    payload = load_verified(path)
    payload["policy_type"] = "openvla_7b"
    save_verified(payload, path)
    with pytest.raises(CheckpointError, match="unknown policy type 'openvla_7b'; known: hf_vla, vla"):
        load_checkpoint(path)


def test_a_checkpoint_from_before_types_were_named_loads_as_vla(tmp_path):
    path = save_checkpoint(tmp_path / "policy.pt", build_policy(tiny_config()))
    payload = load_verified(path)
    del payload["policy_type"]
    save_verified(payload, path)
    assert type(load_checkpoint(path)[0]) is VLAPolicy


def test_registry_targets_are_checked():
    registry = Registry("thing", {"a": "json:dumps"})
    assert registry.get("a")([1]) == "[1]"
    with pytest.raises(ValueError, match="module:attribute"):
        registry.register("b", "json.dumps")
    with pytest.raises(KeyError, match="unknown thing 'c'; known: a"):
        registry.get("c")
