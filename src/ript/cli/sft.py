"""`ript sft`: stage-2 supervised fine-tuning of the VLA from HDF5 demos (ours or official LIBERO).

    ript sft --demos data/libero_spatial --head regression --steps 2000 --out runs/sft
    ript sft --demos a_demo.hdf5 b_demo.hdf5 --input-mode state --head tokenized

Writes <out>/<time>/: policy.pt (weights + config + normalisation stats + instruction
embeddings), metrics.jsonl, config.json, loss_curve.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ript.core.registry import POLICY_CONFIGS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument(
        "--demos",
        type=Path,
        nargs="+",
        required=True,
        help="HDF5 demo files, folders searched for *.hdf5 (multi-task: one file per task), or LeRobotDataset "
        "v3 folders (`ript export-lerobot` writes them)",
    )
    data.add_argument("--max-demos", type=int, default=None, help="use at most this many demos per file")
    model = parser.add_argument_group("model (ignored with --init, which brings its own config)")
    model.add_argument("--init", type=Path, default=None, help="start from this checkpoint (e.g. stage-1 pre-training)")
    model.add_argument("--head", choices=("regression", "tokenized"), default="regression")
    model.add_argument("--input-mode", choices=("image", "state"), default="image")
    model.add_argument(
        "--loss", choices=("l1", "mse"), default="l1", help="regression loss (l1: Laplace, mse: Gaussian)"
    )
    model.add_argument(
        "--gripper",
        choices=("bernoulli", "continuous"),
        default=None,
        help="regression head: the gripper as open/close (bernoulli, BCE; default for a new model) or "
        "as a continuous dimension; with --init, switches the checkpoint's (its weights are kept)",
    )
    model.add_argument("--chunk-size", type=int, default=8, help="H: actions predicted per query (default 8)")
    model.add_argument(
        "--execute-steps", type=int, default=None, help="h: actions executed per query (default: the whole chunk)"
    )
    model.add_argument("--image-size", type=int, default=128)
    model.add_argument("--backbone", choices=("cnn", "resnet18"), default="cnn")
    model.add_argument("--pretrained-backbone", default=None, help="ResNet-18 weights: a path or 'auto'")
    model.add_argument("--hidden-dim", type=int, default=128)
    model.add_argument("--num-layers", type=int, default=4)
    model.add_argument("--no-language", action="store_true", help="do not condition on the instruction")
    train = parser.add_argument_group("training")
    train.add_argument("--steps", type=int, default=2000)
    train.add_argument("--tokenizer-steps", type=int, default=1000, help="tokenized head: FSQ autoencoder steps")
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument(
        "--lr",
        type=float,
        default=3e-4,
        help="Adam learning rate (default 3e-4, for training from scratch; to fine-tune an --init "
        "policy on a few demos use ~3e-5: at 3e-4 the first steps undo the pre-training)",
    )
    train.add_argument("--image-shift", type=int, default=4, help="random-shift augmentation in pixels (0: off)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default=None, help="torch device (default: cuda when available)")
    train.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (on a small CPU shared with a busy process, 1 is often fastest)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any field the flags do not reach, after them: sft.<field> (SFTConfig, e.g. "
        "sft.weight_decay=0) or policy.<field> (the config of a new policy, e.g. "
        "policy.regression.gripper_temperature=0.5); policy.type picks the policy type: vla (default) "
        "or hf_vla, a Hugging Face VLM from a local folder (policy.type=hf_vla policy.backbone=DIR "
        "policy.lora.rank=16, docs/policy.md); repeatable",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/sft"), help="run folder root (default runs/sft)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def split_overrides(assignments: list[str], sections: tuple[str, ...]) -> dict[str, list[str]]:
    """'sft.steps=10' -> {'sft': ['steps=10'], ...}; an assignment outside `sections` is refused."""
    split: dict[str, list[str]] = {name: [] for name in sections}
    for assignment in assignments:
        section, _, rest = assignment.partition(".")
        if section not in split or not rest:
            raise SystemExit(
                f"--set {assignment}: the key must start with one of {', '.join(s + '.' for s in sections)}"
            )
        split[section].append(rest)
    return split


def policy_type_override(assignments: list[str]) -> tuple[str, list[str]]:
    """Takes `type=...` out of the policy.* assignments: (policy type, the other assignments)."""
    policy_type, rest = "vla", []
    for assignment in assignments:
        key, _, value = assignment.partition("=")
        if key.strip() == "type":
            policy_type = value.strip()
            try:
                POLICY_CONFIGS.target(policy_type)
            except KeyError as exc:
                raise SystemExit(f"ript sft: --set policy.type: {exc.args[0]}") from None
        else:
            rest.append(assignment)
    return policy_type, rest


def load_demos(paths: list[Path], max_demos: int | None, progress: bool = True):
    from tqdm import tqdm

    from ript.core.paths import files_under
    from ript.policies import lerobot_data
    from ript.policies.libero_data import read_demos

    demos = []
    datasets = [Path(p) for p in paths if lerobot_data.is_dataset(p)]  # LeRobotDataset v3 folders
    for folder in datasets:
        demos += lerobot_data.read_demos(folder, max_demos=max_demos)
    hdf5 = [p for p in paths if Path(p) not in datasets]
    files = files_under(hdf5, ".hdf5", "demo") if hdf5 else []
    for file in tqdm(files, desc="reading demos", unit="file", disable=not progress):
        demos += read_demos(file, max_demos=max_demos)
    return demos


def embed_instructions(demos, policy, cache: dict | None = None) -> dict:
    """Each demo instruction -> the policy's observation.language for it (none without language)."""
    if not policy.config.use_language:
        return {}
    from ript.policies.encoders import instruction_encoder

    encoder = instruction_encoder(policy, cache)
    instructions = sorted({demo.instruction for demo in demos})
    return dict(zip(instructions, encoder.embed(instructions)))


def plot_losses(history: list[dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    offset = 0
    for phase in dict.fromkeys(row["phase"] for row in history):
        rows = [row for row in history if row["phase"] == phase]
        ax.plot([offset + r["step"] for r in rows], [r[f"loss/{phase}"] for r in rows], label=phase, linewidth=1)
        offset += len(rows)
    ax.set_yscale("symlog" if any(r.get("loss/scale", 1) <= 0 for r in history) else "log")
    ax.set_xlabel("gradient step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict, fields, replace

    import torch

    from ript.core.config_io import load_config
    from ript.core.metrics import MetricsLogger
    from ript.core.registry import POLICY_TYPES
    from ript.policies.checkpoint import load_checkpoint, save_checkpoint
    from ript.policies.config import ChunkPolicyConfig, RegressionHeadConfig, VLAConfig
    from ript.policies.libero_data import PROPRIO_DIM, state_features
    from ript.policies.sft import DemoDataset, SFTConfig, train_sft
    from ript.policies.vla import build_policy

    sections = split_overrides(args.set, ("sft", "policy"))
    policy_type, sections["policy"] = policy_type_override(sections["policy"])
    if args.init is not None and (sections["policy"] or policy_type != "vla"):
        raise SystemExit(f"ript sft: --set policy.* builds a new policy; --init {args.init} brings its own config")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    progress = not args.no_progress
    demos = load_demos(args.demos, args.max_demos, progress)
    print(f"{len(demos)} demos, {sum(len(d) for d in demos)} steps, {len({d.instruction for d in demos})} instructions")

    cached, stats = {}, None
    if args.init is not None:
        policy, payload = load_checkpoint(args.init, device)
        config = policy.config
        cached = payload.get("instruction_embeddings", {})
        stats = payload.get("stats") or None  # keep the normalisation the network was trained with
        if args.gripper is not None and config.head == "regression" and args.gripper != config.regression.gripper:
            # Same weights, new reading of the gripper output: fine-tuning then fits it as a logit (BCE).
            config = replace(config, regression=replace(config.regression, gripper=args.gripper))
            weights = policy.state_dict()
            policy = POLICY_TYPES.get(policy.policy_type)(config.to_dict()).to(device)
            policy.load_state_dict(weights)
            print(f"gripper modelled as {args.gripper} from here on")
    else:
        full_state = state_features(demos[0].obs).shape[-1]
        config = VLAConfig(
            input_mode=args.input_mode,
            state_dim=PROPRIO_DIM if args.input_mode == "image" else full_state,
            image_size=args.image_size,
            backbone=args.backbone,
            pretrained_backbone=args.pretrained_backbone,
            use_language=not args.no_language,
            hidden_dim=args.hidden_dim,
            num_layers=args.num_layers,
            chunk_size=args.chunk_size,
            execute_steps=args.execute_steps,
            head=args.head,
            regression=RegressionHeadConfig(loss=args.loss, gripper=args.gripper or "bernoulli"),
        )
        if policy_type != "vla":
            # The flags that every chunk policy shares carry over; the rest is the type's own.
            shared = {f.name for f in fields(ChunkPolicyConfig)}
            base = {key: value for key, value in config.to_dict().items() if key in shared}
            config = load_config(POLICY_CONFIGS.get(policy_type), overrides=sections["policy"], base=base)
            policy = POLICY_TYPES.get(policy_type)(config.to_dict()).to(device)
        else:
            if sections["policy"]:
                config = load_config(VLAConfig, overrides=sections["policy"], base=config.to_dict())
            policy = build_policy(config).to(device)
    flags = SFTConfig(
        steps=args.steps,
        tokenizer_steps=args.tokenizer_steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        image_shift=args.image_shift,
        seed=args.seed,
    )
    sft_config = load_config(SFTConfig, overrides=sections["sft"], base=asdict(flags))
    embeddings = embed_instructions(demos, policy, cached)
    dataset = DemoDataset(demos, config, embeddings)

    run_dir = args.out / time.strftime("%Y%m%d-%H%M%S")
    logger = MetricsLogger(run_dir, tensorboard=False)
    logger.save_config(
        {
            "policy": config.to_dict(),
            "sft": vars(sft_config),
            "demos": [str(p) for p in args.demos],
            "num_demos": len(demos),
        }
    )
    step = 0

    def log(row: dict) -> None:
        nonlocal step
        logger.log(step, row)
        step += 1

    history = train_sft(policy, dataset, sft_config, log=log, progress=progress, stats=stats)
    logger.close()
    path = save_checkpoint(
        run_dir / "policy.pt",
        policy,
        stats=stats or dataset.stats(),
        instruction_embeddings=embeddings,
        metadata={"stage": "sft", "num_demos": len(demos), "steps": sft_config.steps},
    )
    curve = plot_losses(history, run_dir / "loss_curve.png", f"SFT ({config.head} head, {config.input_mode} input)")
    final = [r for r in history if r["phase"] == "sft"]
    if final:
        first, last = final[0]["loss/sft"], sum(r["loss/sft"] for r in final[-20:]) / len(final[-20:])
        print(f"SFT loss {first:.4f} -> {last:.4f} (mean of the last 20 steps)")
    print(f"checkpoint: {path}\ncurve:      {curve}\nmetrics:    {logger.jsonl_path}")
    return 0
