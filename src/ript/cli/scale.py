"""`ript calibrate-scale`: fit the regression head's scale sigma_theta by NLL, mean frozen.

    ript calibrate-scale --checkpoint runs/sft/<time>/policy.pt --demos data/libero_spatial

Turns an L1/MSE-trained mean into a Laplace/Gaussian policy whose log-probs RIPT can use. Writes
the checkpoint back in place (atomically) unless --out is given, plus scale_curve.png beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="regression-head checkpoint from `ript sft`")
    parser.add_argument("--demos", type=Path, nargs="+", required=True, help="HDF5 demo files or folders")
    parser.add_argument("--max-demos", type=int, default=None, help="use at most this many demos per file")
    parser.add_argument("--steps", type=int, default=300, help="NLL gradient steps (default 300)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available)")
    parser.add_argument("--out", type=Path, default=None, help="output checkpoint (default: overwrite --checkpoint)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import torch

    from ript.cli.sft import embed_instructions, load_demos, plot_losses
    from ript.policies.checkpoint import load_checkpoint, save_checkpoint
    from ript.policies.sft import DemoDataset, SFTConfig, calibrate_scale

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    policy, payload = load_checkpoint(args.checkpoint, device)
    if policy.head_type != "regression":
        raise SystemExit(f"{args.checkpoint} has a {policy.head_type} head; only regression heads have a scale")
    demos = load_demos(args.demos, args.max_demos, not args.no_progress)
    embeddings = embed_instructions(demos, policy, payload.get("instruction_embeddings"))
    dataset = DemoDataset(demos, policy.config, embeddings)
    config = SFTConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed)
    history = calibrate_scale(policy, dataset, config, progress=not args.no_progress)

    with torch.no_grad():
        index = torch.arange(min(len(dataset), 256))
        obs, _, _ = dataset.batch(index, policy.device)
        _, scale = policy.regression_params(obs)
    mean_scale = scale.mean(dim=(0, 1)).cpu().tolist()
    out = args.out or args.checkpoint
    metadata = {
        **payload.get("metadata", {}),
        "scale_calibration": {
            "steps": args.steps,
            "final_nll": history[-1]["loss/scale"] if history else None,
            "mean_scale_per_dim": mean_scale,
        },
    }
    embeddings = {**payload.get("instruction_embeddings", {}), **embeddings}
    save_checkpoint(out, policy, stats=payload.get("stats"), instruction_embeddings=embeddings, metadata=metadata)
    if history:
        curve = plot_losses(history, Path(out).with_name("scale_curve.png"), "scale-head NLL (mean frozen)")
        print(f"NLL {history[0]['loss/scale']:.3f} -> {history[-1]['loss/scale']:.3f}; curve: {curve}")
    print("mean scale per action dim: " + ", ".join(f"{s:.4f}" for s in mean_scale))
    print(f"checkpoint: {out}")
    return 0
