"""The policy side of one trial, without ROS: act step by step and record what LOOP re-scores.

The policy node feeds it one observation (policy inputs, no batch dim) per control step. Chunks
are executed and recorded by the same ChunkRecorder as the in-process rollouts (recorder.py), so
the executed-step mask matches theirs. Inputs and actions are checked finite; actions leave bounded.

The trajectory file (`save_trajectory`) is plain tensors in a `safe_io` file; the trainer reads it
with `ript.core.trial_store.trajectory_from_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ript.core.policy import Policy
from ript.core.recorder import ChunkRecorder, Query
from ript.core.safe_io import save_verified
from ript.core.trial_store import trajectory_to_dict

TRAJECTORY_KIND = "ript-trial-trajectory"


class UnsafeAction(RuntimeError):
    """The policy produced a non-finite action; nothing is sent."""


@dataclass
class TrialRunner:
    policy: Policy
    execute_steps: int
    action_bound: float = 1.0
    """Every action dimension is clipped to [-action_bound, action_bound] before it is sent."""
    trial_id: str = ""
    stochastic: bool = True
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        if self.action_bound <= 0:
            raise ValueError(f"action_bound must be > 0, got {self.action_bound}")
        self.recorder = self._new_recorder()

    def _new_recorder(self) -> ChunkRecorder:
        return ChunkRecorder(self.execute_steps, self.policy.chunk_size, self.policy.scores_per_step)

    @property
    def steps(self) -> int:
        return self.recorder.steps

    @property
    def queries(self) -> list[Query]:
        return self.recorder.queries

    def begin(self, trial_id: str, stochastic: bool, seed: int | None = None) -> None:
        self.trial_id, self.stochastic = trial_id, stochastic
        self.recorder = self._new_recorder()
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
        if self.recorder.needs_query:
            if self.stochastic and self.policy.links_queries:  # the noise runs on from the last query
                inputs = self.recorder.with_previous_query(inputs, self.policy.action_dim)
            batch = {key: torch.as_tensor(np.asarray(value))[None] for key, value in inputs.items()}
            device = getattr(self.policy, "device", torch.device("cpu"))
            batch = {key: value.to(device) for key, value in batch.items()}
            if self.stochastic:
                sample = self.policy.sample(batch, generator=self.generator)
                chunk, scored, log_probs = sample.actions[0].cpu(), sample.scored[0].cpu(), sample.log_probs[0].cpu()
            else:
                chunk, scored, log_probs = self.policy.act(batch)[0].cpu(), None, None
            if not bool(torch.isfinite(chunk).all()):
                raise UnsafeAction(f"trial {self.trial_id}: non-finite action at step {self.steps}")
            query = self.recorder.add_chunk(inputs, chunk, scored, log_probs)
        action = np.clip(self.recorder.next_action(), -self.action_bound, self.action_bound).astype(np.float32)
        return action, query

    def trajectory(self) -> dict | None:
        """What LOOP needs from this trial, as the trajectory file's fields (None when it was
        deterministic or never acted)."""
        trajectory = self.recorder.trajectory() if self.stochastic else None
        if trajectory is None:
            return None
        return trajectory_to_dict(trajectory)


def save_trajectory(path: str | Path, trajectory: dict, trial_id: str, weights_version: int) -> str:
    """Atomic, verified trajectory file; returns its SHA-256 (quoted in TrialRecord)."""
    return save_verified(
        {"kind": TRAJECTORY_KIND, "trial_id": trial_id, "weights_version": weights_version, **trajectory}, path
    )
