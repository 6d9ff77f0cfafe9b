"""Closed-form factorised action distributions for regression heads (OpenVLA-OFT-like).

A regression head predicts a mean; a scale head predicts sigma (or b). An L1-trained head is read
as a factorised Laplace, an MSE-trained head as a factorised Gaussian. Log-probs are per action
step: summed over the action dimensions, one value per step of the chunk, so [B, H, A] -> [B, H].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
LOG_2 = math.log(2.0)


def gaussian_log_prob(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """log N(x; mean, std^2) summed over the last dim: [..., A] -> [...]."""
    z = (x - mean) / std
    return (-0.5 * z.pow(2) - torch.log(std) - LOG_SQRT_2PI).sum(dim=-1)


def laplace_log_prob(x: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    """log Laplace(x; loc, scale) summed over the last dim: [..., A] -> [...]."""
    return (-(x - loc).abs() / scale - torch.log(scale) - LOG_2).sum(dim=-1)


def sample_gaussian(mean: Tensor, std: Tensor, generator: torch.Generator | None = None) -> Tensor:
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + std * noise


def sample_laplace(loc: Tensor, scale: Tensor, generator: torch.Generator | None = None) -> Tensor:
    # Inverse CDF with u in (-1/2, 1/2); eps keeps log1p finite.
    eps = torch.finfo(loc.dtype).eps
    u = torch.rand(loc.shape, generator=generator, dtype=loc.dtype, device=loc.device) - 0.5
    u = u.clamp(-0.5 + eps, 0.5 - eps)
    return loc - scale * torch.sign(u) * torch.log1p(-2.0 * u.abs())


DISTRIBUTIONS = {
    "gaussian": (gaussian_log_prob, sample_gaussian),
    "laplace": (laplace_log_prob, sample_laplace),
}


def standard_cdf(kind: str, eps: Tensor) -> Tensor:
    """P(E <= eps) for the unit member of the family: turns the same eps into a uniform (a
    Bernoulli dimension is drawn from the noise a continuous one would have used)."""
    if kind == "laplace":
        return 0.5 + 0.5 * torch.sign(eps) * (-torch.expm1(-eps.abs()))
    if kind == "gaussian":
        return 0.5 * (1.0 + torch.erf(eps / math.sqrt(2.0)))
    raise ValueError(f"distribution must be one of {sorted(DISTRIBUTIONS)}, got {kind!r}")


def standard_noise(
    kind: str, shape: tuple[int, ...], generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> Tensor:
    """Draws eps from the unit member of a location-scale family: x = loc + scale * eps.

    Drawing eps first lets a torch policy and an onnxruntime policy sample the same actions from
    the same noise (parity tests, replay).
    """
    zeros = torch.zeros(shape, device=device)
    if kind not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {sorted(DISTRIBUTIONS)}, got {kind!r}")
    return DISTRIBUTIONS[kind][1](zeros, torch.ones_like(zeros), generator)
