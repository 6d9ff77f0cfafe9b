"""The first minutes of `./run.sh`, timed as a new user meets them: when the operator panel
answers, when it shows a LIBERO camera frame, when the first trial starts and ends, and when the
trainer finishes its first LOOP update. Run it in a clone where setup has already run (the setup's
own time is `scripts/setup.sh`'s, reported separately).

    python bench/first_run.py                          # ./run.sh with its defaults -> docs/bench/first_run.{json,md}
    python bench/first_run.py --timeout 900 -- --set iterations=2

It polls the panel's API on 127.0.0.1 with the token `./run.sh` prints, and the trainer's run folder;
it stops the stack when the first update is in (or at the timeout). One run: say so when quoting it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from ript.panel.address import parse_announcement

ROOT = Path(__file__).resolve().parent.parent


def get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except OSError:  # not listening yet (URLError is one)
        return 0, b""


def metric_rows(run_dir: Path) -> list[dict]:
    """The trainer's metrics rows (one per finished iteration); a line being written is skipped."""
    metrics = run_dir / "metrics.jsonl"
    rows = []
    for line in metrics.read_text().splitlines() if metrics.exists() else []:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    parser.add_argument("--run-dir", default="runs/ros/sim", help="the trainer's run folder (./run.sh's default)")
    parser.add_argument("--fresh", action="store_true", help="delete the run folder first (a first run)")
    parser.add_argument("--iterations", type=int, default=1, help="stop after this many LOOP updates (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    parser.add_argument("run_args", nargs="*", help="arguments for ./run.sh (after --)")
    args = parser.parse_args()

    run_dir = ROOT / args.run_dir
    if args.fresh:
        shutil.rmtree(run_dir, ignore_errors=True)
    log_path = ROOT / "runs" / "first_run.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    started = time.monotonic()
    process = subprocess.Popen(
        [str(ROOT / "run.sh"), *args.run_args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    panel: dict[str, str] = {}

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.write(f"{time.monotonic() - started:8.1f} {line}")
            log.flush()
            found = parse_announcement(line)
            if found and not panel:
                panel.update(url=found[0], token=found[1])

    threading.Thread(target=read, daemon=True).start()
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        if name not in marks:
            marks[name] = round(time.monotonic() - started, 1)
            print(f"{marks[name]:7.1f} s  {name}", flush=True)

    try:
        while time.monotonic() - started < args.timeout and process.poll() is None:
            if panel:
                mark("panel address printed")
                status, _ = get(f"{panel['url']}/health", panel["token"])
                if status == 200:
                    mark("panel answers")
                status, body = get(f"{panel['url']}/api/state", panel["token"])
                if status == 200:
                    state = json.loads(body)
                    if state["cameras"]:
                        mark("panel shows a LIBERO camera frame")
                    if state["trial"]:
                        mark("first trial started")
                status, body = get(f"{panel['url']}/api/history", panel["token"])
                if status == 200 and any(c["outcomes"] for c in json.loads(body)["contexts"]):
                    mark("first trial judged")
            rows = metric_rows(run_dir)
            for row in rows:
                mark("first LOOP update done" if row["iteration"] == 1 else f"LOOP update {row['iteration']} done")
            if len(rows) >= args.iterations:
                break
            time.sleep(1.0)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()
    keys = (
        "rollout/success_rate",
        "sampler/trials",
        "sampler/mixed_groups",
        "stats/approx_kl_final",
        "stats/stopped_early",
    )
    iterations = [
        {"iteration": row["iteration"], **{key: row.get(key) for key in keys}} for row in metric_rows(run_dir)
    ]
    result = {
        "command": "./run.sh " + " ".join(args.run_args),
        "iterations": iterations,
        "fresh_run_dir": args.fresh,
        "seconds": marks,
        "timed_out": len(iterations) < args.iterations,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "first_run.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# The first minutes of ./run.sh",
        "",
        f"`python bench/first_run.py {'--fresh ' if args.fresh else ''}--iterations {args.iterations}"
        f"{' -- ' + ' '.join(args.run_args) if args.run_args else ''}`"
        f" (one run; {os.cpu_count()} CPU cores, setup already done; log: runs/first_run.log)",
        "",
        "| moment | seconds after ./run.sh |",
        "|---|---:|",
        *(f"| {name} | {seconds:.1f} |" for name, seconds in marks.items()),
        "",
        "| iteration | trials | mixed groups | success of its trials (training contexts) | KL after the update | stopped by target_kl |",
        "|---:|---:|---:|---:|---:|---|",
        *(
            f"| {it['iteration']} | {it['sampler/trials']:.0f} | {it['sampler/mixed_groups']:.0f} | "
            f"{it['rollout/success_rate']:.2f} | {it['stats/approx_kl_final']:.4f} | "
            f"{'yes' if it['stats/stopped_early'] else 'no'} |"
            for it in iterations
        ),
    ]
    (args.out / "first_run.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'first_run.md'}")
    return 0 if not result["timed_out"] else 1


if __name__ == "__main__":
    sys.exit(main())
