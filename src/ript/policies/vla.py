"""The compact VLA: observation tokens -> transformer trunk -> action chunk head.

    image mode: [agentview tokens ; wrist tokens ; proprio token ; language token]
    state mode: [state tokens (object poses + proprio) ; language token]

then either H action queries decoded in parallel (regression head) or an autoregressive token
prior with an FSQ tokenizer (tokenized head). Both implement the `Policy` contract; chunk
queueing (execute h of H) is `ChunkRecorder`'s job (ript.core.recorder).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST, OBS_LANGUAGE, OBS_STATE
from ript.core.distributions import standard_noise
from ript.core.policy import Observation, Policy, PolicySample
from ript.policies.config import VLAConfig
from ript.policies.encoders import CameraEncoder, StateEncoder
from ript.policies.heads.regression import (
    RegressionHead,
    gripper_logit,
    regression_log_prob,
    regression_mode,
    regression_sample,
    sampling_scale,
)
from ript.policies.heads.tokenized import TokenPrior, sample_tokens, token_log_prob
from ript.policies.tokenizer import ActionTokenizer
from ript.policies.transformer import Trunk, causal_mask


def observation_keys(config: VLAConfig) -> tuple[str, ...]:
    """The observation keys the model reads, in the order the ONNX graphs take them."""
    keys = [OBS_STATE]
    if config.input_mode == "image":
        keys += [OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST]
    if config.use_language:
        keys.append(OBS_LANGUAGE)
    return tuple(keys)


class ObservationEncoder(nn.Module):
    """Observation dict -> prefix tokens [B, N, D] (no attention yet)."""

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.hidden_dim
        self.cameras = nn.ModuleDict()
        if config.input_mode == "image":
            for name in ("agentview", "wrist"):
                self.cameras[name] = CameraEncoder(
                    config.backbone, config.image_size, config.image_tokens_side, dim, config.pretrained_backbone
                )
        # State mode gets more state tokens: the state is the whole observation there.
        self.state = StateEncoder(config.state_dim, dim, num_tokens=1 if config.input_mode == "image" else 4)
        self.language = nn.Linear(config.language_dim, dim) if config.use_language else None
        self.num_tokens = (
            self.state.num_tokens + int(config.use_language) + sum(config.image_tokens_side**2 for _ in self.cameras)
        )

    def forward(self, obs: Observation) -> Tensor:
        tokens = []
        if self.cameras:
            tokens.append(self.cameras["agentview"](obs[OBS_IMAGE_AGENTVIEW]))
            tokens.append(self.cameras["wrist"](obs[OBS_IMAGE_WRIST]))
        tokens.append(self.state(obs[OBS_STATE]))
        if self.language is not None:
            tokens.append(self.language(obs[OBS_LANGUAGE].float()).unsqueeze(1))
        return torch.cat(tokens, dim=1)


class ChunkHeadPolicy(Policy):
    """Sampling, scoring and acting for both heads, written once over four network hooks.

    `VLAPolicy` implements the hooks with torch modules, `OnnxPolicy` with onnxruntime sessions,
    so both sample and score with this same code. Exploration knobs (part of the scored
    distribution: set them before sampling *and* scoring): `exploration_scale` and
    `exploration_floor`, `fixed_action_dims`, `gripper_temperature`, `noise_correlation` (regression),
    `temperature` and `top_k` (tokenized).
    """

    config: VLAConfig
    obs_keys: tuple[str, ...]

    def _init_head_settings(self, config: VLAConfig) -> None:
        self.config = config
        self.chunk_size = config.chunk_size
        self.action_dim = config.action_dim
        self.obs_keys = observation_keys(config)
        self.head_type = config.head
        self.scores_per_step = config.head == "regression"  # tokens are decoded jointly into the chunk
        # Only this head's knobs exist: hasattr(policy, 'temperature') says whether a knob applies.
        if config.head == "regression":
            self.distribution = config.regression.distribution
            self.exploration_scale = config.regression.exploration_scale
            self.exploration_floor = config.regression.exploration_floor
            self.fixed_action_dims = config.regression.fixed_action_dims
            self.gripper_dim = config.regression.bernoulli_dim(config.action_dim)  # None: continuous
            self.gripper_temperature = config.regression.gripper_temperature
            self.noise_correlation = config.regression.noise_correlation
        else:
            self.temperature = config.tokenized.temperature
            self.top_k = config.tokenized.top_k
            self.num_tokens = config.tokenized.tokens_per_chunk
            self.bos_id = config.tokenized.vocab_size

    # hooks ---------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    def regression_params(self, obs: Observation) -> tuple[Tensor, Tensor]:
        """mu_theta, sigma_theta, each [B, H, A]."""
        raise NotImplementedError

    def encode(self, obs: Observation) -> Tensor:
        """Observation -> context: the trunk's cached keys/values of the observation tokens,
        [layers, 2, B, heads, N, head_dim] (tokenized head; computed once per query)."""
        raise NotImplementedError

    def token_logits(self, context: Tensor, tokens_in: Tensor) -> Tensor:
        """context, tokens_in [B, L] = [BOS, t_1 ..] -> next-token logits [B, L, V]."""
        raise NotImplementedError

    def decode_tokens(self, ids: Tensor) -> Tensor:
        """Token ids [B, L] -> unclipped action chunk [B, H, A]."""
        raise NotImplementedError

    # Policy contract -----------------------------------------------------------------------
    def prepare(self, obs: Observation) -> dict[str, Tensor]:
        missing = [key for key in self.obs_keys if key not in obs]
        if missing:
            raise KeyError(f"observation lacks {missing}; this policy reads {list(self.obs_keys)}")
        device = self.device
        out = {key: torch.as_tensor(obs[key]).to(device) for key in self.obs_keys}
        if out[OBS_STATE].shape[-1] != self.config.state_dim:
            raise ValueError(
                f"{OBS_STATE} has {out[OBS_STATE].shape[-1]} features, the policy was built for "
                f"{self.config.state_dim} (image mode: proprio only; state mode: + object_state)"
            )
        return out

    @torch.no_grad()
    def sample(self, obs: Observation, generator: torch.Generator | None = None) -> PolicySample:
        obs = self.prepare(obs)
        batch = obs[OBS_STATE].shape[0]
        # Noise is drawn where the generator lives: a CPU generator gives the same samples on any device.
        where = generator.device if generator is not None else self.device
        if self.head_type == "regression":
            eps = standard_noise(self.distribution, (batch, self.chunk_size, self.action_dim), generator, where)
        else:
            eps = torch.rand((batch, self.num_tokens), generator=generator, device=where)
        return self.sample_with_noise(obs, eps.to(self.device))

    @torch.no_grad()
    def sample_with_noise(self, obs: Observation, eps: Tensor) -> PolicySample:
        """Sampling with given noise: standard Laplace/Gaussian eps [B, H, A] (regression) or
        uniforms [B, L] (tokenized). Same noise, same sample: used for torch/ONNX parity."""
        obs = self.prepare(obs)
        cfg = self.config
        if self.head_type == "regression":
            mean, scale = self.regression_params(obs)
            actions, raw, logp = regression_sample(
                mean,
                scale,
                eps.to(mean.device),
                self.distribution,
                self.exploration_scale,
                cfg.action_low,
                cfg.action_high,
                self.exploration_floor,
                self.fixed_action_dims,
                self.gripper_dim,
                self.gripper_temperature,
                self.noise_correlation,
            )
            return PolicySample(actions=actions, scored=raw, log_probs=logp)
        ids, logp = self._sample_tokens(obs, eps.to(self.device))
        actions = self.decode_tokens(ids).clamp(cfg.action_low, cfg.action_high)
        return PolicySample(actions=actions, scored=ids, log_probs=logp)

    def _sample_tokens(self, obs: dict[str, Tensor], uniforms: Tensor | None) -> tuple[Tensor, Tensor]:
        context = self.encode(obs)
        like = torch.zeros((obs[OBS_STATE].shape[0], self.num_tokens), dtype=torch.long, device=self.device)
        return sample_tokens(
            lambda tokens_in: self.token_logits(context, tokens_in),
            like,
            self.bos_id,
            self.temperature,
            self.top_k,
            uniforms,
        )

    def log_prob(self, obs: Observation, scored: Tensor) -> Tensor:
        """Per-element log-probs: [B, H] (regression) or [B, L] (tokenized); differentiable for torch."""
        obs = self.prepare(obs)
        scored = torch.as_tensor(scored).to(self.device)
        if self.head_type == "regression":
            mean, scale = self.regression_params(obs)
            return regression_log_prob(
                scored,
                mean,
                scale,
                self.distribution,
                self.exploration_scale,
                self.exploration_floor,
                self.fixed_action_dims,
                self.gripper_dim,
                self.gripper_temperature,
                self.noise_correlation,
            )
        bos = torch.full_like(scored[:, :1], self.bos_id)
        logits = self.token_logits(self.encode(obs), torch.cat([bos, scored[:, :-1]], dim=1))
        return token_log_prob(logits, scored, self.temperature, self.top_k)

    @torch.no_grad()
    def act(self, obs: Observation) -> Tensor:
        """The mode: mu_theta (a Bernoulli gripper at +-1) or the greedy token sequence, decoded."""
        obs = self.prepare(obs)
        if self.head_type == "regression":
            actions = regression_mode(self.regression_params(obs)[0], self.gripper_dim)
        else:
            actions = self.decode_tokens(self._sample_tokens(obs, None)[0])
        return actions.clamp(self.config.action_low, self.config.action_high)

    @torch.no_grad()
    def distribution_stats(self, obs: Observation) -> dict[str, float]:
        """What the sampling distribution looks like on these observations: the mean sampling scale
        per explored continuous dimension, the Bernoulli gripper's mean entropy (nats) and p(close),
        or the tokens' mean entropy. Logged after each LOOP update."""
        obs = self.prepare(obs)
        if self.head_type != "regression":
            ids = self._sample_tokens(
                obs,
                torch.rand((obs[OBS_STATE].shape[0], self.num_tokens), generator=torch.Generator().manual_seed(0)).to(
                    self.device
                ),
            )[0]
            return {"policy/token_entropy": float(-self.log_prob(obs, ids).mean())}
        mean, scale = self.regression_params(obs)
        scale = sampling_scale(scale, self.exploration_scale, self.exploration_floor)
        stats = {
            f"policy/scale/dim_{d}": float(scale[..., d].mean())
            for d in range(self.action_dim)
            if d not in self.fixed_action_dims and d != self.gripper_dim
        }
        if self.gripper_dim is not None and self.gripper_dim not in self.fixed_action_dims:
            logit = gripper_logit(mean, self.gripper_dim, self.gripper_temperature)
            p = torch.sigmoid(logit)
            entropy = -(p * torch.nn.functional.logsigmoid(logit) + (1 - p) * torch.nn.functional.logsigmoid(-logit))
            stats.update({"policy/gripper_entropy": float(entropy.mean()), "policy/gripper_p_close": float(p.mean())})
        return stats


class VLAPolicy(ChunkHeadPolicy):
    policy_type = "vla"
    """Its name in ript.core.registry.POLICY_TYPES, written into its checkpoints."""

    """The torch VLA: encoders + trunk + a regression or tokenized head."""

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        self._init_head_settings(config)
        self.encoder = ObservationEncoder(config)
        self.trunk = Trunk(config.hidden_dim, config.num_layers, config.num_heads, config.mlp_ratio, config.dropout)
        if config.head == "regression":
            self.head = RegressionHead(config.hidden_dim, config.chunk_size, config.action_dim, config.regression)
        else:
            tok = config.tokenized
            self.tokenizer = ActionTokenizer(
                config.chunk_size, config.action_dim, tok.tokens_per_chunk, tok.fsq_levels, tok.tokenizer_hidden_dim
            )
            self.prior = TokenPrior(config.hidden_dim, tok.vocab_size, tok.tokens_per_chunk)
            self.register_buffer(
                "allowed", causal_mask(self.encoder.num_tokens, tok.tokens_per_chunk), persistent=False
            )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def regression_features(self, obs: Observation) -> Tensor:
        """Trunk outputs at the H action queries, [B, H, D]."""
        prefix = self.encoder(obs)  # [B, N, D]
        queries = self.head.queries.expand(prefix.shape[0], -1, -1)
        return self.trunk(torch.cat([prefix, queries], dim=1))[:, -self.chunk_size :]

    def regression_params(self, obs: Observation) -> tuple[Tensor, Tensor]:
        return self.head(self.regression_features(obs))

    def encode(self, obs: Observation) -> Tensor:
        # Observation tokens attend only to each other (prefix-LM), so their keys/values do not
        # depend on the action tokens: compute them once, reuse them for all L steps.
        return self.trunk.forward_cached(self.encoder(obs))[1]

    def token_logits(self, context: Tensor, tokens_in: Tensor) -> Tensor:
        out, _ = self.trunk.forward_cached(self.prior.embed_inputs(tokens_in), self.allowed, past=context)
        return self.prior.out(out)

    def decode_tokens(self, ids: Tensor) -> Tensor:
        return self.tokenizer.decode(ids)

    # -- normalisation -----------------------------------------------------------------------

    def set_normalization(self, stats: dict) -> None:
        """Copies state mean/std from SFT statistics into buffers (saved and exported with the weights)."""
        self.encoder.state.set_stats(torch.as_tensor(stats["state_mean"]), torch.as_tensor(stats["state_std"]))


SAMPLING_KNOBS = (
    "execute_steps",
    "exploration_scale",
    "exploration_floor",
    "fixed_action_dims",
    "gripper_temperature",
    "noise_correlation",
    "temperature",
    "top_k",
)
"""Settings of a trained policy that an RL run may change: how many steps of a chunk run, and the
knobs that define the sampled and scored distribution (`ript train` and the trainer node)."""


def apply_sampling_knobs(policy: ChunkHeadPolicy, knobs: dict) -> None:
    """Sets the given knobs (None: keep the checkpoint's) through the config, so its checks run
    (a fixed dimension past action_dim, a negative floor, execute_steps past the chunk)."""
    for knob, value in knobs.items():
        if value is None:
            continue
        if knob not in SAMPLING_KNOBS:
            raise ValueError(f"unknown sampling knob {knob!r}; known: {SAMPLING_KNOBS}")
        if knob == "execute_steps":
            policy.config = replace(policy.config, execute_steps=int(value))
            continue
        if not hasattr(policy, knob):
            raise ValueError(f"{knob} does not apply to a {policy.config.head} head")
        head = policy.config.head
        checked = replace(policy.config, **{head: replace(getattr(policy.config, head), **{knob: value})})
        setattr(policy, knob, getattr(getattr(checked, head), knob))


def build_policy(config: VLAConfig) -> VLAPolicy:
    return VLAPolicy(config)


def policy_from_config(config: dict) -> VLAPolicy:
    """The "vla" policy type's builder (ript.core.registry.POLICY_TYPES): a checkpoint's config -> the policy."""
    vla_config = VLAConfig.from_dict(config)
    # A checkpoint holds the fine-tuned backbone; the original pretrained file is not needed.
    vla_config.pretrained_backbone = None
    return build_policy(vla_config)
