"""Context selection in simulation: mixed groups, and the groups a falling task still gets.

    python bench/sampler_task_share.py --out docs/bench/sampler_task_share

Three tasks of `--contexts` contexts each, every context of a task at that task's success rate
(Bernoulli trials, no simulator): the regime of a weak-start run where one task has fallen near 0.
For uniform drawing, `mixed` selection, and `mixed` with each `--shares` floor on every task's share
of a batch's groups (`sampler.min_task_share`), and `mixed` with each task drawn by its failure rate
(`sampler.favor_failing_tasks`), at equal trials: mixed groups per 100 trials, each
task's share of the trials, and the accepted (trained-on) groups per task — means over `--seeds`.
Prints a markdown table and writes it, with the raw figures as JSON, to --out.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from ript.core.sampler import DynamicSampler, SamplerConfig


@dataclass(frozen=True)
class Context:
    task_id: int
    index: int


def simulate(
    rates: list[float], contexts: int, selection: str, share: float, favor: bool, seed: int, trials: int
) -> dict:
    success = {Context(task, i): rate for task, rate in enumerate(rates) for i in range(contexts)}
    rng = random.Random(seed)
    config = SamplerConfig(context_selection=selection, min_task_share=share, favor_failing_tasks=favor, seed=seed)
    sampler = DynamicSampler(list(success), config)
    mixed = spent = 0.0
    task_trials = [0.0] * len(rates)
    accepted = [0] * len(rates)
    while spent < trials:
        batch = sampler.collect(
            lambda chosen: [[float(rng.random() < success[c]) for _ in range(config.group_size)] for c in chosen]
        )
        mixed += batch.stats["sampler/mixed_groups"]
        spent += batch.stats["sampler/trials"]
        for task in range(len(rates)):
            task_trials[task] += batch.stats.get(f"sampler/trials/task_{task}", 0.0)
        for group in batch.groups:
            accepted[group.context.task_id] += 1
    return {
        "mixed_per_100_trials": 100 * mixed / spent,
        "trial_share": [t / spent for t in task_trials],
        "accepted_groups": accepted,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.6, 0.5, 0.03], help="success rate per task")
    parser.add_argument("--contexts", type=int, default=32, help="contexts per task")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.15, 0.2, 1 / 3], help="min_task_share floors")
    parser.add_argument("--trials", type=int, default=3000, help="trials per simulated run (equal for every arm)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="write <out>.md and <out>.json")
    args = parser.parse_args()

    arms = [("uniform", 0.0, False), ("mixed", 0.0, False)]
    arms += [("mixed", share, False) for share in args.shares] + [("mixed", 0.0, True)]
    rows = []
    for selection, share, favor in arms:
        runs = [
            simulate(args.rates, args.contexts, selection, share, favor, seed, args.trials)
            for seed in range(args.seeds)
        ]
        n = len(runs)
        rows.append(
            {
                "selection": selection,
                "min_task_share": share,
                "favor_failing_tasks": favor,
                "mixed_per_100_trials": sum(r["mixed_per_100_trials"] for r in runs) / n,
                "trial_share": [sum(r["trial_share"][t] for r in runs) / n for t in range(len(args.rates))],
                "accepted_groups": [sum(r["accepted_groups"][t] for r in runs) / n for t in range(len(args.rates))],
            }
        )
    uniform = rows[0]["mixed_per_100_trials"]
    tasks = range(len(args.rates))
    lines = [
        f"Task success rates {args.rates}, {args.contexts} contexts per task, {args.trials} trials per run, "
        f"mean of {args.seeds} seeds (K = 8, B = 48).",
        "",
        "| selection | min_task_share | favor_failing_tasks | mixed groups / 100 trials (× uniform) | "
        + " | ".join(f"task {t} ({args.rates[t]:.0%}): trial share, accepted groups" for t in tasks)
        + " |",
        "|---|---:|---|---:|" + "---:|" * len(args.rates),
    ]
    for row in rows:
        cells = " | ".join(f"{row['trial_share'][t]:.1%}, {row['accepted_groups'][t]:.1f}" for t in tasks)
        lines.append(
            f"| {row['selection']} | {row['min_task_share']:.2f} | {'yes' if row['favor_failing_tasks'] else 'no'} | "
            f"{row['mixed_per_100_trials']:.2f} ({row['mixed_per_100_trials'] / uniform:.2f}×) | {cells} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(
            table + f"\n\nCommand: `python bench/sampler_task_share.py {' '.join(sys.argv[1:])}`\n"
        )
        args.out.with_suffix(".json").write_text(
            json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows}, indent=2)
        )
        print(f"wrote {args.out.with_suffix('.md')}, {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
