"""LOOP = leave-one-out advantages (RLOO) + PPO clip, as in RIPT-VLA (Tan et al., 2025, Sec. 4).

Reads top to bottom: the two pure functions hold the math, `LoopUpdater` runs N epochs of
minibatched PPO over one batch of collected trials. No rclpy here: the sim trainer and the ROS
trainer node both call this file.

Ratios are per scored element of a policy query (an action step of a regression chunk, or an
action token of a tokenized chunk): `logp_*` are [N, T] with a boolean mask, one row per policy
query, and every row of a trial carries that trial's advantage. How elements are averaged is
`LoopConfig.loss_normalization`: every element alike ('token', the QueST reference), every query
alike ('query'), or every trial alike ('trial': each trajectory's mean, the OpenVLA-OFT reference;
a failing trial that runs to the step limit then no longer outweighs a success that ended early).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from ript.core.distributed import DataParallel


def rloo_advantages(rewards: Tensor) -> Tensor:
    """Leave-one-out advantages: A_k = R_k - mean_{j != k} R_j.

    rewards: [G, K] (G groups of K trials from the same context) -> [G, K].
    """
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [G, K], got shape {tuple(rewards.shape)}")
    num_groups, k = rewards.shape
    if k < 2:
        raise ValueError(f"leave-one-out needs K >= 2 trials per group, got K={k}")
    loo_mean = (rewards.sum(dim=1, keepdim=True) - rewards) / (k - 1)  # [G, K]
    return rewards - loo_mean


def ppo_clip_loss(
    logp_new: Tensor,
    logp_old: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    token_level: bool = True,
    weights: Tensor | None = None,
    data_parallel: DataParallel | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO clipped surrogate, asymmetric clip range [1 - clip_low, 1 + clip_high].

    logp_new, logp_old, mask: [N, T]; advantages: [N]; weights: [N] per-row element weights or None.
    token_level=True averages over all valid elements of the batch (a weighted mean with `weights`:
    1 / the trial's valid elements gives every trial the same total weight); False averages within
    each sequence (row), then over rows that have at least one valid element.
    Masked elements contribute nothing to the loss nor to its gradient.

    With `data_parallel`, the rows are this rank's share of a minibatch: the loss is divided by
    the whole minibatch's normaliser (so the ranks' gradients sum to the whole minibatch's) and
    the statistics are the whole minibatch's.
    """
    if logp_new.shape != logp_old.shape or logp_new.shape != mask.shape:
        raise ValueError(
            f"logp_new {tuple(logp_new.shape)}, logp_old {tuple(logp_old.shape)} and "
            f"mask {tuple(mask.shape)} must have the same [N, T] shape"
        )
    if advantages.shape != logp_new.shape[:1]:
        raise ValueError(f"advantages must be [N]={logp_new.shape[0]}, got {tuple(advantages.shape)}")
    mask = mask.bool()
    maskf = mask.to(logp_new.dtype)
    # Zero the log-ratio where masked *before* exp, so padding (possibly -inf or nan) cannot leak
    # into the loss or the gradient through 0 * nan.
    logratio = torch.where(mask, logp_new - logp_old.detach(), torch.zeros_like(logp_new))
    ratio = torch.exp(logratio)  # [N, T]
    adv = advantages.detach().to(logp_new.dtype).unsqueeze(1)  # [N, 1]
    pg_losses = -adv * ratio
    pg_losses_clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_element = torch.where(mask, torch.maximum(pg_losses, pg_losses_clipped), torch.zeros_like(ratio))

    num_valid = maskf.sum()
    floor: float | int
    if token_level and weights is not None:
        w = weights.detach().to(logp_new.dtype).unsqueeze(1) * maskf  # [N, T]
        total, normaliser, floor = (per_element * w).sum(), w.sum(), torch.finfo(w.dtype).tiny
    elif token_level:
        total, normaliser, floor = per_element.sum(), num_valid, 1.0
    else:
        per_row_count = maskf.sum(dim=1)  # [N]
        has_valid = per_row_count > 0
        per_row = per_element.sum(dim=1) / per_row_count.clamp(min=1.0)
        total, normaliser, floor = per_row[has_valid].sum(), has_valid.sum(), 1
    if data_parallel is not None:
        # Not this rank's count: dividing by its own would weight a rank's rows by their share.
        normaliser = data_parallel.sum(normaliser)
    loss = total / normaliser.clamp(min=floor)

    with torch.no_grad():
        # k3 estimator of KL(old || new), Schulman 2020: unbiased and always >= 0.
        kl = ((ratio - 1.0) - logratio) * maskf
        clipped_low = (ratio < 1.0 - clip_low) & (adv < 0) & mask
        clipped_high = (ratio > 1.0 + clip_high) & (adv > 0) & mask
        sums = {
            "approx_kl": kl.sum(),
            "clip_frac": (clipped_low | clipped_high).sum(),
            "clip_frac_low": clipped_low.sum(),
            "clip_frac_high": clipped_high.sum(),
            "ratio_mean": (ratio * maskf).sum(),
        }
        any_valid = bool(mask.any())
        ratio_max = ratio[mask].max() if any_valid else ratio.new_tensor(-math.inf)
        ratio_min = ratio[mask].min() if any_valid else ratio.new_tensor(math.inf)
        if data_parallel is not None:
            summed = data_parallel.sum(
                torch.stack([value.to(num_valid.dtype) for value in sums.values()] + [num_valid])
            )
            sums, num_valid = dict(zip(sums, summed[:-1])), summed[-1]
            ratio_max, negated_min = data_parallel.max(torch.stack([ratio_max, -ratio_min]))
            ratio_min, any_valid = -negated_min, bool(num_valid > 0)
        n = num_valid.clamp(min=1.0)
        stats = {key: float(value / n) for key, value in sums.items()}
        stats["ratio_max"] = float(ratio_max) if any_valid else 1.0
        stats["ratio_min"] = float(ratio_min) if any_valid else 1.0
    return loss, stats


LOSS_NORMALIZATIONS = ("token", "query", "trial")


def approx_kl(logp_new: Tensor, logp_old: Tensor, mask: Tensor, data_parallel: DataParallel | None = None) -> Tensor:
    """k3 estimate of KL(old || new) over the valid elements (Schulman 2020; >= 0); with
    `data_parallel`, over every rank's elements."""
    mask = mask.bool()
    logratio = torch.where(mask, logp_new - logp_old, torch.zeros_like(logp_new))
    total, count = (((torch.exp(logratio) - 1.0) - logratio) * mask).sum(), mask.sum()
    if data_parallel is not None:
        total, count = data_parallel.sum(torch.stack([total, count.to(total.dtype)]))
    return total / count.clamp(min=1)


@dataclass
class LoopConfig:
    """LOOP update hyperparameters. The defaults are the recipe that measured best on LIBERO
    (clip 0.2 is the RIPT-VLA paper's; 4 epochs of minibatches of 2048 queries, each trial weighted
    alike and the KL stop are the issue-18 runs' new arm, docs/results.md)."""

    ppo_epochs: int = 4
    """N: passes over the collected batch per optimisation step."""
    minibatch_size: int = 2048
    """Policy queries (rows of [N, T]) per gradient step."""
    clip_low: float = 0.2
    """epsilon_low: the ratio is clipped below at 1 - clip_low."""
    clip_high: float = 0.2
    """epsilon_high: the ratio is clipped above at 1 + clip_high."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm."""
    loss_normalization: str = "trial"
    """How scored elements are averaged: 'token' (every element alike), 'query' (each policy query's
    mean, then over queries) or 'trial' (each trial's mean, then over trials)."""
    target_kl: float | None = 0.1
    """Stop the update once a step would leave the policy further than this from the sampling
    policy (approx KL on that step's minibatch, re-scored after the step); that step is undone
    (None: never)."""

    def __post_init__(self) -> None:
        if self.ppo_epochs < 1:
            raise ValueError(f"ppo_epochs must be >= 1, got {self.ppo_epochs}")
        if self.minibatch_size < 1:
            raise ValueError(f"minibatch_size must be >= 1, got {self.minibatch_size}")
        if not (0.0 <= self.clip_low < 1.0) or self.clip_high < 0.0:
            raise ValueError(f"need 0 <= clip_low < 1 and clip_high >= 0, got {self.clip_low}, {self.clip_high}")
        if self.max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if self.loss_normalization not in LOSS_NORMALIZATIONS:
            raise ValueError(
                f"loss_normalization must be one of {LOSS_NORMALIZATIONS}, got {self.loss_normalization!r}"
            )
        if self.target_kl is not None and self.target_kl <= 0:
            raise ValueError(f"target_kl must be > 0 or None, got {self.target_kl}")


@dataclass
class LoopBatch:
    """Everything one LOOP step needs, one row per policy query.

    obs: observation tensors, each [N, ...]; scored: what the policy re-scores (actions or
    tokens), [N, ...]; logp_old, mask: [N, T]; advantages: [N] (the trial's advantage per row);
    weights: [N] element weight of each row for loss_normalization='trial' (None: all 1).
    """

    obs: Mapping[str, Tensor]
    scored: Tensor
    logp_old: Tensor
    mask: Tensor
    advantages: Tensor
    weights: Tensor | None = None

    def __len__(self) -> int:
        return self.logp_old.shape[0]

    def index(self, idx: Tensor) -> LoopBatch:
        return LoopBatch(
            obs={key: value[idx] for key, value in self.obs.items()},
            scored=self.scored[idx],
            logp_old=self.logp_old[idx],
            mask=self.mask[idx],
            advantages=self.advantages[idx],
            weights=None if self.weights is None else self.weights[idx],
        )


LogProbFn = Callable[[Mapping[str, Tensor], Tensor], Tensor]
"""(obs [N, ...], scored [N, ...]) -> per-element log-probs [N, T] under the current policy."""


class LoopUpdater:
    """Runs N epochs of minibatched PPO over a LoopBatch, with global-norm gradient clipping.

    With `data_parallel` (ript.core.distributed), the update is shared by that group's ranks: each
    calls `update` with the same batch and an identically seeded generator, scores its share of
    every minibatch, and all take the step the single-process update would take (up to float
    summation order). The trainable parameters are broadcast from rank 0 here."""

    def __init__(
        self,
        log_prob_fn: LogProbFn,
        parameters,
        optimizer: torch.optim.Optimizer,
        config: LoopConfig,
        generator: torch.Generator | None = None,
        data_parallel: DataParallel | None = None,
    ) -> None:
        self.log_prob_fn = log_prob_fn
        self.parameters = [p for p in parameters if p.requires_grad]
        self.optimizer = optimizer
        self.config = config
        self.generator = generator
        self.data_parallel = data_parallel
        if data_parallel is not None:
            data_parallel.broadcast_parameters(self.parameters)

    def update(self, batch: LoopBatch, on_epoch: Callable[[int, int], None] | None = None) -> dict[str, float]:
        """N epochs of PPO over `batch`; `on_epoch(epoch, N)` is called before each epoch (progress).

        With target_kl, each step's minibatch is re-scored after the step: a step that leaves the
        policy beyond target_kl is undone (parameters and optimizer state) and the update stops, so
        the policy left behind is the last one within the trust region. `stats/approx_kl_final` is
        KL(sampling policy || policy left behind) over the whole batch."""
        cfg = self.config
        n = len(batch)
        if n == 0:
            raise ValueError("cannot run a LOOP update on an empty batch")
        if cfg.loss_normalization == "trial" and batch.weights is None:
            raise ValueError("loss_normalization='trial' needs per-row weights (build_loop_batch sets them)")
        weights = batch.weights if cfg.loss_normalization == "trial" else None
        sums: dict[str, float] = {}
        num_minibatches = 0
        stopped_early = False
        for epoch in range(cfg.ppo_epochs):
            if on_epoch is not None:
                on_epoch(epoch + 1, cfg.ppo_epochs)
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, cfg.minibatch_size):
                rows = order[start : start + cfg.minibatch_size]
                # Decided on the whole minibatch, so every rank skips the same ones.
                if not bool(batch.mask[rows].any()):
                    continue
                mb = batch.index(rows if self.data_parallel is None else self.data_parallel.shard(rows))
                logp_new = self._log_prob(mb)
                loss, stats = ppo_clip_loss(
                    logp_new,
                    mb.logp_old,
                    mb.advantages,
                    mb.mask,
                    clip_low=cfg.clip_low,
                    clip_high=cfg.clip_high,
                    token_level=cfg.loss_normalization != "query",
                    weights=None if weights is None else mb.weights,
                    data_parallel=self.data_parallel,
                )
                saved = self._snapshot() if cfg.target_kl is not None else None
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.data_parallel is not None:
                    self.data_parallel.sum_gradients(self.parameters)
                    loss = self.data_parallel.sum(loss.detach())  # the whole minibatch's, for the log
                grad_norm = torch.nn.utils.clip_grad_norm_(self.parameters, cfg.max_grad_norm)
                self.optimizer.step()
                if saved is not None:
                    with torch.no_grad():
                        kl_after = float(approx_kl(self._log_prob(mb), mb.logp_old, mb.mask, self.data_parallel))
                    if cfg.target_kl is not None and kl_after > cfg.target_kl:
                        self._restore(saved)
                        stopped_early = True
                        stop_kl = kl_after  # logged: the averages below only cover the steps kept
                        break
                stats = {
                    "loss/policy": float(loss.detach()),
                    "stats/grad_norm": float(grad_norm),
                    **{f"stats/{key}": value for key, value in stats.items()},
                }
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + value
                num_minibatches += 1
            if stopped_early:
                break
        metrics = {key: value / max(num_minibatches, 1) for key, value in sums.items()}
        metrics["stats/num_minibatches"] = float(num_minibatches)
        metrics["stats/stopped_early"] = float(stopped_early)
        if stopped_early:
            metrics["stats/approx_kl_at_stop"] = stop_kl
        metrics["stats/approx_kl_final"] = self.batch_kl(batch)
        return metrics

    @torch.no_grad()
    def batch_kl(self, batch: LoopBatch) -> float:
        """KL(sampling policy || current policy) over every valid element of the batch (each rank
        scores its share of the rows)."""
        rows = torch.arange(len(batch))
        if self.data_parallel is not None:
            rows = self.data_parallel.shard(rows)
        total, count = 0.0, 0.0
        for start in range(0, len(rows), self.config.minibatch_size):
            mb = batch.index(rows[start : start + self.config.minibatch_size])
            valid = float(mb.mask.sum())
            if valid:
                total += float(approx_kl(self.log_prob_fn(mb.obs, mb.scored), mb.logp_old, mb.mask)) * valid
                count += valid
        if self.data_parallel is not None:
            total, count = self.data_parallel.sum(torch.tensor([total, count], dtype=torch.float64)).tolist()
        return total / max(count, 1.0)

    def _log_prob(self, mb: LoopBatch) -> Tensor:
        """log pi_theta of mb's rows. A rank whose share of a minibatch is empty scores nothing
        (the policy is never called on zero rows) but still joins every collective."""
        if len(mb) == 0:
            return torch.zeros_like(mb.logp_old, requires_grad=True)
        return self.log_prob_fn(mb.obs, mb.scored)

    def _snapshot(self) -> tuple[list[Tensor], dict]:
        return [p.detach().clone() for p in self.parameters], copy.deepcopy(self.optimizer.state_dict())

    def _restore(self, saved: tuple[list[Tensor], dict]) -> None:
        params, optimizer_state = saved
        with torch.no_grad():
            for p, value in zip(self.parameters, params):
                p.copy_(value)
        self.optimizer.load_state_dict(optimizer_state)

    def config_dict(self) -> dict:
        return asdict(self.config)
