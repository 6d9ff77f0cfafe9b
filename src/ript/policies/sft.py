"""Stage 2: supervised fine-tuning from demonstrations, and the scale-head calibration step.

Demos are featurised with `libero_data.policy_observation`, the same function the env rollouts
use, so SFT and RL see identical inputs. Targets are the next H demo actions (the chunk runs past
the episode end: padded with the last action and masked out of the regression loss).

Regression head: L1 (Laplace) or MSE (Gaussian) on mu_theta. Tokenized head: first the FSQ
tokenizer learns to reconstruct chunks (`tokenizer_steps`), then it is frozen and the prior
learns the demo tokens by cross-entropy. `calibrate_scale` then fits sigma_theta by NLL with
everything else frozen (the step the reference release left out).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST, OBS_STATE
from ript.policies.config import VLAConfig
from ript.policies.heads.regression import gripper_bce, scale_nll
from ript.policies.libero_data import IMAGE_KEYS, OBJECT_STATE, Demo, policy_observation
from ript.policies.vla import VLAPolicy


@dataclass
class SFTConfig:
    """Supervised fine-tuning hyperparameters."""

    steps: int = 2000
    """Gradient steps on the policy (for the tokenized head: on the prior, after the tokenizer)."""
    tokenizer_steps: int = 1000
    """Tokenized head only: gradient steps on the FSQ autoencoder before the prior."""
    batch_size: int = 64
    """Samples (time steps of any demo) per gradient step."""
    learning_rate: float = 3e-4
    """AdamW learning rate (cosine-decayed to 10 % over the run)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm."""
    image_shift: int = 4
    """Random-shift augmentation in pixels (DrQ-style pad + crop); 0 disables it."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.tokenizer_steps < 0:
            raise ValueError(f"steps and tokenizer_steps must be >= 0, got {self.steps}, {self.tokenizer_steps}")
        if self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError(f"need batch_size >= 1 and learning_rate > 0, got {self.batch_size}, {self.learning_rate}")
        if self.image_shift < 0:
            raise ValueError(f"image_shift must be >= 0, got {self.image_shift}")


def libero_policy_inputs(
    obs: Mapping[str, np.ndarray], config: VLAConfig, instruction_embedding: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """LIBERO-keyed obs (one step or [T, ...]) -> exactly the inputs this policy reads.

    Image mode sees proprio only (no privileged object poses); state mode sees no images.
    """
    drop = (OBJECT_STATE,) if config.input_mode == "image" else IMAGE_KEYS
    kept = {key: value for key, value in obs.items() if key not in drop}
    size = config.image_size if config.input_mode == "image" else None
    return policy_observation(kept, instruction_embedding if config.use_language else None, image_size=size)


def action_chunks(actions: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """actions [T, A] -> chunks [T, H, A] (a_t .. a_{t+H-1}, last action repeated) and valid mask [T, H]."""
    length = len(actions)
    index = np.arange(length)[:, None] + np.arange(horizon)[None, :]  # [T, H]
    mask = index < length
    return actions[np.minimum(index, length - 1)], mask


class DemoDataset:
    """All time steps of all demos as tensors: obs (policy keys), chunks [N, H, A], mask [N, H]."""

    def __init__(self, demos: Sequence[Demo], config: VLAConfig, embeddings: Mapping[str, np.ndarray]) -> None:
        if not demos:
            raise ValueError("no demos to train on")
        per_key: dict[str, list[np.ndarray]] = {}
        chunks, masks = [], []
        for demo in demos:
            inputs = libero_policy_inputs(demo.obs, config, embeddings.get(demo.instruction))
            for key, value in inputs.items():
                per_key.setdefault(key, []).append(value)
            chunk, mask = action_chunks(np.asarray(demo.actions, dtype=np.float32), config.chunk_size)
            chunks.append(chunk)
            masks.append(mask)
        self.obs = {key: torch.from_numpy(np.concatenate(values)) for key, values in per_key.items()}
        self.chunks = torch.from_numpy(np.concatenate(chunks)).float()
        self.mask = torch.from_numpy(np.concatenate(masks))
        self.actions = torch.from_numpy(np.concatenate([np.asarray(d.actions, np.float32) for d in demos]))
        if self.chunks.shape[-1] != config.action_dim:
            raise ValueError(f"demo actions have {self.chunks.shape[-1]} dims, config.action_dim={config.action_dim}")

    def __len__(self) -> int:
        return len(self.chunks)

    def stats(self) -> dict[str, list[float]]:
        """Normalisation statistics saved in the checkpoint (state features and actions)."""
        out = {}
        for name, x in (("state", self.obs[OBS_STATE].float()), ("action", self.actions)):
            out.update(
                {
                    f"{name}_mean": x.mean(0),
                    f"{name}_std": x.std(0) if len(x) > 1 else torch.ones(x.shape[1]),
                    f"{name}_min": x.min(0).values,
                    f"{name}_max": x.max(0).values,
                }
            )
        return {key: [float(v) for v in value] for key, value in out.items()}

    def batch(
        self, index: Tensor, device: torch.device, shift: int = 0, generator: torch.Generator | None = None
    ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        obs = {key: value[index].to(device) for key, value in self.obs.items()}
        if shift:
            for key in (OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST):
                if key in obs:
                    obs[key] = random_shift(obs[key], shift, generator)
        return obs, self.chunks[index].to(device), self.mask[index].to(device)


def random_shift(images: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """uint8 [B, H, W, 3]: replicate-pad by `pad`, crop back at a random offset per image."""
    b, h, w, _ = images.shape
    padded = F.pad(images.permute(0, 3, 1, 2).float(), (pad,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator)
    crops = [padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(offsets.tolist())]
    return torch.stack(crops).permute(0, 2, 3, 1).to(torch.uint8)


def _run(
    params: list[torch.nn.Parameter],
    steps: int,
    loss_fn: Callable[[Tensor], Tensor],
    dataset: DemoDataset,
    config: SFTConfig,
    phase: str,
    log: Callable[[dict], None] | None,
    progress: bool,
) -> list[dict]:
    from tqdm import tqdm

    if steps == 0:
        return []
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=0.1 * config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    history = []
    bar = tqdm(range(steps), desc=phase, unit="step", disable=not progress, mininterval=1.0)
    for step in bar:
        index = torch.randint(0, len(dataset), (config.batch_size,), generator=generator)
        loss = loss_fn(index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        row = {"phase": phase, "step": step, f"loss/{phase}": float(loss.detach()), "stats/grad_norm": float(grad_norm)}
        history.append(row)
        if log is not None:
            log(row)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{row[f'loss/{phase}']:.4f}")
    return history


def train_sft(
    policy: VLAPolicy,
    dataset: DemoDataset,
    config: SFTConfig,
    log: Callable[[dict], None] | None = None,
    progress: bool = True,
    stats: dict | None = None,
) -> list[dict]:
    """Fits the policy to the demos; returns one metrics row per step (phase, step, loss).

    The state normalisation comes from `stats` when given (fine-tuning a pre-trained policy: its
    network was trained on those; a few new demos would give a very different mean/std), else
    from the dataset."""
    torch.manual_seed(config.seed)
    device = policy.device
    policy.set_normalization(stats if stats is not None else dataset.stats())
    policy.train()
    gen = torch.Generator().manual_seed(config.seed + 1)

    def batch(index: Tensor):
        return dataset.batch(index, device, config.image_shift if policy.config.input_mode == "image" else 0, gen)

    history: list[dict] = []
    if policy.head_type == "regression":
        distance = F.l1_loss if policy.config.regression.loss == "l1" else F.mse_loss
        gripper = policy.gripper_dim

        def regression_loss(index: Tensor) -> Tensor:
            obs, chunks, mask = batch(index)
            mean, _ = policy.regression_params(obs)
            per_dim = distance(mean, chunks, reduction="none")  # [B, H, A]
            if gripper is not None:  # a Bernoulli gripper's mean is a logit: BCE against close/open
                per_dim = per_dim.clone()
                per_dim[..., gripper] = gripper_bce(mean, chunks, gripper)
            per_step = per_dim.mean(-1)  # [B, H]
            return (per_step * mask).sum() / mask.sum().clamp(min=1)

        # The scale head is left at init_scale here: it is fitted by `calibrate_scale`.
        params = [
            p for name, p in policy.named_parameters() if p.requires_grad and not name.startswith("head.scale_head")
        ]
        history += _run(params, config.steps, regression_loss, dataset, config, "sft", log, progress)
    else:

        def tokenizer_loss(index: Tensor) -> Tensor:
            return policy.tokenizer.reconstruction_loss(dataset.chunks[index].to(device))

        history += _run(
            list(policy.tokenizer.parameters()),
            config.tokenizer_steps,
            tokenizer_loss,
            dataset,
            config,
            "tokenizer",
            log,
            progress,
        )

        def prior_loss(index: Tensor) -> Tensor:
            obs, chunks, _ = batch(index)
            with torch.no_grad():
                _, ids = policy.tokenizer.encode(chunks)  # [B, L] targets from the frozen tokenizer
            logits = policy.token_logits(policy.encode(obs), policy.prior.inputs(ids))  # [B, L, V]
            return F.cross_entropy(logits.flatten(0, 1), ids.flatten())

        params = [p for name, p in policy.named_parameters() if p.requires_grad and not name.startswith("tokenizer.")]
        history += _run(params, config.steps, prior_loss, dataset, config, "sft", log, progress)
    policy.eval()
    return history


def calibrate_scale(
    policy: VLAPolicy,
    dataset: DemoDataset,
    config: SFTConfig,
    log: Callable[[dict], None] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Fits the scale head sigma_theta by NLL of the demo chunks, mean and trunk frozen."""
    if policy.head_type != "regression":
        raise ValueError("scale calibration applies to the regression head only")
    device = policy.device
    policy.eval()  # frozen features: no dropout
    trainable = {p: p.requires_grad for p in policy.parameters()}  # restored after: a frozen base stays frozen
    for p in policy.parameters():
        p.requires_grad_(False)
    scale_params = list(policy.head.scale_head.parameters())
    for p in scale_params:
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(config.seed + 2)

    def nll(index: Tensor) -> Tensor:
        obs, chunks, mask = dataset.batch(index, device, 0, gen)
        with torch.no_grad():
            features = policy.regression_features(obs)
        mean, scale = policy.head(features)
        return scale_nll(chunks, mean.detach(), scale, policy.distribution, mask, policy.gripper_dim)

    try:
        return _run(scale_params, config.steps, nll, dataset, config, "scale", log, progress)
    finally:
        for p, flag in trainable.items():
            p.requires_grad_(flag)
