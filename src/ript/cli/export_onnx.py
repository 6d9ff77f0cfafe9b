"""`ript export-onnx`: a checkpoint's inference path as ONNX graphs + policy.json, optionally
checked against torch on random inputs.

    ript export-onnx --checkpoint runs/sft/<time>/policy.pt --out runs/sft/<time>/onnx --check
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="policy checkpoint (.pt)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <checkpoint>.onnx/)")
    parser.add_argument("--check", action="store_true", help="compare torch and onnxruntime on random inputs")


def run(args: argparse.Namespace) -> int:
    out = args.out or args.checkpoint.with_name(args.checkpoint.name + ".onnx")
    from ript.policies.onnx_export import export_onnx

    try:
        export_onnx(args.checkpoint, out)
    except ValueError as exc:
        raise SystemExit(f"ript export-onnx: {exc}") from None
    print(f"exported {args.checkpoint} -> {out}")
    if args.check:
        from ript.policies.checkpoint import load_checkpoint
        from ript.policies.onnx_policy import OnnxPolicy, parity_report

        report = parity_report(load_checkpoint(args.checkpoint)[0], OnnxPolicy(out))
        print("parity (max abs diff): " + ", ".join(f"{k}={v:.2e}" for k, v in report.items()))
    return 0
