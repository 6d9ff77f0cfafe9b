"""`ript export-onnx`: the inference path of a checkpoint as ONNX graphs + policy.json.

Only the networks are exported; sampling (noise, inverse CDF, clipping, log-probs) stays in the
shared Python functions of `ript_policy.heads`, so torch and onnxruntime policies sample and
score with the same code.

    regression:  policy.onnx   obs -> mean [B, H, A], scale [B, H, A]
    tokenized:   encode.onnx   obs -> context (cached keys/values) [layers, 2, B, heads, N, hd]
                 prior.onnx    context, tokens_in [B, L] -> logits [B, L, V]
                 decode.onnx   ids [B, L] -> actions [B, H, A] (unclipped)

    ript export-onnx --checkpoint runs/sft/<time>/policy.pt --out runs/sft/<time>/onnx
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ript_policy.constants import OBS_IMAGE_AGENTVIEW, OBS_IMAGE_WRIST, OBS_LANGUAGE, OBS_STATE

OPSET = 17
POLICY_JSON = "policy.json"


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


def example_observation(config, batch: int = 2) -> dict[str, Tensor]:
    """Random inputs of the right dtypes and shapes (also used by tests and the benchmark)."""
    size = config.image_size
    obs = {OBS_STATE: torch.randn(batch, config.state_dim),
           OBS_LANGUAGE: torch.nn.functional.normalize(torch.randn(batch, config.language_dim), dim=-1)}
    if config.input_mode == "image":
        obs[OBS_IMAGE_AGENTVIEW] = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
        obs[OBS_IMAGE_WRIST] = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
    return obs


def _export(module: nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str],
            dynamic: dict[str, dict[int, str]]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python control flow on fixed shapes
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)


def export_onnx(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Exports the checkpoint's inference graphs into out_dir; returns out_dir."""
    from ript_policy.checkpoint import load_checkpoint

    policy, payload = load_checkpoint(checkpoint, "cpu")
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
            _export(graph, inputs, out_dir / "policy.onnx", list(keys), ["mean", "scale"],
                    {**batch_axes, "mean": {0: "batch"}, "scale": {0: "batch"}})
            graphs["policy"] = "policy.onnx"
        else:
            encode = _ObsGraph(policy, keys, lambda o: policy.encode(o))
            _export(encode, inputs, out_dir / "encode.onnx", list(keys), ["context"],
                    {**batch_axes, "context": {2: "batch"}})
            context = policy.encode(obs)
            tokens = torch.zeros((context.shape[2], policy.prior.num_tokens), dtype=torch.long)
            _export(_PriorGraph(policy), (context, tokens), out_dir / "prior.onnx", ["context", "tokens_in"],
                    ["logits"], {"context": {2: "batch"}, "tokens_in": {0: "batch"}, "logits": {0: "batch"}})
            _export(_DecodeGraph(policy), (tokens,), out_dir / "decode.onnx", ["ids"], ["actions"],
                    {"ids": {0: "batch"}, "actions": {0: "batch"}})
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="policy checkpoint (.pt)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <checkpoint>.onnx/)")
    parser.add_argument("--check", action="store_true", help="compare torch and onnxruntime on random inputs")


def run(args: argparse.Namespace) -> int:
    out = args.out or args.checkpoint.with_name(args.checkpoint.name + ".onnx")
    export_onnx(args.checkpoint, out)
    print(f"exported {args.checkpoint} -> {out}")
    if args.check:
        from ript_policy.checkpoint import load_checkpoint
        from ript_policy.onnx_policy import OnnxPolicy, parity_report

        report = parity_report(load_checkpoint(args.checkpoint)[0], OnnxPolicy(out))
        print("parity (max abs diff): " + ", ".join(f"{k}={v:.2e}" for k, v in report.items()))
    return 0
