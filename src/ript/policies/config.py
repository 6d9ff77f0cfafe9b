"""Typed configs of the compact VLA: one dataclass per part, each field with a one-line doc.

`VLAConfig` is saved inside every checkpoint (as a plain dict) and rebuilt with `from_dict`, so a
checkpoint alone is enough to rebuild the policy that wrote it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Self

from ript.core.constants import LIBERO_ACTION_DIM

INPUT_MODES = ("image", "state")
HEADS = ("regression", "tokenized")
BACKBONES = ("cnn", "resnet18")
REGRESSION_LOSSES = {"l1": "laplace", "mse": "gaussian"}
GRIPPER_MODELS = ("bernoulli", "continuous")


@dataclass
class RegressionHeadConfig:
    """OpenVLA-OFT-like head: H action queries decoded in parallel, plus a scale head sigma_theta."""

    loss: str = "l1"
    """'l1' (policy read as a factorised Laplace) or 'mse' (factorised Gaussian)."""
    init_scale: float = 0.1
    """Scale (Laplace b or Gaussian std) the scale head outputs before calibration."""
    min_scale: float = 1e-3
    """Floor on the scale, so log-probs stay finite after calibration on near-perfect fits."""
    exploration_scale: float = 1.0
    """Factor on sigma_theta while sampling; part of the scored distribution (see VLAPolicy)."""
    exploration_floor: float = 0.0
    """Lower bound on exploration_scale * sigma_theta while sampling and scoring (0: none). A dimension
    the demos never vary calibrates to a scale near min_scale: RL cannot explore it, and a tiny shift
    of its mean swings the log-prob by nats, which sends PPO ratios far off 1."""
    fixed_action_dims: tuple[int, ...] = ()
    """Action dimensions executed at the mean and left out of the log-prob: dimensions the task
    does not need to explore (rotation, for top-down pick-and-place). Part of the scored distribution."""
    noise_correlation: float = 0.0
    """rho in [0, 1): exploration noise AR(1)-correlated along the chunk's steps (time-correlated,
    one smooth deviation per query as rho -> 1), scored exactly; 0: independent per step."""
    correlate_across_queries: bool = False
    """With noise_correlation > 0: the AR(1) noise runs on from one query's last executed step into
    the next query's chunk, so a trial explores a deviation that outlasts a chunk (a whole carry,
    not a 4-step wiggle); scored exactly (each query is re-scored with its link to the previous)."""
    gripper: str = "bernoulli"
    """'bernoulli': the gripper dimension is open/close, as robosuite's Panda gripper and the Franka
    hand execute it (only the command's sign counts): its mean output is a logit, SFT fits it with a
    BCE, it is sampled and scored as a Bernoulli and executed as -1 (open) or +1 (close).
    'continuous': a Laplace/Gaussian like every other dimension (its noise then spends the LOOP
    gradient and KL budget on sign-preserving jitter, issue 18)."""
    gripper_dim: int = -1
    """Which action dimension is the gripper (negative counts from the end: LIBERO's and Franka's last)."""
    gripper_temperature: float = 1.0
    """Bernoulli gripper: p(close) = sigmoid(logit / T) while sampling and scoring; part of the scored distribution."""

    def __post_init__(self) -> None:
        if self.gripper not in GRIPPER_MODELS:
            raise ValueError(f"gripper must be one of {GRIPPER_MODELS}, got {self.gripper!r}")
        if not 0.0 <= self.noise_correlation < 1.0:
            raise ValueError(f"noise_correlation must be in [0, 1), got {self.noise_correlation}")
        if self.gripper_temperature <= 0:
            raise ValueError(f"gripper_temperature must be > 0, got {self.gripper_temperature}")
        if self.loss not in REGRESSION_LOSSES:
            raise ValueError(f"loss must be one of {sorted(REGRESSION_LOSSES)}, got {self.loss!r}")
        if not 0 < self.min_scale < self.init_scale:
            raise ValueError(f"need 0 < min_scale < init_scale, got {self.min_scale}, {self.init_scale}")
        if self.exploration_scale <= 0:
            raise ValueError(f"exploration_scale must be > 0, got {self.exploration_scale}")
        if self.exploration_floor < 0:
            raise ValueError(f"exploration_floor must be >= 0, got {self.exploration_floor}")
        self.fixed_action_dims = tuple(sorted({int(d) for d in self.fixed_action_dims}))
        if any(d < 0 for d in self.fixed_action_dims):
            raise ValueError(f"fixed_action_dims must be >= 0, got {self.fixed_action_dims}")

    @property
    def distribution(self) -> str:
        return REGRESSION_LOSSES[self.loss]

    def bernoulli_dim(self, action_dim: int) -> int | None:
        """The gripper's index in [0, action_dim) when it is a Bernoulli, else None."""
        return self.gripper_dim % action_dim if self.gripper == "bernoulli" else None


@dataclass
class TokenizedHeadConfig:
    """QueST-like head: an FSQ action tokenizer and an autoregressive token prior."""

    fsq_levels: tuple[int, ...] = (8, 5, 5, 5)
    """FSQ levels per code dimension; the vocabulary is their product (1000 by default)."""
    tokens_per_chunk: int = 4
    """L: tokens per action chunk (each token summarises H / L action steps)."""
    tokenizer_hidden_dim: int = 256
    """Width of the tokenizer's MLP encoder and decoder."""
    temperature: float = 1.0
    """Softmax temperature while sampling; part of the scored distribution."""
    top_k: int = 0
    """Sample among the k most likely tokens (0: all); part of the scored distribution."""

    def __post_init__(self) -> None:
        self.fsq_levels = tuple(int(level) for level in self.fsq_levels)
        if not self.fsq_levels or any(level < 2 for level in self.fsq_levels):
            raise ValueError(f"fsq_levels must be non-empty, each >= 2, got {self.fsq_levels}")
        if self.tokens_per_chunk < 1:
            raise ValueError(f"tokens_per_chunk must be >= 1, got {self.tokens_per_chunk}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 <= self.top_k <= self.vocab_size:
            raise ValueError(f"top_k must be in [0, {self.vocab_size}], got {self.top_k}")

    @property
    def vocab_size(self) -> int:
        return math.prod(self.fsq_levels)


@dataclass
class ChunkPolicyConfig:
    """What every action-chunk policy has, whatever encodes its observations: the transformer
    trunk over observation tokens, action chunking and one action head (`VLAPolicy` builds it on
    its own encoders, `ript.policies.hf_vla` on a Hugging Face vision-language model)."""

    state_dim: int = 8
    """Size of observation.state: proprio (8, see libero_data.PROPRIO_KEYS), + object poses in state mode."""
    hidden_dim: int = 128
    """D: width of every token in the trunk."""
    num_layers: int = 4
    """Transformer blocks in the trunk."""
    num_heads: int = 4
    """Attention heads per block."""
    mlp_ratio: int = 4
    """Feed-forward width as a multiple of D."""
    dropout: float = 0.0
    """Dropout in the trunk (0: deterministic forward, needed for exact PPO ratios)."""
    action_dim: int = LIBERO_ACTION_DIM
    """A: dimensions of one action."""
    chunk_size: int = 8
    """H: actions predicted per query."""
    execute_steps: int | None = None
    """h: actions executed per query (ChunkRecorder: the rollouts, the policy node); None: the whole
    chunk. On a 1-demo LIBERO policy, executing 4 of 4 gave 53 % where 1 of 4 gave 10 %, and it
    explores per chunk as the references do (docs/results.md)."""
    action_low: float = -1.0
    """Executed actions are clipped to [action_low, action_high] (LIBERO's delta-pose range)."""
    action_high: float = 1.0
    head: str = "regression"
    """'regression' (OFT-like) or 'tokenized' (QueST-like)."""
    regression: RegressionHeadConfig = field(default_factory=RegressionHeadConfig)
    tokenized: TokenizedHeadConfig = field(default_factory=TokenizedHeadConfig)

    def __post_init__(self) -> None:
        if isinstance(self.regression, dict):
            self.regression = RegressionHeadConfig(**self.regression)
        if isinstance(self.tokenized, dict):
            self.tokenized = TokenizedHeadConfig(**self.tokenized)
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.state_dim < 1 or self.action_dim < 1:
            raise ValueError(f"state_dim and action_dim must be >= 1, got {self.state_dim}, {self.action_dim}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} must be divisible by num_heads {self.num_heads}")
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        if self.execute_steps is None:
            self.execute_steps = self.chunk_size
        if not 1 <= self.execute_steps <= self.chunk_size:
            raise ValueError(f"need 1 <= execute_steps <= chunk_size, got {self.execute_steps}, {self.chunk_size}")
        if self.action_low >= self.action_high:
            raise ValueError(f"action_low {self.action_low} must be < action_high {self.action_high}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not -self.action_dim <= self.regression.gripper_dim < self.action_dim:
            raise ValueError(f"gripper_dim {self.regression.gripper_dim} is outside action_dim {self.action_dim}")
        if any(d >= self.action_dim for d in self.regression.fixed_action_dims):
            raise ValueError(
                f"fixed_action_dims {self.regression.fixed_action_dims} must be < action_dim {self.action_dim}"
            )
        if self.head == "tokenized" and self.chunk_size % self.tokenized.tokens_per_chunk:
            raise ValueError(
                f"chunk_size {self.chunk_size} must be divisible by tokens_per_chunk {self.tokenized.tokens_per_chunk}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown} (checkpoint from a newer version?)")
        regression = data.get("regression")
        if isinstance(regression, dict) and "gripper" not in regression:
            # Written before the gripper option existed: its gripper was trained and scored as continuous.
            data = {**data, "regression": {**regression, "gripper": "continuous"}}
        return cls(**data)


@dataclass
class VLAConfig(ChunkPolicyConfig):
    """The compact VLA: its own encoders (cameras, state, instruction embedding) before the trunk."""

    input_mode: str = "image"
    """'image' (agentview + wrist cameras, proprio, language) or 'state' (object poses + proprio)."""
    image_size: int = 128
    """Square camera resolution the encoder expects (images are resized if they differ)."""
    backbone: str = "cnn"
    """'cnn' (small, from scratch) or 'resnet18' (torchvision-compatible keys)."""
    pretrained_backbone: str | None = None
    """Local ResNet-18 weights for 'resnet18': a path, 'auto' (torch hub cache if present) or None."""
    image_tokens_side: int = 4
    """Each camera becomes image_tokens_side**2 tokens (average-pooled feature map)."""
    use_language: bool = True
    """Condition on the instruction embedding (observation.language)."""
    language_dim: int = 384
    """Instruction embedding size (all-MiniLM-L6-v2: 384)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be one of {INPUT_MODES}, got {self.input_mode!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.image_size < 32 or self.image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16 and >= 32, got {self.image_size}")
