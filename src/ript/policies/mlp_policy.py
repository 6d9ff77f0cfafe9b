"""A small state-input chunk policy with a closed-form Gaussian/Laplace action distribution.

The reference implementation of the `Policy` contract: used by the LOOP learning test and as the
cheapest policy for CPU experiments. Executed actions are clipped to the action bounds, but the
distribution scores the raw sample, so clipping never corrupts a log-prob.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ript.core.constants import OBS_STATE
from ript.core.distributions import DISTRIBUTIONS
from ript.core.policy import Observation, Policy, PolicySample


@dataclass
class MLPPolicyConfig:
    state_dim: int
    action_dim: int
    chunk_size: int = 1
    hidden_dim: int = 64
    num_layers: int = 2
    distribution: str = "gaussian"
    """'gaussian' (MSE-trained head) or 'laplace' (L1-trained head)."""
    init_scale: float = 0.3
    """Initial std (Gaussian) or b (Laplace) of every action dimension."""
    action_low: float = -1.0
    action_high: float = 1.0

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {sorted(DISTRIBUTIONS)}, got {self.distribution!r}")
        if self.init_scale <= 0:
            raise ValueError(f"init_scale must be > 0, got {self.init_scale}")
        if self.action_low >= self.action_high:
            raise ValueError(f"action_low {self.action_low} must be < action_high {self.action_high}")


class MLPPolicy(Policy):
    def __init__(self, config: MLPPolicyConfig) -> None:
        super().__init__()
        self.config = config
        self.chunk_size = config.chunk_size
        self.action_dim = config.action_dim
        layers: list[nn.Module] = []
        width = config.state_dim
        for _ in range(config.num_layers):
            layers += [nn.Linear(width, config.hidden_dim), nn.Tanh()]
            width = config.hidden_dim
        layers.append(nn.Linear(width, config.chunk_size * config.action_dim))
        self.mean_net = nn.Sequential(*layers)
        # State-independent log-scale per (step, dim): simple and well-conditioned for PPO.
        self.log_scale = nn.Parameter(
            torch.full((config.chunk_size, config.action_dim), float(torch.log(torch.tensor(config.init_scale))))
        )
        self._log_prob_fn, self._sample_fn = DISTRIBUTIONS[config.distribution]

    def distribution_params(self, obs: Observation) -> tuple[Tensor, Tensor]:
        state = obs[OBS_STATE]
        mean = self.mean_net(state).view(-1, self.chunk_size, self.action_dim)  # [B, H, A]
        scale = self.log_scale.exp().expand_as(mean)
        return mean, scale

    def sample(self, obs: Observation, generator: torch.Generator | None = None) -> PolicySample:
        mean, scale = self.distribution_params(obs)
        raw = self._sample_fn(mean, scale, generator)
        return PolicySample(
            actions=raw.clamp(self.config.action_low, self.config.action_high),
            scored=raw,
            log_probs=self._log_prob_fn(raw, mean, scale),
        )

    def log_prob(self, obs: Observation, scored: Tensor) -> Tensor:
        mean, scale = self.distribution_params(obs)
        return self._log_prob_fn(scored, mean, scale)

    def act(self, obs: Observation) -> Tensor:
        mean, _ = self.distribution_params(obs)
        return mean.clamp(self.config.action_low, self.config.action_high)
