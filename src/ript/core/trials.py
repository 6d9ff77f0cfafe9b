"""What a trial records for LOOP, and how accepted groups become one LoopBatch.

Shared by every source of trials (toy task, vector of LIBERO envs, ROS episodes): each records a
`Trajectory` per trial, the sampler groups them, `build_loop_batch` flattens them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ript.core.loop import LoopBatch, rloo_advantages
from ript.core.sampler import Group


@dataclass
class Trajectory:
    """The policy queries of one trial, Q rows.

    obs: each [Q, ...]; scored: [Q, ...]; log_probs: [Q, T] from the sampling policy;
    mask: [Q, T] bool, False for elements not executed (chunk cut off by the episode end).
    """

    obs: dict[str, Tensor]
    scored: Tensor
    log_probs: Tensor
    mask: Tensor
    num_steps: int = 0

    def __post_init__(self) -> None:
        q = self.log_probs.shape[0]
        if self.mask.shape != self.log_probs.shape:
            raise ValueError(f"mask {tuple(self.mask.shape)} != log_probs {tuple(self.log_probs.shape)}")
        bad = [key for key, value in self.obs.items() if value.shape[0] != q]
        if self.scored.shape[0] != q or bad:
            raise ValueError(f"every field needs Q={q} rows (mismatched: scored, {bad})")


def build_loop_batch(groups: Sequence[Group]) -> tuple[LoopBatch, Tensor]:
    """Flatten accepted groups (each K trials with Trajectory data) into a LoopBatch.

    Returns the batch and the [G, K] advantages (for logging). Each row's weight is 1 / its
    trial's valid elements, so loss_normalization='trial' gives every trial the same weight.
    """
    if not groups:
        raise ValueError("no groups to build a batch from")
    rewards = torch.tensor([group.rewards for group in groups], dtype=torch.float32)  # [G, K]
    advantages = rloo_advantages(rewards)  # [G, K]
    trajectories: list[Trajectory] = []
    row_advantages: list[Tensor] = []
    row_weights: list[Tensor] = []
    for g, group in enumerate(groups):
        for k, trial in enumerate(group.trials):
            traj: Trajectory = trial.data
            trajectories.append(traj)
            rows = traj.log_probs.shape[0]
            row_advantages.append(advantages[g, k].expand(rows))
            row_weights.append(torch.full((rows,), 1.0 / max(int(traj.mask.sum()), 1)))
    # The inputs every trial recorded (a trial may carry more, e.g. frames kept only for replay).
    keys = sorted(set.intersection(*(set(t.obs) for t in trajectories)))
    batch = LoopBatch(
        obs={key: torch.cat([t.obs[key] for t in trajectories]) for key in keys},
        scored=torch.cat([t.scored for t in trajectories]),
        logp_old=torch.cat([t.log_probs for t in trajectories]),
        mask=torch.cat([t.mask for t in trajectories]).bool(),
        advantages=torch.cat(row_advantages),
        weights=torch.cat(row_weights),
    )
    return batch, advantages
