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
import torch.nn.functional as F
from torch import Tensor, nn

from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST, OBS_LANGUAGE, OBS_STATE
from ript.core.distributions import standard_noise
from ript.core.policy import (
    PREVIOUS_ACTION,
    PREVIOUS_CONTINUES,
    PREVIOUS_INPUT_PREFIX,
    PREVIOUS_STEP,
    Observation,
    Policy,
    PolicySample,
)
from ript.policies.config import ChunkPolicyConfig, VLAConfig
from ript.policies.encoders import CameraEncoder, StateEncoder
from ript.policies.heads.regression import (
    Carry,
    RegressionHead,
    carried_noise,
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

    config: ChunkPolicyConfig
    obs_keys: tuple[str, ...]

    def _init_head_settings(self, config: ChunkPolicyConfig) -> None:
        self.config = config
        self.chunk_size = config.chunk_size
        self.action_dim = config.action_dim
        self.obs_keys = observation_keys(config)
        self.head_type = config.head
        # What the head's outputs mean as a distribution over action chunks: sampled, scored and
        # acted by this object, whose knobs (only this head's) it sets on the policy.
        self.head_distribution = HEAD_DISTRIBUTIONS[config.head](self, config)
        self.scores_per_step = self.head_distribution.scores_per_step

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
    @property
    def links_queries(self) -> bool:
        return bool(getattr(self.head_distribution, "links_queries", False))

    def prepare(self, obs: Observation) -> dict[str, Tensor]:
        missing = [key for key in self.obs_keys if key not in obs]
        if missing:
            raise KeyError(f"observation lacks {missing}; this policy reads {list(self.obs_keys)}")
        device = self.device
        out = {key: torch.as_tensor(obs[key]).to(device) for key in self.obs_keys}
        if self.links_queries and PREVIOUS_CONTINUES in obs:
            links = [PREVIOUS_ACTION, PREVIOUS_STEP, PREVIOUS_CONTINUES]
            links += [PREVIOUS_INPUT_PREFIX + key for key in self.obs_keys]
            missing = [key for key in links if key not in obs]
            if missing:
                raise KeyError(f"observation links to a previous query but lacks {missing}")
            out.update({key: torch.as_tensor(obs[key]).to(device) for key in links})
        if out[OBS_STATE].shape[-1] != self.config.state_dim:
            raise ValueError(
                f"{OBS_STATE} has {out[OBS_STATE].shape[-1]} features, the policy was built for "
                f"{self.config.state_dim} (image mode: proprio only; state mode: + object_state)"
            )
        return out

    @torch.no_grad()
    def sample(self, obs: Observation, generator: torch.Generator | None = None) -> PolicySample:
        obs = self.prepare(obs)
        # Noise is drawn where the generator lives: a CPU generator gives the same samples on any device.
        where = generator.device if generator is not None else self.device
        eps = self.head_distribution.noise(obs[OBS_STATE].shape[0], generator, where)
        return self.sample_with_noise(obs, eps.to(self.device))

    @torch.no_grad()
    def sample_with_noise(self, obs: Observation, eps: Tensor) -> PolicySample:
        """Sampling with given noise: standard Laplace/Gaussian eps [B, H, A] (regression) or
        uniforms [B, L] (tokenized). Same noise, same sample: used for torch/ONNX parity."""
        return self.head_distribution.sample(self.prepare(obs), eps.to(self.device))

    def log_prob(self, obs: Observation, scored: Tensor) -> Tensor:
        """Per-element log-probs: [B, H] (regression) or [B, L] (tokenized); differentiable for torch."""
        return self.head_distribution.log_prob(self.prepare(obs), torch.as_tensor(scored).to(self.device))

    @torch.no_grad()
    def act(self, obs: Observation) -> Tensor:
        """The mode: mu_theta (a Bernoulli gripper at +-1) or the greedy token sequence, decoded."""
        actions = self.head_distribution.mode(self.prepare(obs))
        return actions.clamp(self.config.action_low, self.config.action_high)

    @torch.no_grad()
    def distribution_stats(self, obs: Observation) -> dict[str, float]:
        """What the sampling distribution looks like on these observations (logged after each LOOP
        update): per explored dimension its mean sampling scale and the Bernoulli gripper's entropy
        and p(close), or the tokens' mean entropy."""
        return self.head_distribution.stats(self.prepare(obs))


class RegressionDistribution:
    """The regression head's chunk distribution (ript.policies.heads.regression): Laplace or
    Gaussian around mu_theta with the explored scale, a Bernoulli gripper when configured. Its
    knobs live on the policy (`policy.exploration_scale`, ...), as they are part of what is scored."""

    scores_per_step = True
    KNOBS = (
        "exploration_scale",
        "exploration_floor",
        "fixed_action_dims",
        "gripper_temperature",
        "noise_correlation",
        "correlate_across_queries",
    )

    def __init__(self, policy: ChunkHeadPolicy, config: ChunkPolicyConfig) -> None:
        self.policy = policy
        head = config.regression
        policy.distribution = head.distribution
        policy.exploration_scale = head.exploration_scale
        policy.exploration_floor = head.exploration_floor
        policy.fixed_action_dims = head.fixed_action_dims
        policy.gripper_dim = head.bernoulli_dim(config.action_dim)  # None: continuous
        policy.gripper_temperature = head.gripper_temperature
        policy.noise_correlation = head.noise_correlation
        policy.correlate_across_queries = head.correlate_across_queries

    @property
    def links_queries(self) -> bool:
        p = self.policy
        return bool(p.correlate_across_queries and p.noise_correlation)

    def knobs(self) -> dict:
        p = self.policy
        return {
            "exploration_scale": float(p.exploration_scale),
            "exploration_floor": float(p.exploration_floor),
            "fixed_action_dims": list(p.fixed_action_dims),
            "gripper_temperature": float(p.gripper_temperature),
            "noise_correlation": float(p.noise_correlation),
            "correlate_across_queries": bool(p.correlate_across_queries),
        }

    def noise(self, batch: int, generator: torch.Generator | None, where) -> Tensor:
        p = self.policy
        return standard_noise(p.distribution, (batch, p.chunk_size, p.action_dim), generator, where)

    def _arguments(self) -> tuple:
        p = self.policy
        return (p.exploration_floor, p.fixed_action_dims, p.gripper_dim, p.gripper_temperature, p.noise_correlation)

    def _carry(self, obs: dict[str, Tensor]) -> Carry | None:
        """The AR(1) noise each row continues from, recomputed under the current weights from the
        previous query's recorded inputs and action (None: no link; every row starts afresh)."""
        p = self.policy
        if not self.links_queries or PREVIOUS_CONTINUES not in obs:
            return None
        previous_obs = {key: obs[PREVIOUS_INPUT_PREFIX + key] for key in p.obs_keys}
        step = obs[PREVIOUS_STEP].long()
        if bool(((step < 0) | (step >= p.chunk_size)).any()):
            raise ValueError(f"{PREVIOUS_STEP} must be in [0, {p.chunk_size}), got {step.tolist()}")
        mean, scale = p.regression_params(previous_obs)
        rows = torch.arange(step.shape[0], device=step.device)
        return carried_noise(
            obs[PREVIOUS_ACTION].to(mean.dtype),
            mean[rows, step],
            scale[rows, step],
            obs[PREVIOUS_CONTINUES],
            p.exploration_scale,
            p.exploration_floor,
            p.fixed_action_dims,
            p.gripper_dim,
        )

    def sample(self, obs: dict[str, Tensor], eps: Tensor) -> PolicySample:
        p, cfg = self.policy, self.policy.config
        carry = self._carry(obs)
        mean, scale = p.regression_params(obs)
        actions, raw, logp = regression_sample(
            mean,
            scale,
            eps.to(mean.device),
            p.distribution,
            p.exploration_scale,
            cfg.action_low,
            cfg.action_high,
            *self._arguments(),
            carry,
        )
        return PolicySample(actions=actions, scored=raw, log_probs=logp)

    def log_prob(self, obs: dict[str, Tensor], scored: Tensor) -> Tensor:
        p = self.policy
        carry = self._carry(obs)
        mean, scale = p.regression_params(obs)
        return regression_log_prob(scored, mean, scale, p.distribution, p.exploration_scale, *self._arguments(), carry)

    def mode(self, obs: dict[str, Tensor]) -> Tensor:
        return regression_mode(self.policy.regression_params(obs)[0], self.policy.gripper_dim)

    def stats(self, obs: dict[str, Tensor]) -> dict[str, float]:
        p = self.policy
        mean, scale = p.regression_params(obs)
        scale = sampling_scale(scale, p.exploration_scale, p.exploration_floor)
        stats = {
            f"policy/scale/dim_{d}": float(scale[..., d].mean())
            for d in range(p.action_dim)
            if d not in p.fixed_action_dims and d != p.gripper_dim
        }
        if p.gripper_dim is not None and p.gripper_dim not in p.fixed_action_dims:
            logit = gripper_logit(mean, p.gripper_dim, p.gripper_temperature)
            prob = torch.sigmoid(logit)
            entropy = -(prob * F.logsigmoid(logit) + (1 - prob) * F.logsigmoid(-logit))
            stats.update(
                {"policy/gripper_entropy": float(entropy.mean()), "policy/gripper_p_close": float(prob.mean())}
            )
        return stats


class TokenDistribution:
    """The tokenized head's chunk distribution (ript.policies.heads.tokenized): tokens drawn one by
    one from the prior at `temperature`, within the `top_k` logits, decoded jointly into the chunk
    (so every executed step depends on every token: a started chunk is scored whole)."""

    scores_per_step = False
    KNOBS = ("temperature", "top_k")

    def __init__(self, policy: ChunkHeadPolicy, config: ChunkPolicyConfig) -> None:
        self.policy = policy
        policy.temperature = config.tokenized.temperature
        policy.top_k = config.tokenized.top_k
        policy.num_tokens = config.tokenized.tokens_per_chunk
        policy.bos_id = config.tokenized.vocab_size

    def knobs(self) -> dict:
        return {"temperature": float(self.policy.temperature), "top_k": int(self.policy.top_k)}

    def noise(self, batch: int, generator: torch.Generator | None, where) -> Tensor:
        return torch.rand((batch, self.policy.num_tokens), generator=generator, device=where)

    def tokens(self, obs: dict[str, Tensor], uniforms: Tensor | None) -> tuple[Tensor, Tensor]:
        """Token ids [B, L] and their log-probs, drawn by inverse CDF from uniforms (None: greedy)."""
        p = self.policy
        context = p.encode(obs)
        like = torch.zeros((obs[OBS_STATE].shape[0], p.num_tokens), dtype=torch.long, device=p.device)
        return sample_tokens(
            lambda tokens_in: p.token_logits(context, tokens_in), like, p.bos_id, p.temperature, p.top_k, uniforms
        )

    def sample(self, obs: dict[str, Tensor], eps: Tensor) -> PolicySample:
        p = self.policy
        ids, logp = self.tokens(obs, eps)
        actions = p.decode_tokens(ids).clamp(p.config.action_low, p.config.action_high)
        return PolicySample(actions=actions, scored=ids, log_probs=logp)

    def log_prob(self, obs: dict[str, Tensor], scored: Tensor) -> Tensor:
        p = self.policy
        bos = torch.full_like(scored[:, :1], p.bos_id)
        logits = p.token_logits(p.encode(obs), torch.cat([bos, scored[:, :-1]], dim=1))
        return token_log_prob(logits, scored, p.temperature, p.top_k)

    def mode(self, obs: dict[str, Tensor]) -> Tensor:
        return self.policy.decode_tokens(self.tokens(obs, None)[0])

    def stats(self, obs: dict[str, Tensor]) -> dict[str, float]:
        p = self.policy
        uniforms = torch.rand((obs[OBS_STATE].shape[0], p.num_tokens), generator=torch.Generator().manual_seed(0))
        ids = self.tokens(obs, uniforms.to(p.device))[0]
        return {"policy/token_entropy": float(-self.log_prob(obs, ids).mean())}


HEAD_DISTRIBUTIONS = {"regression": RegressionDistribution, "tokenized": TokenDistribution}
"""VLAConfig.head -> the distribution object a policy with that head samples and scores with."""


class VLAPolicy(ChunkHeadPolicy):
    policy_type = "vla"
    """Its name in ript.core.registry.POLICY_TYPES, written into its checkpoints."""

    """The torch VLA: encoders + trunk + a regression or tokenized head."""

    def __init__(self, config: ChunkPolicyConfig, encoder: nn.Module | None = None) -> None:
        """`encoder`: observation dict -> tokens [B, N, D], with `num_tokens` (N) and `state` (the
        StateEncoder that holds the normalisation); default: the compact VLA's own encoders."""
        super().__init__()
        self._init_head_settings(config)
        self.encoder = encoder if encoder is not None else ObservationEncoder(config)
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


SAMPLING_KNOBS = ("execute_steps", *RegressionDistribution.KNOBS, *TokenDistribution.KNOBS)
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
