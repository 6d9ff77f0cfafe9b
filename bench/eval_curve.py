"""Benchmark success against env steps: `ript eval` results of a run's checkpoints, one line per seed.

    python bench/eval_curve.py --start runs/x/eval_start/libero_spatial/eval.json \
        --point seed0=runs/x/seed0:9:runs/x/eval9_seed0/libero_spatial/eval.json \
        --point seed0=runs/x/seed0:26:runs/x/eval26_seed0/libero_spatial/eval.json \
        --out docs/bench/curve

Each --point is SERIES=RUN_DIR:ITERATION:EVAL_JSON; the env steps of that iteration are read from
RUN_DIR/metrics.jsonl, so the x axis is what the run spent, not a count of updates. Writes
OUT.png (success with its Wilson CI per series, the start as a band) and OUT.md (the table).
--validation SERIES=RUN_DIR adds the run's own periodic evaluation (`train.eval_every`, e.g. on
`eval_on=validation` states) as a dashed line in the series' colour, rollbacks marked with x.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def env_steps_at(run_dir: Path, iteration: int) -> int:
    from ript.core.report import read_run  # skips a line a killed run left half-written

    for row in read_run(run_dir, max_filmstrips=0).rows:
        if row["iteration"] == iteration:
            return int(row["env_steps"])
    raise SystemExit(f"{run_dir}/metrics.jsonl has no iteration {iteration}")


def read_eval(path: Path) -> dict:
    result = json.loads(path.read_text())
    return {key: result[key] for key in ("success_rate", "ci_low", "ci_high", "episodes_per_task")} | {
        "tasks": {str(t["task_id"]): t["success_rate"] for t in result["tasks"]}
    }


def validation_rows(run_dir: Path) -> list[dict]:
    """The run's periodic evaluations: iteration, env steps, success, episodes, rolled back to."""
    from ript.core.report import read_run

    return [
        {
            "iteration": int(r["iteration"]),
            "env_steps": int(r["env_steps"]),
            "success": float(r["eval/success_rate"]),
            "episodes": int(r.get("eval/episodes", 0)),
            "rolled_back_to": r.get("train/rolled_back_to"),
        }
        for r in read_run(run_dir, max_filmstrips=0).rows
        if isinstance(r.get("eval/success_rate"), (int, float))
    ]


def plot_validation(ax, name: str, rows: list[dict], colour) -> None:
    """A run's own evaluations, dashed; x where an evaluation rolled the run back."""
    (line,) = ax.plot(
        [v["env_steps"] for v in rows], [100 * v["success"] for v in rows], linestyle="--", color=colour,
        linewidth=1, alpha=0.8, label=f"{name}, own evaluation",
    )  # fmt: skip
    back = [v for v in rows if v["rolled_back_to"] is not None]
    ax.plot([v["env_steps"] for v in back], [100 * v["success"] for v in back], "x", color=line.get_color(), ms=8)


def parse_point(text: str) -> tuple[str, Path, int, Path]:
    try:
        series, rest = text.split("=", 1)
        run_dir, iteration, eval_json = rest.split(":")
        return series, Path(run_dir), int(iteration), Path(eval_json)
    except ValueError:
        raise SystemExit(f"--point wants SERIES=RUN_DIR:ITERATION:EVAL_JSON, got {text!r}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=Path, required=True, help="eval.json of the policy before RIPT")
    parser.add_argument("--point", action="append", default=[], help="SERIES=RUN_DIR:ITERATION:EVAL_JSON")
    parser.add_argument(
        "--validation", action="append", default=[], help="SERIES=RUN_DIR: the run's periodic evaluations, dashed"
    )
    parser.add_argument("--target", type=float, default=0.8, help="drawn as a line (default 0.8)")
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix")
    args = parser.parse_args()

    start = read_eval(args.start)
    series: dict[str, list[dict]] = defaultdict(list)
    for text in args.point:
        name, run_dir, iteration, eval_json = parse_point(text)
        series[name].append(
            {"iteration": iteration, "env_steps": env_steps_at(run_dir, iteration)} | read_eval(eval_json)
        )
    for points in series.values():
        points.sort(key=lambda p: p["env_steps"])

    lines = [
        "| series | iteration | env steps | " + " | ".join(f"task {t}" for t in start["tasks"]) + " | mean [95 % CI] |"
    ]
    lines.append("|---|---:|---:|" + "---:|" * len(start["tasks"]) + "---|")

    def row(name: str, iteration: object, steps: object, point: dict) -> str:
        tasks = " | ".join(f"{100 * point['tasks'][t]:.0f} %" for t in start["tasks"])
        ci = f"[{100 * point['ci_low']:.1f}, {100 * point['ci_high']:.1f}]"
        return f"| {name} | {iteration} | {steps} | {tasks} | **{100 * point['success_rate']:.1f} %** {ci} |"

    lines.append(row("start", 0, 0, start))
    for name, points in series.items():
        lines += [row(name, p["iteration"], f"{p['env_steps']:,}", p) for p in points]
    episodes = start["episodes_per_task"]
    lines.append(f"\n{episodes} benchmark states per task, deterministic; Wilson 95 % intervals.")
    validation = {}
    for text in args.validation:
        name, _, run_dir = text.partition("=")
        if not run_dir:
            raise SystemExit(f"--validation wants SERIES=RUN_DIR, got {text!r}")
        validation[name] = validation_rows(Path(run_dir))
        marks = [
            f"{100 * v['success']:.0f}"
            + (f" (rolled back to {v['rolled_back_to']:.0f})" if v["rolled_back_to"] is not None else "")
            for v in validation[name]
        ]
        lines.append(
            f"\n{name}, the run's own evaluations ({validation[name][0]['episodes'] if validation[name] else 0} "
            f"episodes each), iterations {', '.join(str(v['iteration']) for v in validation[name])}: "
            f"{', '.join(marks)} %"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.axhspan(100 * start["ci_low"], 100 * start["ci_high"], color="grey", alpha=0.2, label="start (95 % CI)")
    ax.axhline(100 * args.target, color="black", linestyle=":", linewidth=1, label=f"target {100 * args.target:.0f} %")
    for name, points in series.items():
        xs = [0] + [p["env_steps"] for p in points]
        ys = [100 * start["success_rate"]] + [100 * p["success_rate"] for p in points]
        low = [0.0] + [100 * (p["success_rate"] - p["ci_low"]) for p in points]
        high = [0.0] + [100 * (p["ci_high"] - p["success_rate"]) for p in points]
        drawn = ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=name)
        if name in validation:
            plot_validation(ax, name, validation.pop(name), drawn.lines[0].get_color())
    for name, rows in validation.items():  # a series with no benchmark point yet
        plot_validation(ax, name, rows, None)
    ax.set_xlabel("env steps")
    ax.set_ylabel(
        f"success, % (solid: benchmark, {episodes} per task; dashed: own eval.)"
        if args.validation
        else f"benchmark success, % ({episodes} states per task)",
        fontsize=8 if args.validation else None,
    )
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)  # the least-covered corner: series differ in where they end
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    print("\n".join(lines))
    print(f"wrote {args.out.with_suffix('.png')}, {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
