"""An onnxruntime-backed policy behind the same `Policy` contract as the torch VLA.

The networks run in onnxruntime (CUDA provider when present and asked for, CPU otherwise);
sampling and scoring are `ChunkHeadPolicy`'s shared code, so with the same noise the two
backends return the same actions and log-probs. Inference only: log_prob carries no gradient.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ript.core.constants import OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST, OBS_LANGUAGE, OBS_STATE
from ript.core.policy import Observation
from ript.policies.config import VLAConfig
from ript.policies.vla import ChunkHeadPolicy

POLICY_JSON = "policy.json"
"""The export folder's manifest, written last: its presence marks a complete export."""
_UINT8_KEYS = (OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST)


def example_observation(config, batch: int = 2) -> dict[str, Tensor]:
    """Random inputs of the right dtypes and shapes (also used by tests and the benchmark)."""
    size = config.image_size
    obs = {
        OBS_STATE: torch.randn(batch, config.state_dim),
        OBS_LANGUAGE: torch.nn.functional.normalize(torch.randn(batch, config.language_dim), dim=-1),
    }
    if config.input_mode == "image":
        obs[OBS_IMAGE_AGENTVIEW] = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
        obs[OBS_IMAGE_WRIST] = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
    return obs


def _providers(device: str | None) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    want_cuda = device is None or str(device).startswith("cuda")
    if want_cuda and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device is not None and str(device).startswith("cuda"):
        raise RuntimeError(f"device {device!r} asked for, but onnxruntime offers only {available}")
    return ["CPUExecutionProvider"]


class OnnxPolicy(ChunkHeadPolicy):
    """Loads an export folder written by `export_onnx` (policy.json + *.onnx)."""

    def __init__(self, folder: str | Path, device: str | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        super().__init__()
        folder = Path(folder)
        meta_path = folder / POLICY_JSON
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder} is not a complete ONNX export (no {POLICY_JSON})")
        self.meta = json.loads(meta_path.read_text())
        self._init_head_settings(VLAConfig.from_dict(self.meta["config"]))
        self.instruction_embeddings = self.meta.get("instruction_embeddings", {})
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.providers = _providers(device)
        self.sessions = {
            name: ort.InferenceSession(str(folder / file), options, providers=self.providers)
            for name, file in self.meta["graphs"].items()
        }

    @property
    def device(self) -> torch.device:
        # Noise and the sampling math live on the CPU; the graphs run wherever the provider is.
        return torch.device("cpu")

    def _feed(self, obs: Observation) -> dict[str, np.ndarray]:
        feed = {}
        for key in self.obs_keys:
            value = obs[key].detach().cpu().numpy() if isinstance(obs[key], Tensor) else np.asarray(obs[key])
            feed[key] = value.astype(np.uint8 if key in _UINT8_KEYS else np.float32, copy=False)
        return feed

    def regression_params(self, obs: Observation) -> tuple[Tensor, Tensor]:
        mean, scale = self.sessions["policy"].run(["mean", "scale"], self._feed(obs))
        return torch.from_numpy(mean), torch.from_numpy(scale)

    def encode(self, obs: Observation) -> Tensor:
        return torch.from_numpy(self.sessions["encode"].run(["context"], self._feed(obs))[0])

    def token_logits(self, context: Tensor, tokens_in: Tensor) -> Tensor:
        feed = {"context": context.numpy(), "tokens_in": tokens_in.numpy().astype(np.int64)}
        return torch.from_numpy(self.sessions["prior"].run(["logits"], feed)[0])

    def decode_tokens(self, ids: Tensor) -> Tensor:
        return torch.from_numpy(self.sessions["decode"].run(["actions"], {"ids": ids.numpy().astype(np.int64)})[0])


def parity_report(
    torch_policy: ChunkHeadPolicy, onnx_policy: ChunkHeadPolicy, batch: int = 4, seed: int = 0
) -> dict[str, float]:
    """Max abs differences between the two backends on random inputs with the same noise."""

    torch.manual_seed(seed)
    obs = example_observation(torch_policy.config, batch)
    sample_t = torch_policy.sample(obs, generator=torch.Generator().manual_seed(seed))
    sample_o = onnx_policy.sample(obs, generator=torch.Generator().manual_seed(seed))
    report = {
        "actions": float((sample_t.actions - sample_o.actions).abs().max()),
        "log_probs": float((sample_t.log_probs - sample_o.log_probs).abs().max()),
        "act": float((torch_policy.act(obs) - onnx_policy.act(obs)).abs().max()),
        "rescore": float(
            (torch_policy.log_prob(obs, sample_t.scored).detach() - onnx_policy.log_prob(obs, sample_t.scored))
            .abs()
            .max()
        ),
    }
    if torch_policy.head_type == "tokenized":
        report["token_mismatch"] = float((sample_t.scored != sample_o.scored).float().mean())
    return report
