"""LIBERO as a RIPT rollout source: K stochastic trials per context on a vector of envs.

`PolicyAgent` drives `run_episodes` with any `Policy`: it queries the policy when a trial's chunk
is used up (batched over every trial that needs a query); each trial's ChunkRecorder executes the
first `execute_steps` actions of each chunk and records what LOOP needs per query. A crashed trial restarts from
`begin`, which discards its partial record, so a crash never leaks half a trajectory into a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ript.core.policy import Policy
from ript.core.recorder import ChunkRecorder
from ript.core.sampler import Trial
from ript.core.trials import Trajectory
from ript.sim.contexts import Context
from ript.sim.vector_env import EpisodeResult, VectorEnv, run_episodes

Featurize = Callable[[dict, Context], dict[str, np.ndarray]]
"""(one LIBERO observation, its context) -> policy inputs for one row (no batch dim)."""


def policy_generator(policy: Policy, seed: int) -> torch.Generator:
    """A seeded generator on the policy's device (CUDA sampling needs a CUDA generator)."""
    return torch.Generator(device=getattr(policy, "device", "cpu")).manual_seed(seed)


class PolicyAgent:
    """An EpisodeAgent that samples (stochastic) or takes the mode (deterministic) of a Policy."""

    def __init__(
        self,
        policy: Policy,
        featurize: Featurize,
        execute_steps: int,
        stochastic: bool,
        generator: torch.Generator | None = None,
    ) -> None:
        if not 1 <= execute_steps <= policy.chunk_size:
            raise ValueError(f"execute_steps must be in [1, {policy.chunk_size}], got {execute_steps}")
        self.policy = policy
        self.featurize = featurize
        self.execute_steps = execute_steps
        self.stochastic = stochastic
        self.generator = generator
        self.contexts: dict[int, Context] = {}
        self.recorders: dict[int, ChunkRecorder] = {}
        self.finished: dict[int, tuple[EpisodeResult, Trajectory | None]] = {}

    def begin(self, trial: int, context: Context, obs: dict) -> None:
        self.contexts[trial] = context
        self.recorders[trial] = ChunkRecorder(self.execute_steps, self.policy.chunk_size, self.policy.scores_per_step)

    @torch.no_grad()
    def act(self, trials: list[int], obs: list[dict]) -> np.ndarray:
        needs = [j for j, t in enumerate(trials) if self.recorders[t].needs_query]
        if needs:  # one batched policy query for every trial whose chunk is used up
            rows = [self.featurize(obs[j], self.contexts[trials[j]]) for j in needs]
            batch = {key: torch.as_tensor(np.stack([row[key] for row in rows])) for key in rows[0]}
            if self.stochastic:
                sample = self.policy.sample(batch, generator=self.generator)
                chunks, scored, log_probs = sample.actions.cpu().numpy(), sample.scored.cpu(), sample.log_probs.cpu()
                for n, j in enumerate(needs):
                    self.recorders[trials[j]].add_chunk(rows[n], chunks[n], scored[n], log_probs[n])
            else:
                chunks = self.policy.act(batch).cpu().numpy()
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
        agent = PolicyAgent(
            policy, self.featurize, self.execute_steps, stochastic=True, generator=policy_generator(policy, seed)
        )
        run_episodes(self.vec, repeated, agent)
        groups = []
        for i in range(len(contexts)):
            group = []
            for k in range(group_size):
                result, trajectory = agent.finished[i * group_size + k]
                group.append(Trial(-1, float(result.success), trajectory))
            groups.append(group)
        return groups

    def evaluate(self, policy: Policy, seed: int = 0) -> dict[str, float]:
        """Deterministic policy on the held-out benchmark states: overall and per-task success."""
        if not self.eval_contexts:
            return {}
        agent = PolicyAgent(policy, self.featurize, self.execute_steps, stochastic=False)
        results = run_episodes(self.vec, self.eval_contexts, agent)
        metrics = {
            "eval/success_rate": float(np.mean([r.success for r in results])),
            "eval/episodes": float(len(results)),
        }
        for task_id in sorted({c.task_id for c in self.eval_contexts}):
            task = [r.success for r in results if r.context.task_id == task_id]
            metrics[f"eval/success_rate/task_{task_id}"] = float(np.mean(task))
        return metrics
