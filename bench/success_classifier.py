"""Success-classifier benchmark: trained on simulated trials, scored on held-out simulated trials.

    python bench/success_classifier.py                         # 4 tasks x 40 trials, agentview
    python bench/success_classifier.py --tasks 0-3 --episodes 40 --out runs/bench_classifier

Chains two `ript` subcommands (the ones a user runs): `ript sim-outcomes` (scripted-expert trials
with command noise on libero_spatial training contexts, each trial's last frame and two earlier
frames, labelled by LIBERO's success check) and `ript train-classifier` (a quarter of the trials
held out whole). The frames are kept, so a second run only retrains. Writes
<out>/summary.json and <out>/summary.md; `--docs` copies them to docs/bench/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


def ript(*args: str) -> float:
    print("$ ript " + " ".join(args), flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ript.cli.main", *args], check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="0-3", help="libero_spatial tasks (default 0-3)")
    parser.add_argument("--episodes", type=int, default=40, help="simulated trials per task (default 40)")
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_classifier"))
    parser.add_argument("--docs", action="store_true", help="copy the summary to docs/bench/")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "sim_outcomes.npz"
    timings = {}
    if not data.exists():
        timings["collect_s"] = ript(
            "sim-outcomes",
            "--tasks",
            args.tasks,
            "--episodes",
            str(args.episodes),
            "--num-envs",
            str(args.num_envs),
            "--no-progress",
            "--out",
            str(data),
        )
    timings["train_s"] = ript(
        "train-classifier", "--data", str(data), "--out", str(args.out / "model"), "--no-progress"
    )
    report = json.loads((args.out / "model" / "report.json").read_text())
    report.pop("history")
    summary = {
        "command": "python bench/success_classifier.py " + " ".join(sys.argv[1:]),
        "tasks": args.tasks,
        "episodes_per_task": args.episodes,
        "timings_s": timings,
        "report": report,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    markdown = (
        (args.out / "model" / "report.md").read_text()
        + f"\nlibero_spatial tasks {args.tasks}, {args.episodes} simulated trials per task; "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + "\n"
    )
    (args.out / "summary.md").write_text(markdown)
    print(markdown)
    if args.docs:
        for name in ("summary.json", "summary.md"):
            shutil.copy(args.out / name, Path("docs/bench") / f"success_classifier_{name}")
    heldout = report["heldout_trials_verdict"]["accuracy"]
    print(f"held-out trial accuracy {heldout:.3f} (target >= 0.90): {'met' if heldout >= 0.9 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
