"""A 1-D reach task with sparse binary success, to check that LOOP learns (in seconds, on CPU).

Context c = (start x0, goal g). The policy sees [x, g - x], outputs chunks of H deltas in [-1, 1];
each env step moves x by step_size * a. Reward is 1 iff |x_T - g| < tolerance after T steps,
else 0 — the same sparse signal RIPT gets from a simulator or an operator.

`train_reach` is the whole RIPT loop in miniature (DynamicSampler -> trajectories -> LOOP) and the
main job's default until the LIBERO stack is configured.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch

from ript_policy.constants import OBS_STATE
from ript_policy.mlp_policy import MLPPolicy, MLPPolicyConfig
from ript_policy.policy import Policy
from ript_trainer.loop import LoopConfig, LoopUpdater
from ript_trainer.sampler import DynamicSampler, SamplerConfig, Trial
from ript_trainer.trials import Trajectory, build_loop_batch


@dataclass
class ReachConfig:
    num_contexts: int = 16
    episode_steps: int = 8
    step_size: float = 0.2
    tolerance: float = 0.08
    max_offset: float = 0.9
    """|g - x0| of the contexts is spread up to this."""
    seed: int = 0


class ReachTask:
    state_dim = 2
    action_dim = 1

    def __init__(self, config: ReachConfig) -> None:
        self.config = config
        gen = torch.Generator().manual_seed(config.seed)
        starts = torch.rand(config.num_contexts, generator=gen) * 2 - 1
        offsets = (torch.rand(config.num_contexts, generator=gen) * 2 - 1) * config.max_offset
        self.contexts = [(float(x0), float(x0 + d)) for x0, d in zip(starts, offsets)]

    @torch.no_grad()
    def run(self, policy: Policy, contexts: list[tuple[float, float]], stochastic: bool,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, list[Trajectory]]:
        """One episode per context, batched. Returns rewards [N] and one Trajectory per episode."""
        cfg = self.config
        x = torch.tensor([c[0] for c in contexts])
        goal = torch.tensor([c[1] for c in contexts])
        horizon = policy.chunk_size
        obs_rows, scored_rows, logp_rows = [], [], []
        for _query in range(math.ceil(cfg.episode_steps / horizon)):
            obs = {OBS_STATE: torch.stack([x, goal - x], dim=1)}
            if stochastic:
                sample = policy.sample(obs, generator=generator)
                actions = sample.actions
                obs_rows.append(obs[OBS_STATE])
                scored_rows.append(sample.scored)
                logp_rows.append(sample.log_probs)
            else:
                actions = policy.act(obs)
            for h in range(horizon):
                x = x + cfg.step_size * actions[:, h, 0]
        rewards = ((x - goal).abs() < cfg.tolerance).float()
        trajectories = []
        if stochastic:
            states = torch.stack(obs_rows, dim=1)  # [N, Q, D]
            scored = torch.stack(scored_rows, dim=1)  # [N, Q, H, A]
            logps = torch.stack(logp_rows, dim=1)  # [N, Q, H]
            for i in range(len(contexts)):
                trajectories.append(Trajectory(obs={OBS_STATE: states[i]}, scored=scored[i], log_probs=logps[i],
                                               mask=torch.ones_like(logps[i], dtype=torch.bool),
                                               num_steps=cfg.episode_steps))
        return rewards, trajectories

    def rollout_fn(self, policy: Policy, group_size: int, generator: torch.Generator):
        """A sampler rollout function: K stochastic trials for each context, all in one batch."""
        def rollout(contexts):
            repeated = [c for c in contexts for _ in range(group_size)]
            rewards, trajectories = self.run(policy, repeated, stochastic=True, generator=generator)
            return [[Trial(-1, float(rewards[i * group_size + k]), trajectories[i * group_size + k])
                     for k in range(group_size)] for i in range(len(contexts))]
        return rollout

    def success_rate(self, policy: Policy, episodes_per_context: int = 16, seed: int = 1234) -> float:
        """Success of the stochastic policy (the one RIPT samples from) over all contexts."""
        repeated = [c for c in self.contexts for _ in range(episodes_per_context)]
        rewards, _ = self.run(policy, repeated, stochastic=True, generator=torch.Generator().manual_seed(seed))
        return float(rewards.mean())


@dataclass
class ReachTrainConfig:
    iterations: int = 30
    learning_rate: float = 1e-2
    chunk_size: int = 2
    init_scale: float = 0.5
    seed: int = 0
    task: ReachConfig = field(default_factory=ReachConfig)
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(group_size=8, batch_size=64))
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(ppo_epochs=4, minibatch_size=64))


def train_reach(config: ReachTrainConfig, log=None) -> list[dict]:
    """Runs RIPT on the reach task; returns one metrics dict per iteration (iteration 0 = before)."""
    torch.manual_seed(config.seed)
    task = ReachTask(config.task)
    policy = MLPPolicy(MLPPolicyConfig(state_dim=task.state_dim, action_dim=task.action_dim,
                                       chunk_size=config.chunk_size, init_scale=config.init_scale))
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    updater = LoopUpdater(policy.log_prob, policy.parameters(), optimizer, config.loop, generator=generator)
    sampler = DynamicSampler(task.contexts, config.sampler)
    rollout = task.rollout_fn(policy, config.sampler.group_size, generator)
    history = [{"iteration": 0, "eval/success_rate": task.success_rate(policy)}]
    if log:
        log(history[-1])
    for iteration in range(1, config.iterations + 1):
        start = time.perf_counter()
        batch = sampler.collect(rollout, parallel_groups=config.sampler.batch_size // config.sampler.group_size)
        metrics = {"iteration": iteration, **batch.stats, "sampler/stop_reason": batch.reason}
        if batch.groups:
            loop_batch, _ = build_loop_batch(batch.groups)
            metrics.update(updater.update(loop_batch))
        metrics["eval/success_rate"] = task.success_rate(policy)
        metrics["time/iteration_s"] = time.perf_counter() - start
        history.append(metrics)
        if log:
            log(metrics)
    return history


def config_dict(config: ReachTrainConfig) -> dict:
    return asdict(config)
