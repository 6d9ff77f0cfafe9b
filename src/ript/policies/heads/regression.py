"""Regression head (OpenVLA-OFT-like) and its closed-form action distribution.

H learned action queries ride through the trunk with the observation tokens and are decoded in
parallel: mean mu_theta [B, H, A] (trained with L1 or MSE during SFT) and scale sigma_theta
[B, H, A] (the scale head, calibrated by NLL with the mean frozen: `ript calibrate-scale`).

The policy is pi(a | c) = prod_{t, i} p(a_ti; mu_ti, max(lambda * sigma_ti, floor)), with p Laplace
(L1) or Gaussian (MSE), lambda the exploration scale and floor the exploration floor. Both are part
of the scored distribution: samples drawn with lambda = 2 are scored with lambda = 2. The robot
executes clip(a); the log-prob is of the unclipped a, so clipping never corrupts it.

With noise_correlation rho > 0 the noise of a chunk is AR(1) along its steps, z_t = rho z_{t-1} +
sqrt(1 - rho^2) eps_t (each step's marginal unchanged), so one query explores one smooth
deviation instead of H independent ones; the log-prob is exact through the innovations eps_t,
and step t's term depends only on steps <= t, so masking unexecuted steps stays exact. With a
`carry` (the AR(1) noise of the previous query's last executed step, for rows that continue a
trial) the process runs on across queries: z_0 = rho carry + sqrt(1 - rho^2) eps_0, so one trial
explores one slow deviation that can outlast a chunk (a carry of the object, not a 4-step wiggle).
Scored with the carry recomputed under the weights being scored, the per-query terms multiply to
the exact density of the whole trial's executed noise.

A Bernoulli gripper (`RegressionHeadConfig.gripper`) replaces that dimension's factor by
Bernoulli(sigmoid(mu_g / T)) over {-1 open, +1 close}: the mean output is its logit, the scale
head's value there is unused. It is drawn from the same standard noise eps (through the standard
CDF), so torch and ONNX still sample the same actions from the same eps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ript.core.distributions import DISTRIBUTIONS, standard_cdf
from ript.policies.config import RegressionHeadConfig


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class RegressionHead(nn.Module):
    """Action queries + two linear read-outs: query features [B, H, D] -> (mean, scale) [B, H, A]."""

    def __init__(self, dim: int, chunk_size: int, action_dim: int, config: RegressionHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.queries = nn.Parameter(torch.randn(1, chunk_size, dim) * 0.02)
        self.mean_out = nn.Linear(dim, action_dim)
        self.scale_head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, action_dim))
        # Start at exactly init_scale everywhere: zero last weights, bias at softplus^-1.
        nn.init.zeros_(self.scale_head[-1].weight)
        nn.init.constant_(self.scale_head[-1].bias, _inverse_softplus(config.init_scale - config.min_scale))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        mean = self.mean_out(features)
        scale = F.softplus(self.scale_head(features)) + self.config.min_scale
        return mean, scale


def sampling_scale(scale: Tensor, exploration_scale: float, floor: float = 0.0) -> Tensor:
    """The scale actions are sampled and scored with: max(lambda * sigma, floor)."""
    scaled = scale * exploration_scale
    return scaled.clamp(min=floor) if floor > 0 else scaled


Carry = tuple[Tensor, Tensor]
"""(noise [B, A] of the step before the chunk, continues [B] bool): rows with continues False start
a fresh AR(1) process (a trial's first query)."""


def correlate(eps: Tensor, rho: float, carry: Carry | None = None) -> Tensor:
    """iid noise [B, H, A] -> AR(1) noise along H with the same per-step marginal scale, continuing
    from `carry` on the rows that continue a trial."""
    if rho == 0.0:
        return eps
    out = eps.clone()
    keep = math.sqrt(1.0 - rho * rho)
    if carry is not None:
        noise, continues = carry
        out[:, 0] = torch.where(continues[:, None], rho * noise + keep * eps[:, 0], eps[:, 0])
    for t in range(1, eps.shape[1]):
        out[:, t] = rho * out[:, t - 1] + keep * eps[:, t]
    return out


def innovations(z: Tensor, rho: float, carry: Carry | None = None) -> Tensor:
    """Inverse of `correlate`: AR(1) noise [B, H, A] -> the iid eps it was built from."""
    if rho == 0.0:
        return z
    keep = math.sqrt(1.0 - rho * rho)
    eps = z.clone()
    eps[:, 1:] = (z[:, 1:] - rho * z[:, :-1]) / keep
    if carry is not None:
        noise, continues = carry
        eps[:, 0] = torch.where(continues[:, None], (z[:, 0] - rho * noise) / keep, z[:, 0])
    return eps


def carried_noise(
    previous_action: Tensor,
    previous_mean: Tensor,
    previous_scale: Tensor,
    continues: Tensor,
    exploration_scale: float,
    floor: float = 0.0,
    fixed_dims: tuple[int, ...] = (),
    gripper_dim: int | None = None,
) -> Carry:
    """The carry of a query: the standardized noise (raw - mu) / scale of the previous query's last
    executed step ([B, A] each), zero on dimensions that are not explored continuously."""
    if gripper_dim in fixed_dims:
        gripper_dim = None
    noise = (previous_action - previous_mean) / sampling_scale(previous_scale, exploration_scale, floor)
    explored = torch.zeros(noise.shape[-1], dtype=torch.bool, device=noise.device)
    explored[_continuous_dims(noise.shape[-1], fixed_dims, gripper_dim)] = True
    return torch.where(explored, noise, torch.zeros_like(noise)), continues.bool()


def _continuous_dims(action_dim: int, fixed_dims: tuple[int, ...], gripper_dim: int | None) -> list[int]:
    return [d for d in range(action_dim) if d not in fixed_dims and d != gripper_dim]


def gripper_logit(mean: Tensor, gripper_dim: int, temperature: float) -> Tensor:
    """Logit of p(close) at each step: [B, H, A] -> [B, H]."""
    return mean[..., gripper_dim] / temperature


def regression_log_prob(
    raw: Tensor,
    mean: Tensor,
    scale: Tensor,
    distribution: str,
    exploration_scale: float,
    floor: float = 0.0,
    fixed_dims: tuple[int, ...] = (),
    gripper_dim: int | None = None,
    gripper_temperature: float = 1.0,
    noise_correlation: float = 0.0,
    carry: Carry | None = None,
) -> Tensor:
    """log pi(raw | c) per action step: [B, H, A] -> [B, H] (summed over the explored action dims;
    a Bernoulli gripper, unless fixed, adds log p(open/close) with raw > 0 read as close)."""
    log_prob_fn, _ = DISTRIBUTIONS[distribution]
    if gripper_dim in fixed_dims:
        gripper_dim = None
    explored = _continuous_dims(raw.shape[-1], fixed_dims, gripper_dim)
    scale = sampling_scale(scale[..., explored], exploration_scale, floor)
    x, loc = raw[..., explored], mean[..., explored]
    if noise_correlation:
        # density of the innovations; the Jacobian of z -> eps is 1 / sqrt(1 - rho^2) per step
        # that follows another (every step but a trial's very first)
        if carry is not None:
            carry = (carry[0][..., explored], carry[1])
        x = loc + scale * innovations((x - loc) / scale, noise_correlation, carry)
    logp = log_prob_fn(x, loc, scale)
    if noise_correlation:
        jacobian = len(explored) * 0.5 * math.log1p(-(noise_correlation**2))
        logp[:, 1:] -= jacobian
        if carry is not None:
            logp[:, 0] -= jacobian * carry[1].to(logp.dtype)
    if gripper_dim is not None:
        logit = gripper_logit(mean, gripper_dim, gripper_temperature)
        logp = logp + F.logsigmoid(torch.where(raw[..., gripper_dim] > 0, logit, -logit))
    return logp


def regression_sample(
    mean: Tensor,
    scale: Tensor,
    eps: Tensor,
    distribution: str,
    exploration_scale: float,
    low: float,
    high: float,
    floor: float = 0.0,
    fixed_dims: tuple[int, ...] = (),
    gripper_dim: int | None = None,
    gripper_temperature: float = 1.0,
    noise_correlation: float = 0.0,
    carry: Carry | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """raw = mu + max(lambda * sigma, floor) * z, z = eps made AR(1) along the chunk (eps = 0 on
    fixed dims); a Bernoulli gripper closes (+1) where CDF(eps) < p(close), else opens (-1);
    fixed, it takes the mode. Returns (executed = clip(raw), raw, log_probs [B, H])."""
    if fixed_dims:
        eps = eps.clone()
        eps[..., list(fixed_dims)] = 0.0
    raw = mean + sampling_scale(scale, exploration_scale, floor) * correlate(eps, noise_correlation, carry)
    if gripper_dim is not None:
        logit = gripper_logit(mean, gripper_dim, gripper_temperature)
        if gripper_dim in fixed_dims:
            closed = logit > 0
        else:
            closed = standard_cdf(distribution, eps[..., gripper_dim]) < torch.sigmoid(logit)
        raw = raw.clone()
        raw[..., gripper_dim] = torch.where(closed, 1.0, -1.0).to(raw.dtype)
    logp = regression_log_prob(
        raw,
        mean,
        scale,
        distribution,
        exploration_scale,
        floor,
        fixed_dims,
        gripper_dim,
        gripper_temperature,
        noise_correlation,
        carry,
    )
    return raw.clamp(low, high), raw, logp


def regression_mode(mean: Tensor, gripper_dim: int | None) -> Tensor:
    """The most likely action: mu, with a Bernoulli gripper at its more likely state (+-1)."""
    if gripper_dim is None:
        return mean
    mode = mean.clone()
    mode[..., gripper_dim] = torch.where(mean[..., gripper_dim] > 0, 1.0, -1.0).to(mean.dtype)
    return mode


def gripper_bce(mean: Tensor, actions: Tensor, gripper_dim: int) -> Tensor:
    """SFT loss of a Bernoulli gripper per step: BCE of its logit against demo command > 0, [B, H]."""
    return F.binary_cross_entropy_with_logits(
        mean[..., gripper_dim], (actions[..., gripper_dim] > 0).to(mean.dtype), reduction="none"
    )


def scale_nll(
    actions: Tensor,
    mean: Tensor,
    scale: Tensor,
    distribution: str,
    mask: Tensor | None = None,
    gripper_dim: int | None = None,
) -> Tensor:
    """Mean negative log-likelihood per action step of demo actions [B, H, A] (mask [B, H])."""
    logp = regression_log_prob(actions, mean, scale, distribution, 1.0, gripper_dim=gripper_dim)  # [B, H]
    if mask is None:
        return -logp.mean()
    mask = mask.to(logp.dtype)
    return -(logp * mask).sum() / mask.sum().clamp(min=1.0)
