"""The one chunk recorder: how a trial executes action chunks and what LOOP later re-scores.

A policy query returns a chunk of H actions; the first `execute_steps` of them are sent, one per
control step, before the next query. Per query the recorder keeps the policy inputs, what was
scored and its per-element log-probs (stochastic trials), and counts the actions actually sent, so
the executed-element mask (`executed_mask`) is right when an episode ends mid-chunk. Used by every
place that runs trials: the LIBERO rollout source (one recorder per trial, queries batched across
trials), the policy node's TrialRunner, and the toy reach task.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ript.core.policy import (
    PREVIOUS_ACTION,
    PREVIOUS_CONTINUES,
    PREVIOUS_INPUT_PREFIX,
    PREVIOUS_PREFIX,
    PREVIOUS_STEP,
    executed_mask,
)
from ript.core.trials import Trajectory


@dataclass
class Query:
    """One policy call: its inputs, the chunk, what was scored, and how many steps were sent."""

    obs: dict[str, Any]
    actions: Any
    scored: torch.Tensor | None
    log_probs: torch.Tensor | None
    step: int
    executed: int = 0


class ChunkRecorder:
    def __init__(self, execute_steps: int, chunk_size: int, scores_per_step: bool) -> None:
        if not 1 <= execute_steps <= chunk_size:
            raise ValueError(f"execute_steps must be in [1, {chunk_size}], got {execute_steps}")
        self.execute_steps = execute_steps
        self.scores_per_step = scores_per_step
        self.queries: list[Query] = []
        self.steps = 0
        self._queue: deque = deque()

    @property
    def needs_query(self) -> bool:
        """True when the current chunk is used up: the next action needs a policy query."""
        return not self._queue

    def add_chunk(
        self,
        obs: dict[str, Any],
        actions: Any,
        scored: torch.Tensor | None = None,
        log_probs: torch.Tensor | None = None,
    ) -> Query:
        """A query's result for this trial: actions [H, A] (tensor or array), and for a sampled chunk
        what was scored and its log-probs [T]. Its first execute_steps actions are queued."""
        if not self.needs_query:
            raise RuntimeError("a chunk was added before the previous one was executed")
        query = Query(obs, actions, scored, log_probs, self.steps)
        self.queries.append(query)
        head = actions[: self.execute_steps]
        self._queue.extend(head.numpy() if isinstance(head, torch.Tensor) else np.asarray(head))
        return query

    def with_previous_query(self, inputs: dict[str, Any], action_dim: int) -> dict[str, Any]:
        """The next query's inputs plus what links it to the previous query (`Policy.links_queries`):
        that query's inputs and its scored action at the last step it executed."""
        if not self.needs_query:
            raise RuntimeError("the previous query's chunk is still being executed")
        own = {key: value for key, value in inputs.items() if not key.startswith(PREVIOUS_PREFIX)}
        linked = dict(own)
        if not self.queries:
            previous, step, action = own, 0, np.zeros(action_dim, np.float32)
        else:
            last = self.queries[-1]
            if last.scored is None or last.executed < 1:
                raise RuntimeError("the previous query has no sampled, executed action to continue from")
            previous = {key: value for key, value in last.obs.items() if not key.startswith(PREVIOUS_PREFIX)}
            step = last.executed - 1
            action = np.asarray(last.scored[step], dtype=np.float32)
        linked.update({PREVIOUS_INPUT_PREFIX + key: value for key, value in previous.items()})
        linked[PREVIOUS_ACTION] = action
        linked[PREVIOUS_STEP] = np.int64(step)
        linked[PREVIOUS_CONTINUES] = np.bool_(bool(self.queries))
        return linked

    def next_action(self) -> np.ndarray:
        """The next queued action [A], counted as executed by the query it came from."""
        if self.needs_query:
            raise RuntimeError("no queued action: the trial needs a policy query first")
        self.queries[-1].executed += 1
        self.steps += 1
        return self._queue.popleft()

    def trajectory(self, num_steps: int | None = None) -> Trajectory | None:
        """What LOOP needs from the trial: None when nothing was sampled (a deterministic trial or
        none acted). num_steps: the episode's env steps (default: the actions sent)."""
        if not self.queries or any(q.log_probs is None or q.scored is None for q in self.queries):
            return None
        log_probs = torch.stack([q.log_probs for q in self.queries if q.log_probs is not None])  # [Q, T]
        scored = torch.stack([q.scored for q in self.queries if q.scored is not None])
        mask = executed_mask(torch.tensor([q.executed for q in self.queries]), log_probs.shape[1], self.scores_per_step)
        obs = {key: _stack([q.obs[key] for q in self.queries]) for key in self.queries[0].obs}
        steps = self.steps if num_steps is None else num_steps
        return Trajectory(obs=obs, scored=scored, log_probs=log_probs, mask=mask, num_steps=steps)


def _stack(rows: list) -> torch.Tensor:
    if isinstance(rows[0], torch.Tensor):
        return torch.stack(rows)
    return torch.as_tensor(np.stack(rows))
