"""The one policy contract every part of ript uses (sim trainer, ROS nodes, ONNX runtime).

A policy maps a batch of observations to an action chunk [B, H, A]. For RL it must also say how
likely its own samples were, and re-score them later under new weights:

    sample(obs)            -> PolicySample: actions to execute, what was scored, per-element log-probs
    log_prob(obs, scored)  -> [B, T] per-element log-probs of `scored` under the current weights
    act(obs)               -> [B, H, A] deterministic actions (evaluation)
    reset()                -> clear per-episode state

`scored` is what the distribution is defined over: the raw (unclipped) continuous actions for a
regression head, the token ids for a tokenized head. Sampling and scoring use the same
distribution (temperature, top-k, exploration scale included), so the PPO ratio is exact.
Chunk queueing (execute h of H) is not part of each model: see `ript.core.recorder.ChunkRecorder`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

Observation = Mapping[str, Tensor]
"""Batch of observations, keys from `ript.core.constants`, each tensor [B, ...]."""

# A policy whose exploration continues across queries (`Policy.links_queries`) reads, beside each
# query's own inputs, what the trial's previous query saw and did. The recorder adds them to a
# query's inputs, so they are recorded with it and LOOP re-scores the query with the same link.
PREVIOUS_PREFIX = "previous_query/"
PREVIOUS_INPUT_PREFIX = PREVIOUS_PREFIX + "obs/"
"""+ an input key: that input at the previous query, [B, ...] (a copy of this query's on a trial's first)."""
PREVIOUS_ACTION = PREVIOUS_PREFIX + "action"
"""The previous query's scored action at its last executed step, [B, A] (zeros on a trial's first)."""
PREVIOUS_STEP = PREVIOUS_PREFIX + "step"
"""Which step of its chunk that was, [B] int64."""
PREVIOUS_CONTINUES = PREVIOUS_PREFIX + "continues"
"""[B] bool: False on a trial's first query (nothing to continue from)."""


@dataclass
class PolicySample:
    """A batch of sampled action chunks.

    actions: [B, H, A] what the robot executes (may be clipped to action bounds).
    scored:  [B, ...] what log_prob scores (raw actions [B, H, A] or tokens [B, L]).
    log_probs: [B, T] per-element log-probs of `scored` (T = H for a regression head, L for tokens).
    """

    actions: Tensor
    scored: Tensor
    log_probs: Tensor

    def __post_init__(self) -> None:
        if self.actions.dim() != 3:
            raise ValueError(f"actions must be [B, H, A], got {tuple(self.actions.shape)}")
        if self.log_probs.dim() != 2 or self.log_probs.shape[0] != self.actions.shape[0]:
            raise ValueError(
                f"log_probs must be [B, T] with B={self.actions.shape[0]}, got {tuple(self.log_probs.shape)}"
            )


class Policy(nn.Module, ABC):
    """Abstract stochastic action-chunk policy. Subclasses implement the four methods."""

    chunk_size: int
    """H: actions predicted per query."""
    action_dim: int
    """A: dimensions of one action (7 for LIBERO: delta pose + gripper)."""
    scores_per_step: bool = True
    """True when log_prob's T axis is the chunk's action steps (T = H, a regression head); False
    when the scored elements encode the chunk jointly (tokens: every executed step depends on every
    token), so a started chunk counts entirely. `executed_mask` reads it."""

    @property
    def links_queries(self) -> bool:
        """True when a query's distribution depends on the trial's previous query (exploration noise
        that runs on across queries): its inputs then carry the PREVIOUS_* entries
        (`ChunkRecorder.with_previous_query`)."""
        return False

    @abstractmethod
    def sample(self, obs: Observation, generator: torch.Generator | None = None) -> PolicySample:
        """Draw one stochastic action chunk per batch row, with the log-probs of what was drawn."""

    @abstractmethod
    def log_prob(self, obs: Observation, scored: Tensor) -> Tensor:
        """Per-element log-probs [B, T] of `scored` (as returned by sample) under current weights."""

    @abstractmethod
    def act(self, obs: Observation) -> Tensor:
        """Deterministic action chunk [B, H, A] (mode of the distribution)."""

    def reset(self) -> None:
        """Clear per-episode state. Stateless policies need not override."""

    def chunk_log_prob(self, obs: Observation, scored: Tensor, mask: Tensor | None = None) -> Tensor:
        """Sequence log-prob [B]: the sum of per-element log-probs over valid elements."""
        logp = self.log_prob(obs, scored)
        if mask is not None:
            logp = torch.where(mask.bool(), logp, torch.zeros_like(logp))
        return logp.sum(dim=1)


def executed_mask(executed: Tensor, num_elements: int, scores_per_step: bool) -> Tensor:
    """Which scored elements of each query count for LOOP, [Q, T] bool.

    executed: [Q] actions of each query's chunk that were actually sent to the robot/sim.
    Per-step scores (regression head): only the executed steps influenced the outcome. Joint
    scores (tokens decoded together into the chunk): a started chunk counts entirely. Decided by
    the policy (`Policy.scores_per_step`), never by comparing T with H: with tokens_per_chunk ==
    chunk_size the counts agree although every step depends on every token (issue 18).
    """
    if scores_per_step:
        return torch.arange(num_elements)[None, :] < executed[:, None]
    return torch.ones((executed.shape[0], num_elements), dtype=torch.bool)
