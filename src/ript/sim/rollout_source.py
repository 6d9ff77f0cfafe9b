"""LIBERO as a RIPT rollout source: K stochastic trials per context on a vector of envs.

`PolicyAgent` drives `run_episodes` with any `Policy`: it queries the policy when a trial's chunk
is used up (batched over every trial that needs a query); each trial's ChunkRecorder executes the
first `execute_steps` actions of each chunk and records what LOOP needs per query. A crashed trial restarts from
`begin`, which discards its partial record, so a crash never leaks half a trajectory into a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch

from ript.core.policy import Policy, PolicySample
from ript.core.recorder import ChunkRecorder
from ript.core.sampler import Trial
from ript.core.trials import Trajectory
from ript.sim.contexts import Context
from ript.sim.vector_env import EpisodeResult, VectorEnv, run_episodes

Featurize = Callable[[dict, Context], dict[str, np.ndarray]]
"""(one LIBERO observation, its context) -> policy inputs for one row (no batch dim)."""


def trial_seed(seed: int, trial: int) -> int:
    """The noise seed of trial `trial` of a rollout call seeded `seed`."""
    from ript.core.learner import derive_seed

    return derive_seed(seed, trial)


def sample_rows(policy: Policy, batch: dict[str, torch.Tensor], generators: Sequence[torch.Generator]) -> PolicySample:
    """One batched query, row n sampled with the noise `generators[n]` gives (drawn on the CPU: the
    same samples on any device, in any batch)."""
    head = getattr(policy, "head_distribution", None)
    if head is not None:
        eps = torch.cat([head.noise(1, generator, "cpu") for generator in generators])
        return policy.sample_with_noise(batch, eps)
    rows = [policy.sample({k: v[n : n + 1] for k, v in batch.items()}, g) for n, g in enumerate(generators)]
    return PolicySample(
        actions=torch.cat([r.actions for r in rows]),
        scored=torch.cat([r.scored for r in rows]),
        log_probs=torch.cat([r.log_probs for r in rows]),
    )


class PolicyQueries(Protocol):
    """What PolicyAgent asks of a policy, wherever it runs: in this process (`LocalQueries`) or in
    an inference server (ript.sim.ray_rollout)."""

    chunk_size: int
    scores_per_step: bool
    links_queries: bool
    action_dim: int

    def sample_rows(self, batch: dict[str, torch.Tensor], generators: Sequence[torch.Generator]) -> PolicySample:
        """`sample_rows` of the policy; each generator advanced as if it had drawn here."""
        ...

    def act(self, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...


class LocalQueries:
    """PolicyQueries answered by a policy in this process."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.chunk_size = policy.chunk_size
        self.scores_per_step = policy.scores_per_step
        self.links_queries = policy.links_queries
        self.action_dim = policy.action_dim

    def sample_rows(self, batch: dict[str, torch.Tensor], generators: Sequence[torch.Generator]) -> PolicySample:
        return sample_rows(self.policy, batch, generators)

    def act(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.policy.act(batch)


class PolicyAgent:
    """An EpisodeAgent that samples (stochastic) or takes the mode (deterministic) of a Policy."""

    def __init__(
        self,
        policy: Policy | PolicyQueries,
        featurize: Featurize,
        execute_steps: int,
        stochastic: bool,
        seed: int = 0,
        trial_ids: Sequence[int] | None = None,
    ) -> None:
        """seed: each trial samples from its own generator, seeded by (seed, its trial id), so its
        actions do not depend on which other trials share a batch, on how many envs run at once,
        or on the worker it runs on. trial_ids: the ids of the trials run_episodes numbers 0..n-1
        (default: those numbers), so a shard of a rollout keeps the noise of the whole."""
        if not 1 <= execute_steps <= policy.chunk_size:
            raise ValueError(f"execute_steps must be in [1, {policy.chunk_size}], got {execute_steps}")
        self.queries: PolicyQueries = LocalQueries(policy) if isinstance(policy, Policy) else policy
        self.featurize = featurize
        self.execute_steps = execute_steps
        self.stochastic = stochastic
        self.seed = seed
        self.trial_ids = trial_ids
        self.generators: dict[int, torch.Generator] = {}
        self.contexts: dict[int, Context] = {}
        self.recorders: dict[int, ChunkRecorder] = {}
        self.finished: dict[int, tuple[EpisodeResult, Trajectory | None]] = {}

    def begin(self, trial: int, context: Context, obs: dict) -> None:
        self.contexts[trial] = context
        self.recorders[trial] = ChunkRecorder(self.execute_steps, self.queries.chunk_size, self.queries.scores_per_step)
        trial_id = trial if self.trial_ids is None else self.trial_ids[trial]
        # (re)started from its seed: a trial retried after a worker crash draws the same noise
        self.generators[trial] = torch.Generator().manual_seed(trial_seed(self.seed, trial_id))

    @torch.no_grad()
    def act(self, trials: list[int], obs: list[dict]) -> np.ndarray:
        needs = [j for j, t in enumerate(trials) if self.recorders[t].needs_query]
        if needs:  # one batched policy query for every trial whose chunk is used up
            rows = [self.featurize(obs[j], self.contexts[trials[j]]) for j in needs]
            if self.stochastic and self.queries.links_queries:  # the noise runs on from the last query
                rows = [
                    self.recorders[trials[j]].with_previous_query(row, self.queries.action_dim)
                    for j, row in zip(needs, rows)
                ]
            batch = {key: torch.as_tensor(np.stack([row[key] for row in rows])) for key in rows[0]}
            if self.stochastic:
                sample = self.queries.sample_rows(batch, [self.generators[trials[j]] for j in needs])
                chunks, scored, log_probs = sample.actions.cpu().numpy(), sample.scored.cpu(), sample.log_probs.cpu()
                for n, j in enumerate(needs):
                    self.recorders[trials[j]].add_chunk(rows[n], chunks[n], scored[n], log_probs[n])
            else:
                chunks = self.queries.act(batch).cpu().numpy()
                for n, j in enumerate(needs):
                    self.recorders[trials[j]].add_chunk({}, chunks[n])  # nothing to re-score: keep no inputs
        return np.stack([self.recorders[t].next_action() for t in trials])

    def end(self, trial: int, result: EpisodeResult) -> None:
        recorder = self.recorders.pop(trial)
        self.finished[trial] = (result, recorder.trajectory(result.steps) if self.stochastic else None)


class LiberoRolloutSource:
    """`RolloutSource` over a VectorEnv: training contexts for RL, benchmark states for evaluation."""

    def __init__(
        self,
        vec: VectorEnv,
        contexts: Sequence[Context],
        eval_contexts: Sequence[Context],
        featurize: Featurize,
        execute_steps: int,
    ) -> None:
        self.vec = vec
        self.contexts = list(contexts)
        self.eval_contexts = list(eval_contexts)
        self.featurize = featurize
        self.execute_steps = execute_steps

    def rollout(self, policy: Policy, contexts: list[Context], group_size: int, seed: int) -> list[list[Trial]]:
        repeated = [c for c in contexts for _ in range(group_size)]
        agent = PolicyAgent(policy, self.featurize, self.execute_steps, stochastic=True, seed=seed)
        run_episodes(self.vec, repeated, agent)
        groups = []
        for i in range(len(contexts)):
            group = []
            for k in range(group_size):
                result, trajectory = agent.finished[i * group_size + k]
                group.append(Trial(-1, float(result.success), trajectory))
            groups.append(group)
        return groups

    def close(self) -> None:
        self.vec.close()

    def evaluate(self, policy: Policy, seed: int = 0) -> dict[str, float]:
        """Deterministic policy on the held-out benchmark states: overall and per-task success."""
        if not self.eval_contexts:
            return {}
        agent = PolicyAgent(policy, self.featurize, self.execute_steps, stochastic=False)
        results = run_episodes(self.vec, self.eval_contexts, agent)
        return evaluation_metrics(self.eval_contexts, [r.success for r in results])


def evaluation_metrics(contexts: Sequence[Context], successes: Sequence[bool]) -> dict[str, float]:
    """The evaluation row: overall and per-task success of one episode per context."""
    metrics = {"eval/success_rate": float(np.mean(successes)), "eval/episodes": float(len(successes))}
    for task_id in sorted({c.task_id for c in contexts}):
        task = [s for s, c in zip(successes, contexts) if c.task_id == task_id]
        metrics[f"eval/success_rate/task_{task_id}"] = float(np.mean(task))
    return metrics
