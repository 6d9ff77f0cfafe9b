"""Mixed groups of real `ript train` runs side by side at equal env steps (e.g. uniform vs mixed selection).

    python bench/sampler_pair.py --run uniform=runs/pair_uniform/<time> --run mixed=runs/pair_mixed/<time> \
        --env-steps 75000 --out docs/bench/sampler_pair

A group is mixed when its K rewards differ: only those carry a LOOP gradient, so a sampler is judged
by how many it finds per trial (and per env step: trials that fail run to the step limit and cost
more). Each run is counted from its first iteration to the first one that reached --env-steps
(default: the smallest final env steps among the runs), from its metrics.jsonl. The first --run is
the reference of the ratios. Writes OUT.md, OUT.json and OUT.png (cumulative mixed groups against
env steps).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COUNTS = {
    "trials": "sampler/trials",
    "mixed_groups": "sampler/mixed_groups",
    "rejected_all_fail": "sampler/groups_rejected_all_fail",
    "rejected_all_success": "sampler/groups_rejected_all_success",
}
TASK_TRIALS = "sampler/trials/task_"
"""Per-task trial counts (a run over several tasks): how a sampler shares its trials among them."""


def read_rows(run_dir: Path) -> list[dict]:
    from ript.core.report import read_run  # skips a line a killed run left half-written

    rows = [row for row in read_run(run_dir, max_filmstrips=0).rows if row.get("iteration", 0) > 0]
    if not rows:
        raise SystemExit(f"{run_dir}/metrics.jsonl has no finished iteration")
    return rows


def tally(rows: list[dict], budget: int) -> dict:
    """Counts over the iterations up to the first that reached `budget` env steps, and the curve."""
    totals = dict.fromkeys(COUNTS, 0.0)
    curve = [(0, 0.0)]
    successes = 0.0
    tasks = sorted({key.rsplit("_", 1)[1] for row in rows for key in row if key.startswith(TASK_TRIALS)}, key=int)
    task_trials, task_undrawn = dict.fromkeys(tasks, 0.0), dict.fromkeys(tasks, 0)
    for row in rows:
        for name, key in COUNTS.items():
            totals[name] += row.get(key, 0.0)
        for task in tasks:
            drawn = row.get(f"{TASK_TRIALS}{task}", 0.0)
            task_trials[task] += drawn
            task_undrawn[task] += drawn == 0
        successes += row.get("rollout/success_rate", 0.0) * row.get("sampler/trials", 0.0)
        curve.append((int(row["env_steps"]), totals["mixed_groups"]))
        if row["env_steps"] >= budget:
            break
    env_steps = curve[-1][0]
    return {
        **{name: int(value) for name, value in totals.items()},
        "iterations": len(curve) - 1,
        "env_steps": env_steps,
        "sampled_success": successes / max(totals["trials"], 1.0),
        "mixed_per_100_trials": 100.0 * totals["mixed_groups"] / max(totals["trials"], 1.0),
        "mixed_per_10k_env_steps": 1e4 * totals["mixed_groups"] / max(env_steps, 1),
        "task_trials": {task: int(n) for task, n in task_trials.items()},
        "task_undrawn_iterations": task_undrawn,
        "curve": curve,
    }


def parse_run(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise SystemExit(f"--run wants NAME=RUN_DIR, got {text!r}")
    return name, Path(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="NAME=RUN_DIR (the first is the reference)")
    parser.add_argument("--env-steps", type=int, help="budget to compare at (default: smallest final env steps)")
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix")
    args = parser.parse_args()

    runs = dict(parse_run(text) for text in args.run)
    if len(runs) < 2:
        raise SystemExit("give at least two runs (--run NAME=RUN_DIR twice)")
    rows = {name: read_rows(folder) for name, folder in runs.items()}
    budget = args.env_steps or min(int(r[-1]["env_steps"]) for r in rows.values())
    results = {name: tally(r, budget) for name, r in rows.items()}
    reference = next(iter(results))
    for name, result in results.items():
        if result["env_steps"] < budget:
            print(f"warning: {name} stopped at {result['env_steps']:,} env steps, before the budget {budget:,}")

    lines = [
        f"Runs counted to the first iteration at or past {budget:,} env steps; ratios against {reference}.",
        "",
        "| run | iterations | env steps | trials | sampled success | mixed groups | per 100 trials "
        "| per 10 k env steps | rejected all-fail / all-success |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    ref = results[reference]
    for name, r in results.items():
        per_trial = r["mixed_per_100_trials"] / max(ref["mixed_per_100_trials"], 1e-9)
        per_step = r["mixed_per_10k_env_steps"] / max(ref["mixed_per_10k_env_steps"], 1e-9)
        lines.append(
            f"| {name} | {r['iterations']} | {r['env_steps']:,} | {r['trials']} | {r['sampled_success']:.2f} "
            f"| {r['mixed_groups']} | {r['mixed_per_100_trials']:.1f} ({per_trial:.2f}×) "
            f"| {r['mixed_per_10k_env_steps']:.2f} ({per_step:.2f}×) "
            f"| {r['rejected_all_fail']} / {r['rejected_all_success']} |"
        )
    tasks = sorted({task for r in results.values() for task in r["task_trials"]}, key=int)
    if tasks:
        lines += [
            "",
            "Trials per task (share of the run's trials; iterations that drew none of the task):",
            "",
            "| run | " + " | ".join(f"task {task}" for task in tasks) + " |",
            "|---|" + "---:|" * len(tasks),
        ]
        for name, r in results.items():
            cells = [
                f"{r['task_trials'].get(t, 0)} ({100 * r['task_trials'].get(t, 0) / max(r['trials'], 1):.0f} %; "
                f"{r['task_undrawn_iterations'].get(t, r['iterations'])})"
                for t in tasks
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    payload = {"budget_env_steps": budget, "reference": reference, "runs": {n: str(f) for n, f in runs.items()}}
    args.out.with_suffix(".json").write_text(json.dumps(payload | {"results": results}, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in results.items():
        xs, ys = zip(*r["curve"], strict=True)
        ax.step(xs, ys, where="post", label=f"{name}: {r['mixed_per_100_trials']:.1f} per 100 trials")
    ax.axvline(budget, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("env steps")
    ax.set_ylabel("mixed groups (cumulative)")
    ax.set_title("Mixed groups found per env step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    print(f"wrote {args.out}.md, .json, .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
