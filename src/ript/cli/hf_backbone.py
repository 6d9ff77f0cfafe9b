"""`ript hf-backbone`: a local Hugging Face VLM folder built from a config (random weights, the
architecture's own processor, a tokenizer trained on LIBERO's instructions), for trying the
hf_vla policy type end to end where no pretrained weights can be downloaded, and for timing
real-size configs (bench/hf_vla.py).

    ript hf-backbone --arch smolvlm --size tiny --out runs/backbones/smolvlm-tiny
    ript sft --demos runs/demos --set policy.type=hf_vla --set policy.backbone=runs/backbones/smolvlm-tiny

A downloaded checkpoint (e.g. SmolVLM-256M-Instruct) needs no building: point policy.backbone at it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ript.policies.hf_backbones import ARCHITECTURES, SIZES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sizes = "; ".join(f"{arch}: {', '.join(SIZES[arch])}" for arch in ARCHITECTURES)
    parser.add_argument("--arch", choices=ARCHITECTURES, default="smolvlm", help="architecture (default smolvlm)")
    parser.add_argument("--size", default="tiny", help=f"size preset ({sizes}); default tiny")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (config, weights, processor)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument(
        "--suite",
        default="libero_spatial",
        help="LIBERO suite whose instructions train the tokenizer (default libero_spatial)",
    )


def run(args: argparse.Namespace) -> int:
    from ript.policies.hf_backbones import DEFAULT_CORPUS, build_backbone
    from ript.policies.hf_vla import backbone_sha256

    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"ript hf-backbone: {args.out} is not empty")
    from ript.sim.env import num_tasks, task_instruction

    corpus = [task_instruction(args.suite, task) for task in range(num_tasks(args.suite))] + list(DEFAULT_CORPUS)
    try:
        out = build_backbone(args.arch, args.size, args.out, corpus=corpus, seed=args.seed)
    except ValueError as exc:
        raise SystemExit(f"ript hf-backbone: {exc}") from None
    print(f"{args.arch}/{args.size} -> {out} (sha256 {backbone_sha256(out)[:12]}…)")
    print(f"use it: ript sft --demos <demos> --set policy.type=hf_vla --set policy.backbone={out}")
    return 0
