"""RIPT on LIBERO end to end: scripted demos -> stage-1 SFT (+ DAgger) -> 1-demo SFT -> RIPT -> evaluation.

    python bench/ript_libero.py --tasks 0,1,2 --out runs/bench_ript            # state variant
    python bench/ript_libero.py --tasks 0 --image --out runs/bench_ript_image   # image variant
    python bench/ript_libero.py --tasks 0 --ablation --out runs/bench_ript      # + dynamic sampling off

Every step is a `ript` subcommand (the same ones a user runs); this script chains them, times
them, and writes `summary.json` and `summary.md` (success before/after with Wilson 95 % CIs, env
steps, wall time) into --out. Steps whose outputs exist are skipped, so an interrupted run
continues where it stopped.

Stage 1 (pre-training) uses scripted demos of the *other* libero_spatial tasks, then DAgger rounds
on those same tasks (the stage-1 policy drives, the scripted expert labels the states it visits:
`ript record-demos --learner`); stage 2 uses one demo per target task — the few-shot setting of
the paper, where a policy pre-trained on other tasks is fine-tuned on 1 demo before RIPT.
With --ablation, a second `ript train` from the same SFT policy runs with dynamic sampling off
for the env steps the first one used, and both are evaluated.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

UNSOLVED_BY_EXPERT = {4}  # libero_spatial task whose bowl sits in a drawer (see docs/sim.md)


def ript(*args: str, log: Path) -> float:
    """Runs `ript ARGS`, teeing output into log; returns wall seconds."""
    command = [sys.executable, "-m", "ript.cli.main", *args]
    print("$ ript " + " ".join(args), flush=True)
    start = time.perf_counter()
    with log.open("a") as f:
        f.write("$ ript " + " ".join(args) + "\n")
        f.flush()
        result = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT)
    if result.returncode:
        raise SystemExit(f"step failed (exit {result.returncode}); see {log}")
    return time.perf_counter() - start


def newest(folder: Path, pattern: str) -> Path:
    matches = sorted(folder.glob(pattern))
    if not matches:
        raise SystemExit(f"nothing matches {folder / pattern}")
    return matches[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="0,1,2", help="target libero_spatial task ids (default 0,1,2)")
    parser.add_argument("--image", action="store_true", help="image variant (default: state variant)")
    parser.add_argument(
        "--image-size",
        type=int,
        default=128,
        help="image variant: camera height = width for demos, policy and rollouts (default 128)",
    )
    parser.add_argument(
        "--expert",
        choices=("memoryless", "timed"),
        default="memoryless",
        help="scripted expert that records demos and labels DAgger states (default memoryless: "
        "its action is a function of the state, which a learner can fit)",
    )
    parser.add_argument(
        "--pretrain-tasks",
        default=None,
        help="stage-1 libero_spatial task ids (default: every task that is not a target and that the expert solves)",
    )
    parser.add_argument("--pretrain-demos", type=int, default=10, help="stage-1 demos per other task (default 10)")
    parser.add_argument(
        "--pretrain-noise",
        type=float,
        default=0.0,
        help="noise on the expert's command in the stage-1 demos, so they show recoveries (default 0; "
        "they also calibrate the exploration scale)",
    )
    parser.add_argument("--sft-steps", type=int, default=3000, help="stage-1 SFT steps (default 3000)")
    parser.add_argument("--dagger-rounds", type=int, default=2, help="DAgger rounds after stage-1 SFT (default 2)")
    parser.add_argument("--dagger-episodes", type=int, default=10, help="learner episodes per task per round")
    parser.add_argument(
        "--dagger-betas",
        default="0.5,0.3,0.1,0",
        help="per round: probability of executing the expert's action (last value repeats)",
    )
    parser.add_argument("--dagger-steps", type=int, default=2000, help="SFT steps after each DAgger round")
    parser.add_argument("--hidden-dim", type=int, default=128, help="policy width (default 128)")
    parser.add_argument("--num-layers", type=int, default=3, help="policy depth (default 3)")
    parser.add_argument("--chunk-size", type=int, default=4, help="actions per query (default 4)")
    parser.add_argument("--execute-steps", type=int, default=1, help="actions executed per query (default 1)")
    parser.add_argument(
        "--stage1",
        type=Path,
        default=None,
        help="a pre-trained policy to fine-tune: skips stage 1 and DAgger (their demos are still "
        "recorded for scale calibration)",
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also train with dynamic sampling off, at the env steps of the dynamic run",
    )
    parser.add_argument(
        "--target-demo-seed",
        type=int,
        default=2,
        help="seed of the training context each target task's one demo is recorded in (default 2); "
        "which context the demo shows moves the 1-demo start a lot (docs/results.md)",
    )
    parser.add_argument("--finetune-steps", type=int, default=300, help="stage-2 (1-demo) SFT steps (default 300)")
    parser.add_argument(
        "--finetune-lr",
        type=float,
        default=3e-5,
        help="stage-2 SFT learning rate (default 3e-5; `ript sft`'s 3e-4 undoes stage 1 within a few "
        "steps on one demo per task, docs/results.md)",
    )
    parser.add_argument("--iterations", type=int, default=10, help="RIPT iterations (default 10)")
    parser.add_argument(
        "--stop-after-sft",
        action="store_true",
        help="build the 1-demo start (stage 1, DAgger, stage 2, scale calibration) and stop: no "
        "evaluation, no RIPT (bench/ript_weak_start.py takes it from there)",
    )
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes per task (default 50)")
    parser.add_argument(
        "--stochastic-eval",
        action="store_true",
        help="also evaluate before and after RIPT with sampled actions (the distribution RIPT "
        "trains), next to the standard deterministic evaluation",
    )
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument(
        "--train-set", action="append", default=[], metavar="KEY=VALUE", help="extra `ript train --set` overrides"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench_ript"))
    args = parser.parse_args()

    targets = [int(t) for t in args.tasks.split(",")]
    others = [t for t in range(10) if t not in targets and t not in UNSOLVED_BY_EXPERT]
    if args.pretrain_tasks is not None:
        others = [int(t) for t in args.pretrain_tasks.split(",")]
        if set(others) & set(targets):
            raise SystemExit(f"--pretrain-tasks {others} overlap the target tasks {targets}")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    timings: dict[str, float] = {}
    mode = ["--input-mode", "image", "--image-size", str(args.image_size)] if args.image else ["--input-mode", "state"]
    model = [
        "--hidden-dim",
        str(args.hidden_dim),
        "--num-layers",
        str(args.num_layers),
        "--chunk-size",
        str(args.chunk_size),
        "--execute-steps",
        str(args.execute_steps),
    ]
    record_mode = (["--image-size", str(args.image_size)] if args.image else ["--state-only"]) + (
        ["--memoryless-expert"] if args.expert == "memoryless" else []
    )
    common = ["--num-envs", str(args.num_envs)]

    if not (out / "demos_pretrain").exists():
        timings["record_pretrain_s"] = ript(
            "record-demos",
            "--tasks",
            ",".join(map(str, others)),
            "--demos",
            str(args.pretrain_demos),
            "--noise",
            str(args.pretrain_noise),
            "--num-envs",
            str(args.num_envs),
            "--seed",
            "1",
            "--out",
            str(out / "demos_pretrain"),
            *record_mode,
            log=log,
        )
    if not (out / "demos_target").exists():
        timings["record_target_s"] = ript(
            "record-demos",
            "--tasks",
            args.tasks,
            "--demos",
            "1",
            "--num-envs",
            str(args.num_envs),
            "--seed",
            str(args.target_demo_seed),
            "--out",
            str(out / "demos_target"),
            *record_mode,
            log=log,
        )
    if args.stage1 is None and not (out / "sft_stage1").exists():
        timings["sft_stage1_s"] = ript(
            "sft",
            "--demos",
            str(out / "demos_pretrain"),
            *mode,
            *model,
            "--steps",
            str(args.sft_steps),
            "--no-progress",
            "--out",
            str(out / "sft_stage1"),
            log=log,
        )
    stage1 = args.stage1 or newest(out / "sft_stage1", "*/policy.pt")
    betas = [float(b) for b in args.dagger_betas.split(",")]
    data = [out / "demos_pretrain"]
    for r in range(1, 0 if args.stage1 else args.dagger_rounds + 1):
        data.append(out / f"dagger_{r}")
        if not data[-1].exists():
            timings[f"dagger_{r}_record_s"] = ript(
                "record-demos",
                "--tasks",
                ",".join(map(str, others)),
                "--demos",
                str(args.dagger_episodes),
                "--learner",
                str(stage1),
                "--beta",
                str(betas[min(r, len(betas)) - 1]),
                "--seed",
                str(10 + r),
                "--out",
                str(data[-1]),
                *common,
                *record_mode,
                log=log,
            )
        if not (out / f"sft_dagger_{r}").exists():
            timings[f"dagger_{r}_sft_s"] = ript(
                "sft",
                "--demos",
                *map(str, data),
                "--init",
                str(stage1),
                "--steps",
                str(args.dagger_steps),
                "--no-progress",
                "--out",
                str(out / f"sft_dagger_{r}"),
                log=log,
            )
        stage1 = newest(out / f"sft_dagger_{r}", "*/policy.pt")
    if not (out / "sft_stage2").exists():
        timings["sft_stage2_s"] = ript(
            "sft",
            "--demos",
            str(out / "demos_target"),
            "--init",
            str(stage1),
            "--steps",
            str(args.finetune_steps),
            "--lr",
            str(args.finetune_lr),
            "--no-progress",
            "--out",
            str(out / "sft_stage2"),
            log=log,
        )
        stage2 = newest(out / "sft_stage2", "*/policy.pt")
        timings["calibrate_scale_s"] = ript(
            "calibrate-scale",
            "--checkpoint",
            str(stage2),
            "--demos",
            str(out / "demos_target"),
            str(out / "demos_pretrain"),
            "--no-progress",
            log=log,
        )
    sft = newest(out / "sft_stage2", "*/policy.pt")
    if args.stop_after_sft:
        print(f"1-demo start: {sft}")
        return 0
    before = evaluate(sft, "eval_sft", args, timings, log)
    if args.stochastic_eval:
        before_sampled = evaluate(sft, "eval_sft_stochastic", args, timings, log, stochastic=True)
    stable = ["train.frozen_parameters=[head.scale_head]", "fixed_action_dims=[3,4,5]"]  # docs/results.md
    sets = [
        f"task_ids=[{args.tasks}]",
        f"train.iterations={args.iterations}",
        f"num_envs={args.num_envs}",
        *stable,
        *args.train_set,
    ]
    run_dir, after, metrics = train_and_evaluate(sft, "train", sets, args, timings, log)
    summary = {
        "variant": "image" if args.image else "state",
        "tasks": targets,
        "before": before,
        "after": after,
        "env_steps": metrics[-1]["env_steps"],
        "iterations": metrics[-1]["iteration"],
        "train_wall_s": sum(r.get("time/iteration_s", 0) for r in metrics),
        "timings": timings,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    if args.stochastic_eval:
        summary["stochastic"] = {
            "sft": before_sampled,
            "train": evaluate(
                run_dir / "policy_final.ckpt", "eval_train_stochastic", args, timings, log, stochastic=True
            ),
        }
    if args.ablation:
        budget = [
            f"train.max_env_steps={metrics[-1]['env_steps']}",
            "train.sampler.dynamic=false",
            "train.iterations=1000",
        ]
        _, static_after, static_metrics = train_and_evaluate(sft, "train_static", sets + budget, args, timings, log)
        plot_ablation(metrics, static_metrics, out / "ablation_curve.png")
        summary["ablation"] = {
            "after": static_after,
            "env_steps": static_metrics[-1]["env_steps"],
            "iterations": static_metrics[-1]["iteration"],
            "train_wall_s": sum(r.get("time/iteration_s", 0) for r in static_metrics),
        }
    prior = out / "summary.json"
    if prior.exists():  # keep step timings from earlier, interrupted invocations
        summary["timings"] = {**json.loads(prior.read_text()).get("timings", {}), **timings}
    prior.write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(summary))
    print((out / "summary.md").read_text())
    return 0


def train_and_evaluate(sft: Path, name: str, sets: list[str], args, timings: dict, log: Path):
    """`ript train` into <out>/<name>, then `ript eval` of its final policy into <out>/eval_<name>."""
    out = args.out
    if not (out / name).exists():
        timings[f"ript_{name}_s"] = ript(
            "train",
            "--checkpoint",
            str(sft),
            "--out",
            str(out / name),
            "--no-progress",
            *[a for s in sets for a in ("--set", s)],
            log=log,
        )
    run_dir = newest(out / name, "*")
    after = evaluate(run_dir / "policy_final.ckpt", f"eval_{name}", args, timings, log)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return run_dir, after, metrics


def evaluate(checkpoint: Path, name: str, args, timings: dict, log: Path, stochastic: bool = False) -> dict:
    """`ript eval` of a checkpoint on the target tasks into <out>/<name> (unless there already); its report."""
    folder = args.out / name
    if not folder.exists():
        timings[f"{name}_s"] = ript(
            "eval",
            "--checkpoint",
            str(checkpoint),
            "--tasks",
            args.tasks,
            "--episodes",
            str(args.episodes),
            "--num-envs",
            str(args.num_envs),
            *(["--stochastic"] if stochastic else []),
            "--out",
            str(folder),
            log=log,
        )
    return json.loads(newest(folder, "*/eval.json").read_text())


def plot_ablation(dynamic: list[dict], static: list[dict], path: Path) -> None:
    """Success of every trial run, and the in-training evaluation, against env steps, for both runs."""
    from ript.core.metrics import plot_curves

    rows = []
    for label, metrics in (("dynamic sampling on", dynamic), ("off", static)):
        for r in metrics:
            row = {"env_steps": r["env_steps"]}
            if "rollout/success_rate" in r:
                row[f"{label}: trials run"] = r["rollout/success_rate"]
            if "eval/success_rate" in r:
                row[f"{label}: evaluation"] = r["eval/success_rate"]
            rows.append(row)
    keys = [f"{label}: {kind}" for label in ("dynamic sampling on", "off") for kind in ("trials run", "evaluation")]
    plot_curves(rows, keys, path, title="dynamic sampling on vs off: success", x_key="env_steps")


def cell_mean(report: dict) -> str:
    return f"**{report['success_rate']:.0%}** [{report['ci_low']:.0%}, {report['ci_high']:.0%}]"


def markdown(summary: dict) -> str:
    def cell(task: dict) -> str:
        return (
            f"{task['successes']}/{task['episodes']} = {task['success_rate']:.0%} "
            f"[{task['ci_low']:.0%}, {task['ci_high']:.0%}]"
        )

    lines = ["| task | after 1-demo SFT | after RIPT |", "|---|---|---|"]
    after_tasks = {t["task_id"]: t for t in summary["after"]["tasks"]}
    for task in summary["before"]["tasks"]:
        lines.append(
            f"| {task['task_id']} {task['instruction']} | {cell(task)} | {cell(after_tasks[task['task_id']])} |"
        )
    lines.append(f"| **mean** | {cell_mean(summary['before'])} | {cell_mean(summary['after'])} |")
    if "stochastic" in summary:
        lines.append(
            f"| **mean, sampled actions** | {cell_mean(summary['stochastic']['sft'])} | "
            f"{cell_mean(summary['stochastic']['train'])} |"
        )
    lines.append("")
    lines.append(
        f"RIPT: {summary['iterations']} iterations, {summary['env_steps']} env steps, "
        f"{summary['train_wall_s'] / 60:.1f} min of training wall time."
    )
    if "ablation" in summary:
        ablation = summary["ablation"]
        lines += [
            "",
            "| dynamic sampling | success after RIPT | env steps | iterations |",
            "|---|---|---:|---:|",
            f"| on | {cell_mean(summary['after'])} | {summary['env_steps']} | {summary['iterations']} |",
            f"| off | {cell_mean(ablation['after'])} | {ablation['env_steps']} | {ablation['iterations']} |",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
