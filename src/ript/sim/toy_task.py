"""A 1-D reach task with sparse binary success, to check that LOOP learns (in seconds, on CPU).

Context c = (start x0, goal g). The policy sees [x, g - x], outputs chunks of H deltas in [-1, 1];
each env step moves x by step_size * a. Reward is 1 iff |x_T - g| < tolerance after T steps,
else 0 — the same sparse signal RIPT gets from a simulator or an operator.

`ReachTask` is a `RolloutSource`, so `train_reach` runs the same `RiptTrainer` (sampler, LOOP,
checkpoints) as LIBERO training, in seconds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ript.core.constants import OBS_STATE
from ript.core.distributed import DataParallel
from ript.core.learner import TrainConfig
from ript.core.loop import LoopConfig
from ript.core.policy import Policy
from ript.core.recorder import ChunkRecorder
from ript.core.sampler import SamplerConfig, Trial
from ript.core.train import RiptTrainer
from ript.core.trials import Trajectory
from ript.policies.mlp_policy import MLPPolicy, MLPPolicyConfig


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
    def run(
        self,
        policy: Policy,
        contexts: list[tuple[float, float]],
        stochastic: bool,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, list[Trajectory]]:
        """One episode per context, batched. Returns rewards [N] and one Trajectory per episode."""
        cfg = self.config
        x = torch.tensor([c[0] for c in contexts])
        goal = torch.tensor([c[1] for c in contexts])
        horizon = policy.chunk_size
        recorders = [ChunkRecorder(horizon, horizon, policy.scores_per_step) for _ in contexts]  # whole chunks
        for _step in range(math.ceil(cfg.episode_steps / horizon) * horizon):
            if recorders[0].needs_query:  # every episode queries at the same steps: one batched call
                state = torch.stack([x, goal - x], dim=1)
                if stochastic:
                    sample = policy.sample({OBS_STATE: state}, generator=generator)
                    for i, recorder in enumerate(recorders):
                        recorder.add_chunk(
                            {OBS_STATE: state[i]}, sample.actions[i], sample.scored[i], sample.log_probs[i]
                        )
                else:
                    actions = policy.act({OBS_STATE: state})
                    for i, recorder in enumerate(recorders):
                        recorder.add_chunk({}, actions[i])
            step = torch.as_tensor(np.stack([recorder.next_action() for recorder in recorders]))
            x = x + cfg.step_size * step[:, 0]
        rewards = ((x - goal).abs() < cfg.tolerance).float()
        trajectories = []
        if stochastic:
            for recorder in recorders:
                trajectory = recorder.trajectory(num_steps=cfg.episode_steps)
                assert trajectory is not None  # every query was sampled
                trajectories.append(trajectory)
        return rewards, trajectories

    def rollout(self, policy: Policy, contexts: list, group_size: int, seed: int) -> list[list[Trial]]:
        """RolloutSource: K stochastic trials for each context, all in one batch."""
        repeated = [c for c in contexts for _ in range(group_size)]
        generator = torch.Generator().manual_seed(seed)
        rewards, trajectories = self.run(policy, repeated, stochastic=True, generator=generator)
        return [
            [Trial(-1, float(rewards[i * group_size + k]), trajectories[i * group_size + k]) for k in range(group_size)]
            for i in range(len(contexts))
        ]

    def evaluate(self, policy: Policy, seed: int = 1234, episodes_per_context: int = 16) -> dict[str, float]:
        """Success of the stochastic policy (the one RIPT samples from) over all contexts.
        The seed is fixed so that evaluations differ only by the policy."""
        repeated = [c for c in self.contexts for _ in range(episodes_per_context)]
        rewards, _ = self.run(policy, repeated, stochastic=True, generator=torch.Generator().manual_seed(1234))
        return {"eval/success_rate": float(rewards.mean())}


@dataclass
class ReachTrainConfig:
    chunk_size: int = 2
    init_scale: float = 0.5
    task: ReachConfig = field(default_factory=ReachConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            iterations=30,
            learning_rate=1e-2,
            eval_every=1,
            parallel_groups=8,
            sampler=SamplerConfig(group_size=8, batch_size=64),
            loop=LoopConfig(ppo_epochs=4, minibatch_size=64, loss_normalization="token", target_kl=None),
        )
    )


def make_reach_policy(config: ReachTrainConfig) -> MLPPolicy:
    """The run's initial policy (seeded by train.seed: every call gives the same weights)."""
    torch.manual_seed(config.train.seed)
    return MLPPolicy(
        MLPPolicyConfig(
            state_dim=ReachTask.state_dim,
            action_dim=ReachTask.action_dim,
            chunk_size=config.chunk_size,
            init_scale=config.init_scale,
        )
    )


def make_reach_trainer(
    config: ReachTrainConfig, run_dir, tensorboard: bool = True, data_parallel: DataParallel | None = None
) -> RiptTrainer:
    policy = make_reach_policy(config)
    task = ReachTask(config.task)
    extra = {"task": asdict(config.task), "policy": asdict(policy.config)}
    return RiptTrainer(
        policy, task, config.train, run_dir, extra_config=extra, tensorboard=tensorboard, data_parallel=data_parallel
    )


def train_reach(config: ReachTrainConfig, run_dir, progress: bool = False) -> list[dict]:
    """Runs (or resumes) RIPT on the reach task; one metrics row per iteration (0 = before)."""
    trainer = make_reach_trainer(config, run_dir, tensorboard=progress)
    trainer.resume()
    try:
        return trainer.run(progress=progress)
    finally:
        trainer.close()
