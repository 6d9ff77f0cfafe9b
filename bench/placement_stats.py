"""Benchmark init states vs fresh placements: where the objects start, and where a policy fails.

    python bench/placement_stats.py --tasks 0,1,2 --episodes 50 --context-seed 0 \
        --benchmark-eval runs/x/eval_final/libero_spatial/eval.json \
        --validation-eval runs/x/evalval_final/libero_spatial/eval.json --out docs/bench/placements_x

`ript train` trains on fresh placements and chooses its best checkpoint on fresh validation placements
(seeded resets, kept apart from the benchmark's init states); `ript eval` reports the benchmark's
50 init states per task. When the two read differently for the same policy, this says whether the
placements differ: for each task, the object to pick's start (x, y) and its horizontal distance to
the place target, over the benchmark's states 0..N-1 and over the N validation placements that
`ript eval --states validation --context-seed S` runs (drawn again here, the same draw), with a
two-sample Kolmogorov-Smirnov test per feature. With the two `ript eval` reports of one policy
(`--benchmark-eval`, `--validation-eval`), each placement is marked succeeded or failed and success
is split by the pick-to-target distance. Writes OUT.md, OUT.json and OUT.png (the starts, failures
crossed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ript.policies.libero_data import OBJECT_POSE_DIM  # object_state: one pose per object of interest

FEATURES = ("pick_x", "pick_y", "pick_to_target_m")


def placement_features(env, context) -> dict:
    """Where the object to pick and the place target (the task's first two objects of interest) start."""
    state = env.reset(context.init_state)["object_state"]
    pick, target = state[:3], state[OBJECT_POSE_DIM : OBJECT_POSE_DIM + 3]
    return {
        "pick_x": float(pick[0]),
        "pick_y": float(pick[1]),
        "pick_to_target_m": float(np.linalg.norm(pick[:2] - target[:2])),
    }


def failed_indices(report: Path | None) -> dict[int, set[int]] | None:
    """task -> indices of failed episodes, from a `ript eval` eval.json."""
    if report is None:
        return None
    tasks = json.loads(report.read_text())["tasks"]
    return {int(t["task_id"]): set(t["failed_init_states"]) for t in tasks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="libero_spatial")
    parser.add_argument("--tasks", default="0,1,2", help="task ids, e.g. '0,1,2'")
    parser.add_argument("--episodes", type=int, default=50, help="states per task of each kind (default 50)")
    parser.add_argument("--context-seed", type=int, default=0, help="as `ript eval --states validation` (default 0)")
    parser.add_argument("--benchmark-eval", type=Path, help="eval.json of `ript eval` on the benchmark states")
    parser.add_argument("--validation-eval", type=Path, help="eval.json of the same policy with --states validation")
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix")
    args = parser.parse_args()

    from scipy.stats import ks_2samp

    from ript.sim.contexts import evaluation_contexts, validation_contexts
    from ript.sim.env import LiberoEnv, LiberoEnvConfig

    tasks = [int(t) for t in args.tasks.split(",")]
    kinds = {
        "benchmark": evaluation_contexts(args.suite, tasks, args.episodes),
        "validation": validation_contexts(args.suite, tasks, args.episodes, args.context_seed, apart_from=[]),
    }
    failed = {"benchmark": failed_indices(args.benchmark_eval), "validation": failed_indices(args.validation_eval)}
    rows: list[dict] = []
    for task in tasks:
        env = LiberoEnv(LiberoEnvConfig(suite=args.suite, task_id=task, render=False))
        try:
            for kind, contexts in kinds.items():
                for context in (c for c in contexts if c.task_id == task):
                    row = {"task": task, "kind": kind, "index": context.index, **placement_features(env, context)}
                    if failed[kind] is not None:
                        row["success"] = context.index not in failed[kind][task]
                    rows.append(row)
        finally:
            env.close()

    lines = [
        f"{args.suite}: the object to pick's start and its distance to the place target, {args.episodes} "
        f"benchmark init states vs {args.episodes} validation placements (context_seed {args.context_seed}) "
        "per task; median [10th, 90th percentile]; KS: two-sample Kolmogorov-Smirnov p-value.",
        "",
        "| task | feature | benchmark | validation | KS p |",
        "|---:|---|---|---|---:|",
    ]
    summary: dict = {}
    for task in tasks:
        for feature in FEATURES:
            values = {k: np.array([r[feature] for r in rows if r["task"] == task and r["kind"] == k]) for k in kinds}
            p = float(ks_2samp(values["benchmark"], values["validation"]).pvalue)
            cells = [
                f"{np.median(v):.3f} [{np.percentile(v, 10):.3f}, {np.percentile(v, 90):.3f}]" for v in values.values()
            ]
            lines.append(f"| {task} | {feature} | {cells[0]} | {cells[1]} | {p:.3g} |")
            summary[f"task_{task}/{feature}/ks_p"] = p
    if all(failed[k] is not None for k in kinds):
        lines += [
            "",
            "Success of the evaluated policy, split at each task's median pick-to-target distance (both kinds pooled):",
            "",
            "| task | kind | all | nearer half | farther half |",
            "|---:|---|---:|---:|---:|",
        ]
        for task in tasks:
            split = float(np.median([r["pick_to_target_m"] for r in rows if r["task"] == task]))
            for kind in kinds:
                mine = [r for r in rows if r["task"] == task and r["kind"] == kind]
                near = [r["success"] for r in mine if r["pick_to_target_m"] <= split]
                far = [r["success"] for r in mine if r["pick_to_target_m"] > split]
                cells = [f"{sum(s)}/{len(s)}" for s in ([r["success"] for r in mine], near, far)]
                lines.append(f"| {task} | {kind} | {' | '.join(cells)} |")
                summary[f"task_{task}/{kind}/split_m"] = split
    text = "\n".join(lines) + f"\n\nCommand: `python bench/placement_stats.py {' '.join(sys.argv[1:])}`\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(
        json.dumps({"args": vars(args) | {"out": str(args.out)}, "summary": summary, "rows": rows}, default=str)
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 4.0), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for kind, color in zip(kinds, ("tab:blue", "tab:orange")):
            mine = [r for r in rows if r["task"] == task and r["kind"] == kind]
            ok = [r for r in mine if r.get("success", True)]
            bad = [r for r in mine if not r.get("success", True)]
            ax.scatter([r["pick_x"] for r in ok], [r["pick_y"] for r in ok], s=14, color=color, label=kind)
            if bad:
                ax.scatter(
                    [r["pick_x"] for r in bad],
                    [r["pick_y"] for r in bad],
                    s=40,
                    marker="x",
                    color=color,
                    label=f"{kind}, failed",
                )
        ax.set(title=f"task {task}: object to pick, start", xlabel="x (m)", ylabel="y (m)")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    plt.close(fig)
    print(f"wrote {args.out.with_suffix('.md')}, .json, .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
