"""Helpers for the VLA policy tests: small synthetic LIBERO demos and tiny model configs."""

from __future__ import annotations

import numpy as np
import torch

from ript.policies.config import VLAConfig
from ript.policies.libero_data import Demo, state_dim, write_demos

INSTRUCTION = "put the black bowl on the plate"


def make_demo(length: int = 40, image_size: int = 32, seed: int = 0, instruction: str = INSTRUCTION) -> Demo:
    """A smooth synthetic episode with LIBERO's keys: images, proprio, object poses, 7-D actions."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, length)[:, None]
    obs = {
        "agentview_rgb": rng.integers(0, 256, (length, image_size, image_size, 3), dtype=np.uint8),
        "eye_in_hand_rgb": rng.integers(0, 256, (length, image_size, image_size, 3), dtype=np.uint8),
        "ee_pos": np.hstack([t, t**2, 1.0 - t]),
        "ee_ori": np.hstack([np.sin(t), np.cos(t), t]),
        "ee_states": np.zeros((length, 6)),
        "gripper_states": np.hstack([0.04 - 0.03 * t, 0.03 * t - 0.04]),
        "joint_states": np.zeros((length, 7)),
        # one object: a fixed position, then a quaternion-like part that moves (pos 3 + quat 4)
        "object_state": np.hstack(
            [np.tile(rng.normal(size=(1, 3)), (length, 1)), t * 0.1, t * 0.2, t * 0.3, np.ones((length, 1))]
        ),
    }
    actions = np.hstack([np.sin(6.0 * t + k) * 0.8 for k in range(6)] + [np.where(t > 0.5, 1.0, -1.0)])
    return Demo(
        obs=obs,
        actions=actions,
        states=np.zeros((length, 4)),
        rewards=np.zeros(length),
        dones=np.zeros(length),
        instruction=instruction,
        task_name="synthetic",
    )


def write_demo_file(folder, num_demos: int = 1):
    """Demos written through the real HDF5 path (read back with read_demos by the code under test)."""
    return write_demos(folder / "synthetic_demo.hdf5", [make_demo(seed=i) for i in range(num_demos)])


def tiny_config(head: str = "regression", input_mode: str = "state", **overrides) -> VLAConfig:
    base = dict(
        head=head,
        input_mode=input_mode,
        state_dim=8 if input_mode == "image" else state_dim(7),
        image_size=32,
        image_tokens_side=2,
        hidden_dim=32,
        num_layers=2,
        num_heads=2,
        chunk_size=4,
        execute_steps=2,
    )
    if head == "tokenized":
        base["tokenized"] = {"fsq_levels": (5, 4), "tokens_per_chunk": 2, "tokenizer_hidden_dim": 64}
    base.update(overrides)
    return VLAConfig(**base)


def random_obs(config: VLAConfig, batch: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    from ript.policies.onnx_policy import example_observation

    torch.manual_seed(seed)
    return example_observation(config, batch)
