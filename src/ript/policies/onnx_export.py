"""The inference path of a checkpoint as ONNX graphs + policy.json (`ript export-onnx`).

Only the networks are exported; sampling (noise, inverse CDF, clipping, log-probs) stays in the
shared Python functions of `ript.policies.heads`, so torch and onnxruntime policies sample and
score with the same code.

    regression:  policy.onnx   obs -> mean [B, H, A], scale [B, H, A]
    tokenized:   encode.onnx   obs -> context (cached keys/values) [layers, 2, B, heads, N, hd]
                 prior.onnx    context, tokens_in [B, L] -> logits [B, L, V]
                 decode.onnx   ids [B, L] -> actions [B, H, A] (unclipped)

    ript export-onnx --checkpoint runs/sft/<time>/policy.pt --out runs/sft/<time>/onnx
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ript.policies.checkpoint import load_checkpoint
from ript.policies.onnx_policy import POLICY_JSON, example_observation
from ript.policies.vla import VLAPolicy

OPSET = 17


class _ObsGraph(nn.Module):
    """Positional inputs in `keys` order -> whatever `fn(obs_dict)` returns."""

    def __init__(self, policy, keys: tuple[str, ...], fn) -> None:
        super().__init__()
        self.policy, self.keys, self.fn = policy, keys, fn

    def forward(self, *inputs: Tensor):
        return self.fn(dict(zip(self.keys, inputs)))


class _PriorGraph(nn.Module):
    def __init__(self, policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, context: Tensor, tokens_in: Tensor) -> Tensor:
        return self.policy.token_logits(context, tokens_in)


class _DecodeGraph(nn.Module):
    def __init__(self, policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, ids: Tensor) -> Tensor:
        return self.policy.tokenizer.decode(ids)


def _export(
    module: nn.Module,
    args: tuple,
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic: dict[str, dict[int, str]],
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python control flow on fixed shapes
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )


def export_onnx(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Exports the checkpoint's inference graphs into out_dir; returns out_dir."""
    policy, payload = load_checkpoint(checkpoint, "cpu")
    if not isinstance(policy, VLAPolicy) or policy.policy_type != "vla":
        raise ValueError(
            f"{checkpoint} is a {policy.policy_type} policy; ONNX export covers the compact VLA "
            "(serve others with the torch backend)"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = policy.config
    keys = policy.obs_keys
    obs = example_observation(config)
    inputs = tuple(obs[key] for key in keys)
    batch_axes = {key: {0: "batch"} for key in keys}
    graphs: dict[str, str] = {}
    with torch.no_grad():
        if policy.head_type == "regression":
            graph = _ObsGraph(policy, keys, lambda o: policy.regression_params(o))
            _export(
                graph,
                inputs,
                out_dir / "policy.onnx",
                list(keys),
                ["mean", "scale"],
                {**batch_axes, "mean": {0: "batch"}, "scale": {0: "batch"}},
            )
            graphs["policy"] = "policy.onnx"
        else:
            encode = _ObsGraph(policy, keys, lambda o: policy.encode(o))
            _export(
                encode,
                inputs,
                out_dir / "encode.onnx",
                list(keys),
                ["context"],
                {**batch_axes, "context": {2: "batch"}},
            )
            context = policy.encode(obs)
            tokens = torch.zeros((context.shape[2], policy.prior.num_tokens), dtype=torch.long)
            _export(
                _PriorGraph(policy),
                (context, tokens),
                out_dir / "prior.onnx",
                ["context", "tokens_in"],
                ["logits"],
                {"context": {2: "batch"}, "tokens_in": {0: "batch"}, "logits": {0: "batch"}},
            )
            _export(
                _DecodeGraph(policy),
                (tokens,),
                out_dir / "decode.onnx",
                ["ids"],
                ["actions"],
                {"ids": {0: "batch"}, "actions": {0: "batch"}},
            )
            graphs.update(encode="encode.onnx", prior="prior.onnx", decode="decode.onnx")
    meta = {
        "config": config.to_dict(),
        "obs_keys": list(keys),
        "graphs": graphs,
        "opset": OPSET,
        "stats": payload.get("stats", {}),
        "instruction_embeddings": payload.get("instruction_embeddings", {}),
        "source_checkpoint": Path(checkpoint).name,
    }
    # Written last: its presence marks a complete export.
    tmp = out_dir / (POLICY_JSON + ".tmp")
    tmp.write_text(json.dumps(meta))
    tmp.replace(out_dir / POLICY_JSON)
    return out_dir
