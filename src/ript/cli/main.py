"""`ript`: one command line for every job. Subcommands register themselves lazily so that
`ript --help` stays fast and a job never imports the heavy stacks of another."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module with add_arguments(parser) and run(args), one-line help)
SUBCOMMANDS = {
    "train": ("ript.cli.train", "RIPT post-training of an SFT checkpoint on LIBERO (LOOP + dynamic sampling)"),
    "toy": ("ript.cli.toy", "RIPT (LOOP + dynamic sampling) on the 1-D reach task: a CPU smoke run in seconds"),
    "record-demos": (
        "ript.cli.record",
        "record scripted-expert LIBERO demos (HDF5, LIBERO layout) from training contexts",
    ),
    "eval": ("ript.cli.eval", "standard LIBERO evaluation (50 benchmark init states per task, Wilson 95%% CI)"),
    "contexts": ("ript.cli.contexts", "draw training contexts disjoint from the LIBERO evaluation init states"),
    "sft": ("ript.cli.sft", "stage 2: supervised fine-tuning of the VLA from HDF5 demos (ours or LIBERO's)"),
    "calibrate-scale": ("ript.cli.scale", "fit the regression head's scale by NLL on demos, mean frozen"),
    "export-lerobot": (
        "ript.cli.export_lerobot",
        "scripted demos or a run's stored trials as a LeRobotDataset v3.0 folder (parquet + mp4 + meta)",
    ),
    "hf-backbone": (
        "ript.cli.hf_backbone",
        "a local Hugging Face VLM folder (SmolVLM/PaliGemma architecture) from a config, for policy.type=hf_vla",
    ),
    "export-onnx": ("ript.cli.export_onnx", "export a policy checkpoint's inference path to ONNX"),
    "sim-outcomes": (
        "ript.cli.outcomes",
        "labelled trial-outcome frames from LIBERO (success check) for the success classifier",
    ),
    "train-classifier": (
        "ript.cli.classifier",
        "train the success classifier on labelled outcome frames; held-out accuracy report",
    ),
    "starter": (
        "ript.cli.starter",
        "the starter policy of `ript up sim`: show it, --rebuild it, --ship it with its record",
    ),
    "report": (
        "ript.cli.report",
        "one HTML page (and markdown) per run: success with CIs, mixed groups, KL, exploration, time",
    ),
    "up": ("ript.cli.up", "start the ROS 2 graph (policy, trainer, LIBERO bridge) of launch/<sim|franka>.launch.py"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ript",
        description="Interactive post-training of VLA robot policies with RIPT-VLA's LOOP "
        "(leave-one-out advantages + PPO clip) on LIBERO and on ROS 2 robots.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Only the chosen subcommand's module is imported (for its arguments), so `ript --help` is
    # fast and one job never pays for another job's imports.
    chosen = next((arg for arg in (argv or []) if arg in SUBCOMMANDS), None)
    for name, (module, help_text) in SUBCOMMANDS.items():
        # help= is %-formatted by argparse, description= is printed as written
        sub = subparsers.add_parser(name, help=help_text, description=help_text.replace("%%", "%"))
        sub.set_defaults(_module=module)
        if name == chosen:
            importlib.import_module(module).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
