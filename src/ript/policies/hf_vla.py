"""A Hugging Face vision-language model as the observation encoder of an action-chunk policy
(policy type "hf_vla"): bring your own VLM, post-train it with LOOP.

    cameras + instruction  -> the VLM's own processor -> VLM (LoRA on its language model)
                           -> last hidden states [B, P, D_vlm] -> linear -> [B, P, D]
    proprio                -> StateEncoder -> 1 token
    [prompt tokens ; state token] -> the action trunk -> H action queries decoded in parallel
                                     (regression head) or the token prior (tokenized head)

The VLM is the prefix encoder, a small transformer decodes the action chunk from its features
(SmolVLA's layout: a VLM with an action expert on top; OpenVLA-OFT's parallel action queries),
so every head, the Bernoulli gripper and the exploration knobs of the compact VLA apply unchanged:
`HFVLAPolicy` is a `VLAPolicy` with this encoder.

The base model is read with `from_pretrained(<local directory>)`, never from a hub. It is named in
the config by path and SHA-256 (of every file in that directory) and is not stored in checkpoints:
they hold the LoRA adapters, the projection, the trunk and the heads. A checkpoint whose base
model changed on disk is refused.

Instructions are tokenised once, by the processor, into a fixed-length id vector that travels as
observation.language (the slot the compact VLA uses for its sentence embedding), so rollouts, the
trial store and the ROS nodes carry it unchanged. Images are turned into pixel inputs by the
processor's image processor at each query.

Tested architectures (tests/policy/test_hf_vla.py, tiny random configs saved and loaded locally):
Idefics3 (SmolVLM, the backbone SmolVLA post-trains) and PaliGemma (π0's backbone). Others that
`AutoModelForImageTextToText` loads and whose processor takes `images=[[camera, ...], ...]` follow
the same path but are untested.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST, OBS_LANGUAGE, OBS_STATE
from ript.policies.config import ChunkPolicyConfig
from ript.policies.encoders import StateEncoder
from ript.policies.vla import VLAPolicy

CAMERA_KEYS = (OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST)
PROMPT_PAD = -1.0
"""Marks the unused tail of a prompt id vector (ids are >= 0)."""


@dataclass
class LoraSettings:
    """LoRA adapters (peft) on the language model's linear layers; the base weights stay frozen."""

    rank: int = 16
    """r; 0 freezes the whole VLM (only the projection, trunk and heads train)."""
    alpha: float = 32.0
    """Scaling numerator: the adapter's update is multiplied by alpha / rank."""
    dropout: float = 0.0
    """LoRA dropout (0 keeps the forward deterministic, which exact PPO ratios need)."""
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Names of the language model's linear layers that get adapters (matched on the last name part)."""

    def __post_init__(self) -> None:
        self.targets = tuple(self.targets)
        if self.rank < 0 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise ValueError(
                f"need rank >= 0, alpha > 0, 0 <= dropout < 1; got {self.rank}, {self.alpha}, {self.dropout}"
            )
        if self.rank and not self.targets:
            raise ValueError("LoRA with rank > 0 needs at least one target layer name")


@dataclass
class HFVLAConfig(ChunkPolicyConfig):
    """A VLM from a local directory + the action trunk and head of `ChunkPolicyConfig`."""

    backbone: str = ""
    """Local directory of the base VLM (config.json, weights, processor files), as
    `save_pretrained` writes it."""
    backbone_sha256: str = ""
    """SHA-256 of the files in `backbone`; filled when the policy is first built, checked on every load."""
    image_size: int = 128
    """Square resolution the cameras are rendered/resized to before the processor (which resizes
    to the VLM's own input size)."""
    max_prompt_tokens: int = 192
    """Length of the prompt id vector (image placeholders + instruction); longer prompts are refused.
    SmolVLM-256M/500M: 2 cameras x (64 image tokens + 3 around them) + the instruction, ~150."""
    image_splitting: bool = False
    """Let an Idefics3/SmolVLM processor tile each image into crops + a global view (its default for
    documents). Off: one view per camera, a fixed and small number of image tokens (SmolVLA's choice)."""
    freeze_vision: bool = True
    """Keep the vision tower and its projector frozen (their forward then saves no activations)."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    autocast_bf16: bool = True
    """On CUDA, run the VLM under bfloat16 autocast (the trunk and heads stay float32)."""

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)
        super().__post_init__()
        if not self.backbone:
            raise ValueError("hf_vla needs policy.backbone: the local directory of a Hugging Face VLM")
        if self.max_prompt_tokens < 1:
            raise ValueError(f"max_prompt_tokens must be >= 1, got {self.max_prompt_tokens}")

    # What the observation plumbing (libero_policy_inputs, the policy node) reads of a policy config.
    @property
    def input_mode(self) -> str:
        return "image"

    @property
    def use_language(self) -> bool:
        return True


def backbone_sha256(folder: str | Path) -> str:
    """SHA-256 over the names and bytes of every file directly in `folder` (weights, config, processor)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_backbone(folder: str | Path, image_splitting: bool = False) -> tuple[nn.Module, Any]:
    """(the VLM without its LM head, its processor), both from a local directory only."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} is not a Hugging Face model directory (no config.json); hf_vla loads base models "
            "from a local directory only (download it elsewhere, or build one: `ript hf-backbone`)"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True)
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    if hasattr(processor.image_processor, "do_image_splitting"):
        processor.image_processor.do_image_splitting = image_splitting
    return model.model, processor


def language_model_prefix(vlm: nn.Module) -> str:
    """Name of the VLM's language-model submodule (Idefics3: text_model; PaliGemma: language_model)."""
    decoder = vlm.get_decoder()
    for name, module in vlm.named_modules():
        if module is decoder and name:
            return name
    raise ValueError(f"cannot find the language model inside {type(vlm).__name__}")


def add_lora(vlm: nn.Module, settings: LoraSettings) -> list[str]:
    """Injects LoRA adapters into the language model's target layers; returns their names."""
    from peft import LoraConfig, inject_adapter_in_model

    prefix = language_model_prefix(vlm) + "."
    targets = [
        name
        for name, module in vlm.named_modules()
        if isinstance(module, nn.Linear) and name.startswith(prefix) and name.rsplit(".", 1)[-1] in settings.targets
    ]
    if not targets:
        raise ValueError(f"no linear layer of {prefix[:-1]} is named one of {settings.targets}")
    config = LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=targets, bias="none"
    )
    inject_adapter_in_model(config, vlm)
    return targets


class HFObservationEncoder(nn.Module):
    """Observation dict -> [prompt tokens ; state token], [B, max_prompt_tokens + 1, D]."""

    def __init__(self, config: HFVLAConfig, vlm: nn.Module, processor: Any) -> None:
        super().__init__()
        self.config = config
        self.vlm = vlm
        self.processor = processor
        text_config = vlm.config.get_text_config()
        self.pad_id = int(getattr(text_config, "pad_token_id", None) or 0)
        self.image_inputs = [
            name
            for name in processor.image_processor.model_input_names
            if name in ("pixel_values", "pixel_attention_mask")
        ]
        self.wants_token_types = "token_type_ids" in getattr(processor, "model_input_names", ())
        self.project = nn.Linear(text_config.hidden_size, config.hidden_dim)
        self.state = StateEncoder(config.state_dim, config.hidden_dim, num_tokens=1)
        self.num_tokens = config.max_prompt_tokens + 1

    def prompt(self, instruction: str) -> str:
        """The text the processor expands: one image placeholder per camera, then the instruction."""
        return self.processor.image_token * len(CAMERA_KEYS) + instruction

    def encode_instructions(self, instructions: list[str]) -> np.ndarray:
        """Instructions -> float32 [N, max_prompt_tokens] prompt ids (PROMPT_PAD after the end),
        as the processor tokenises them with the cameras' image tokens expanded."""
        size = self.config.image_size
        blank = [np.zeros((size, size, 3), dtype=np.uint8) for _ in CAMERA_KEYS]
        out = np.full((len(instructions), self.config.max_prompt_tokens), PROMPT_PAD, dtype=np.float32)
        for row, text in enumerate(instructions):
            ids = self.processor(text=[self.prompt(text)], images=[blank], return_tensors="np")["input_ids"][0]
            if len(ids) > self.config.max_prompt_tokens:
                raise ValueError(
                    f"the prompt for {text!r} is {len(ids)} tokens, policy.max_prompt_tokens is "
                    f"{self.config.max_prompt_tokens}: raise it (before SFT; it sizes the trunk's input)"
                )
            out[row, : len(ids)] = ids
        return out

    def pixels(self, obs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Camera images uint8 [B, H, W, 3] -> the VLM's image inputs, through its image processor."""
        cameras = [obs[key].detach().cpu().numpy() for key in CAMERA_KEYS]
        batch = [[camera[i] for camera in cameras] for i in range(len(cameras[0]))]
        inputs = self.processor.image_processor(images=batch, return_tensors="pt")
        device = self.project.weight.device
        return {name: inputs[name].to(device) for name in self.image_inputs if name in inputs}

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        prompt = obs[OBS_LANGUAGE]
        mask = prompt >= 0
        ids = torch.where(mask, prompt, torch.full_like(prompt, self.pad_id)).long()
        inputs: dict[str, Tensor] = {"input_ids": ids, "attention_mask": mask.long(), **self.pixels(obs)}
        if self.wants_token_types:
            inputs["token_type_ids"] = torch.zeros_like(ids)  # all prefix: attend both ways
        autocast: contextlib.AbstractContextManager = contextlib.nullcontext()
        if self.config.autocast_bf16 and ids.device.type == "cuda":
            autocast = torch.autocast("cuda", dtype=torch.bfloat16)
        with autocast:
            hidden = self.vlm(**inputs, use_cache=False).last_hidden_state
        tokens = self.project(hidden.float()) * mask.unsqueeze(-1)  # padding positions carry nothing
        return torch.cat([tokens, self.state(obs[OBS_STATE])], dim=1)


class HFVLAPolicy(VLAPolicy):
    """The action-chunk policy on a Hugging Face VLM (see the module docstring)."""

    policy_type = "hf_vla"

    def __init__(self, config: HFVLAConfig) -> None:
        folder = Path(config.backbone).expanduser().resolve()
        digest = backbone_sha256(folder) if folder.is_dir() else ""
        if not digest:
            raise FileNotFoundError(f"hf_vla backbone {folder} does not exist (the base model is loaded from disk)")
        if config.backbone_sha256 and config.backbone_sha256 != digest:
            raise ValueError(
                f"the base model at {folder} is not the one this policy was trained on "
                f"(sha256 {digest[:12]}…, expected {config.backbone_sha256[:12]}…): its adapters would not fit"
            )
        config.backbone, config.backbone_sha256 = str(folder), digest
        vlm, processor = load_backbone(folder, config.image_splitting)
        vlm.requires_grad_(False)
        # (after the adapters: injecting them leaves only adapter weights trainable)
        self.lora_layers = add_lora(vlm, config.lora) if config.lora.rank else []
        if not config.freeze_vision:
            prefix = language_model_prefix(vlm)
            for name, parameter in vlm.named_parameters():
                if not name.startswith(prefix + "."):
                    parameter.requires_grad_(True)
        super().__init__(config, encoder=HFObservationEncoder(config, vlm, processor))
        # Frozen base weights are named by the config (path + hash), not stored: checkpoints hold the rest.
        self.base_weight_names = {
            f"encoder.vlm.{name}" for name, parameter in vlm.named_parameters() if not parameter.requires_grad
        } | {f"encoder.vlm.{name}" for name, _ in vlm.named_buffers()}

    def encode_instructions(self, instructions: list[str]) -> np.ndarray:
        """What `ript.policies.encoders.instruction_encoder` uses for this policy's observation.language."""
        return self.encoder.encode_instructions(list(instructions))

    def state_dict(self, *args, **kwargs):  # type: ignore[override]
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
        for name in self.base_weight_names:
            state.pop(prefix + name, None)
        return state

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        """Loads adapters, projection, trunk and heads; the base weights are already in place."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [name for name in result.missing_keys if name not in self.base_weight_names]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(
                f"hf_vla checkpoint does not fit this policy: missing {missing[:5]}, "
                f"unexpected {result.unexpected_keys[:5]} (different LoRA targets/rank or head?)"
            )
        return result


def policy_from_config(config: dict) -> HFVLAPolicy:
    """The "hf_vla" policy type's builder (ript.core.registry.POLICY_TYPES)."""
    return HFVLAPolicy(HFVLAConfig.from_dict(config))
