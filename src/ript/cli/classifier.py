"""`ript train-classifier`: train the success classifier on labelled trial-outcome frames.

Examples come from the operator (the classifier node stores every marked trial's last frame under
<run_dir>/classifier/examples/) and/or the simulator (`ript sim-outcomes`). A fraction of whole
trials is held out; the report gives accuracy on held-out frames and on held-out trials judged by
their last frame, and how a confidence threshold trades the operator's workload for accuracy.

    ript sim-outcomes --tasks 0-3 --episodes 40 --out runs/classifier/sim_outcomes.npz
    ript train-classifier --data runs/classifier/sim_outcomes.npz --out runs/classifier
    ript train-classifier --data runs/ros/franka/classifier/examples --out runs/classifier_real

Writes <out>/classifier.ckpt (verified file), report.json, report.md, training_curve.png.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ript.policies.success_classifier import ClassifierConfig

    parser.add_argument(
        "--data", type=Path, nargs="+", required=True, help="example .npz files, or folders searched for them"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/classifier"), help="output folder (default runs/classifier)"
    )
    defaults = ClassifierConfig()
    for f in fields(ClassifierConfig):
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(
            flag,
            type=type(getattr(defaults, f.name)),
            default=getattr(defaults, f.name),
            help=f"(default {getattr(defaults, f.name)})",
        )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--no-progress", action="store_true")


def _markdown(report: dict) -> str:
    lines = [
        "# Success classifier",
        "",
        f"Trials: {report['train_trials']} for training, {report['heldout_trials']} held out.",
        "",
        "| split | frames | successes | accuracy | balanced accuracy | fp | fn |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, key in (
        ("train frames", "train"),
        ("held-out frames", "heldout"),
        ("held-out trials (last frame)", "heldout_trials_verdict"),
    ):
        m = report.get(key)
        if m:
            lines.append(
                f"| {name} | {m['n']} | {m['positives']} | {m['accuracy']:.3f} | "
                f"{m['balanced_accuracy']:.3f} | {m['fp']} | {m['fn']} |"
            )
    verdict = report.get("heldout_trials_verdict") or report.get("heldout")
    if verdict:
        lines += [
            "",
            "Confidence threshold on held-out trials: below it the operator is asked.",
            "",
            "| threshold | decided automatically | accuracy of those |",
            "|---:|---:|---:|",
        ]
        for row in verdict["by_confidence"]:
            lines.append(f"| {row['threshold']:.2f} | {row['decided']:.1%} | {row['accuracy_decided']:.3f} |")
    return "\n".join(lines) + "\n"


def _plot(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], label="training loss")
    if "heldout_accuracy" in history[0]:
        ax.plot(epochs, [h["heldout_accuracy"] for h in history], label="held-out accuracy")
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    import torch

    from ript.policies.success_classifier import ClassifierConfig, load_examples, save_classifier, train_classifier

    torch.set_num_threads(args.threads)
    config = ClassifierConfig(**{f.name: getattr(args, f.name) for f in fields(ClassifierConfig)})
    examples = load_examples(args.data, config.image_size)
    print(
        f"{len(examples)} frames, {int(examples.labels.sum())} successes, {len(set(examples.groups.tolist()))} trials"
    )
    model, report = train_classifier(examples, config, progress=not args.no_progress)
    args.out.mkdir(parents=True, exist_ok=True)
    save_classifier(model, config, args.out / "classifier.ckpt", report)
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    markdown = _markdown(report)
    (args.out / "report.md").write_text(markdown)
    _plot(report["history"], args.out / "training_curve.png")
    print(markdown)
    print(f"wrote {args.out / 'classifier.ckpt'}")
    return 0
