"""Checkpoints: weights + config + normalisation statistics + instruction embeddings, one file.

Written with `safe_io` (atomic rename, SHA-256 header), so a crash never leaves a half-written
checkpoint under the real name and a truncated or corrupted copy fails with a clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ript.core.learner import deployed_weights_of
from ript.core.policy import Policy
from ript.core.registry import POLICY_TYPES
from ript.core.safe_io import CorruptFileError, load_verified, save_verified
from ript.policies.vla import VLAPolicy

FORMAT_VERSION = 1
KIND = "ript-vla-policy"


class CheckpointError(CorruptFileError):
    """The file is not a ript policy checkpoint, or it is truncated or corrupted."""


def save_checkpoint(
    path: str | Path,
    policy: VLAPolicy,
    stats: dict | None = None,
    instruction_embeddings: dict[str, Any] | None = None,
    metadata: dict | None = None,
) -> Path:
    """Writes policy weights with its config and the SFT statistics (state/action mean, std, min, max)."""
    payload = {
        **checkpoint_header(policy, stats, instruction_embeddings, metadata),
        "state_dict": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
    }
    save_verified(payload, path)
    return Path(path)


def checkpoint_header(
    policy: VLAPolicy,
    stats: dict | None = None,
    instruction_embeddings: dict[str, Any] | None = None,
    metadata: dict | None = None,
) -> dict:
    """Everything of a policy checkpoint but the weights. A RIPT trainer checkpoint carries it (key
    `policy_checkpoint`, weights under `policy`), so any iteration can be loaded as a policy."""
    return {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "policy_type": policy.policy_type,
        "config": live_config(policy),
        "stats": stats or {},
        "instruction_embeddings": {k: [float(x) for x in v] for k, v in (instruction_embeddings or {}).items()},
        "metadata": metadata or {},
    }


def live_config(policy: VLAPolicy) -> dict:
    """The policy's config with the exploration knobs as currently set (they define the scored
    distribution, and an RL run may have changed them since the policy was built)."""
    config = policy.config.to_dict()
    config[policy.head_type].update(policy.head_distribution.knobs())
    return config


def read_checkpoint(path: str | Path) -> dict:
    """The verified payload dict (config, state_dict, stats, instruction_embeddings, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = load_verified(path)
    except CorruptFileError as exc:
        raise CheckpointError(str(exc)) from exc
    if isinstance(payload, dict) and "policy_checkpoint" in payload and "policy" in payload:
        # a RIPT iteration: the weights it deploys (its average when the run averaged them)
        payload = {**payload["policy_checkpoint"], "state_dict": deployed_weights_of(payload)}
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise CheckpointError(
            f"{path} is a ript file but not a policy checkpoint (nor a `ript train` iteration that carries one)"
        )
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format {payload.get('format_version')}, this code reads {FORMAT_VERSION}")
    return payload


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[Policy, dict]:
    """Rebuilds the policy from its own config, by the type the checkpoint names (checkpoints
    written before types were named are "vla"); returns (policy in eval mode, payload)."""
    payload = read_checkpoint(path)
    policy_type = payload.get("policy_type", "vla")
    try:
        build = POLICY_TYPES.get(policy_type)
    except KeyError as exc:
        raise CheckpointError(f"{path}: {exc.args[0]}") from None
    policy = build(payload["config"])
    policy.load_state_dict(payload["state_dict"])
    return policy.to(device).eval(), payload
