"""The policy side of one trial, without ROS: act step by step and record what LOOP re-scores.

The policy node feeds it one observation (policy inputs, no batch dim) per control step. A query
happens when the chunk queue is empty; stochastic trials record, per query, the inputs, what was
scored and its per-element log-probs, and count how many of the chunk's actions were actually
sent, so the executed-step mask matches the in-process rollout source. Actions leave bounded.

The trajectory file (`save_trajectory`) is plain tensors in a `safe_io` file; the trainer reads it
with `ript.core.trial_store.trajectory_from_dict`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch

from ript.core.policy import Policy, executed_mask
from ript.core.safe_io import save_verified

TRAJECTORY_KIND = "ript-trial-trajectory"


class UnsafeAction(RuntimeError):
    """The policy produced a non-finite action; nothing is sent."""


@dataclass
class Query:
    """One policy call: its inputs, the chunk, what was scored, and how many steps were sent."""

    obs: dict[str, np.ndarray]
    actions: torch.Tensor
    scored: torch.Tensor | None
    log_probs: torch.Tensor | None
    step: int
    executed: int = 0


@dataclass
class TrialRunner:
    policy: Policy
    execute_steps: int
    action_bound: float = 1.0
    """Every action dimension is clipped to [-action_bound, action_bound] before it is sent."""
    trial_id: str = ""
    stochastic: bool = True
    steps: int = 0
    queries: list[Query] = field(default_factory=list)
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.execute_steps <= self.policy.chunk_size:
            raise ValueError(f"execute_steps must be in [1, {self.policy.chunk_size}], got {self.execute_steps}")
        if self.action_bound <= 0:
            raise ValueError(f"action_bound must be > 0, got {self.action_bound}")
        self._queue: deque[np.ndarray] = deque()

    def begin(self, trial_id: str, stochastic: bool, seed: int | None = None) -> None:
        self.trial_id, self.stochastic, self.steps = trial_id, stochastic, 0
        self.queries = []
        self._queue.clear()
        self.policy.reset()
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    @torch.no_grad()
    def act(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, Query | None]:
        """The next bounded action [A]; the new Query when this step called the policy."""
        query = None
        bad = [
            key
            for key, value in inputs.items()
            if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.isfinite(value).all()
        ]
        if bad:
            raise UnsafeAction(f"trial {self.trial_id}: non-finite inputs {bad} at step {self.steps}")
        if not self._queue:
            batch = {key: torch.as_tensor(np.asarray(value))[None] for key, value in inputs.items()}
            device = getattr(self.policy, "device", torch.device("cpu"))
            batch = {key: value.to(device) for key, value in batch.items()}
            if self.stochastic:
                sample = self.policy.sample(batch, generator=self.generator)
                chunk = sample.actions[0].cpu()
                query = Query(inputs, chunk, sample.scored[0].cpu(), sample.log_probs[0].cpu(), self.steps)
            else:
                chunk = self.policy.act(batch)[0].cpu()
                query = Query(inputs, chunk, None, None, self.steps)
            if not bool(torch.isfinite(chunk).all()):
                raise UnsafeAction(f"trial {self.trial_id}: non-finite action at step {self.steps}")
            self.queries.append(query)
            self._queue.extend(chunk[: self.execute_steps].numpy())
        action = np.clip(self._queue.popleft(), -self.action_bound, self.action_bound).astype(np.float32)
        self.queries[-1].executed += 1
        self.steps += 1
        return action, query

    def trajectory(self) -> dict | None:
        """What LOOP needs from this trial (None when it was deterministic or never acted)."""
        if not self.stochastic or not self.queries:
            return None
        # a stochastic trial sampled (and so scored) every query
        log_probs = torch.stack(cast(list[torch.Tensor], [q.log_probs for q in self.queries]))  # [Q, T]
        mask = executed_mask(
            torch.tensor([q.executed for q in self.queries]), log_probs.shape[1], self.policy.scores_per_step
        )
        obs = {key: torch.as_tensor(np.stack([q.obs[key] for q in self.queries])) for key in self.queries[0].obs}
        return {
            "obs": obs,
            "scored": torch.stack(cast(list[torch.Tensor], [q.scored for q in self.queries])),
            "log_probs": log_probs,
            "mask": mask,
            "num_steps": self.steps,
        }


def save_trajectory(path: str | Path, trajectory: dict, trial_id: str, weights_version: int) -> str:
    """Atomic, verified trajectory file; returns its SHA-256 (quoted in TrialRecord)."""
    return save_verified(
        {"kind": TRAJECTORY_KIND, "trial_id": trial_id, "weights_version": weights_version, **trajectory}, path
    )
