"""A starter policy for `ript up sim` when none is given, so that `./run.sh` runs the whole sim stack.

RIPT needs a policy whose success on the training contexts is neither 0 nor 1 (else every group
is all-equal and carries no gradient). Built once into `folder` and reused, from the same `ript`
subcommands a user runs by hand (docs/results.md explains the recipe):

1. scripted demos of the graph's tasks (memoryless expert, state-only, 0.1 command noise so the
   demos show recoveries; they also calibrate the exploration scale);
2. SFT of a small state-input policy that re-plans every step;
3. one DAgger round (the policy drives half of the time, the expert labels every state), SFT again;
4. NLL calibration of the regression head's scale (mean frozen).

It is a demonstration policy for the stack, not the 1-demo protocol of the benchmark
(bench/ript_libero.py): it sees 10 demos of the task it is trained on.

A starter can ship with the project (`starter_policies/<suite>_<tasks>/`, made by `ript starter
--ship`), with its recipe, the command that made it, its SHA-256 and its measured success beside it
in `starter.json`; `./run.sh` then reaches the panel without building anything. A shipped starter
that does not verify (other format or recipe, altered file) is not used: the reason is printed and
one is built as above. None ships yet: the one this recipe made measured too weak for RIPT to learn
from (docs/results.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

DEMOS_PER_TASK = 10
DEMO_NOISE = 0.1
SFT_STEPS = 2000
DAGGER_EPISODES_PER_TASK = 10
DAGGER_BETA = 0.5
DAGGER_SFT_STEPS = 1000
DEMO_SEED, DAGGER_SEED = 1, 11
MODEL = [
    "--input-mode",
    "state",
    "--hidden-dim",
    "128",
    "--num-layers",
    "3",
    "--chunk-size",
    "4",
    "--execute-steps",
    "1",
]
"""Re-planning every step: the same recipe with whole chunks executed measured 0/20 on task 0's
benchmark states, deterministic and sampled (built in 5 min on 2 busy cores; docs/results.md)."""


SHIPPED_DIR = Path(__file__).with_name("starter_policies")
STARTER_FORMAT = 1
"""Version of the starter record: a shipped starter written by another version is rebuilt."""


def recipe() -> dict:
    """What makes a starter: a shipped one built with another recipe is not used."""
    return {
        "demos_per_task": DEMOS_PER_TASK,
        "demo_noise": DEMO_NOISE,
        "sft_steps": SFT_STEPS,
        "dagger_episodes_per_task": DAGGER_EPISODES_PER_TASK,
        "dagger_beta": DAGGER_BETA,
        "dagger_sft_steps": DAGGER_SFT_STEPS,
        "model": list(MODEL),
    }


def starter_name(tasks: str) -> str:
    """The folder name of a starter for `tasks`, shipped or built (`ript up sim`, `ript starter`)."""
    return f"libero_spatial_{tasks.replace(',', '_').replace(' ', '')}"


def shipped_folder(tasks: str) -> Path:
    return SHIPPED_DIR / starter_name(tasks)


def shipped_starter(tasks: str) -> tuple[Path | None, dict, str]:
    """(checkpoint, its record, "") when a starter for `tasks` ships with the project and verifies;
    else (None, {}, why not)."""
    from ript.core.safe_io import CorruptFileError, file_digest
    from ript.policies.checkpoint import read_checkpoint

    folder = shipped_folder(tasks)
    rebuild = f"`ript starter --tasks {tasks} --rebuild` makes one"
    if not (folder / "starter.json").exists():
        return None, {}, f"no starter policy ships for task(s) {tasks}"
    try:
        record = json.loads((folder / "starter.json").read_text())
        if record.get("format") != STARTER_FORMAT:
            return (
                None,
                {},
                (
                    f"the shipped starter's record is format {record.get('format')!r}, this ript reads "
                    f"{STARTER_FORMAT}; {rebuild}"
                ),
            )
        if record.get("recipe") != recipe():
            return None, {}, f"the shipped starter was built with another recipe than this ript's; {rebuild}"
        path = folder / "policy.pt"
        if file_digest(path) != record.get("sha256"):
            return None, {}, f"{path} is not the file its record names (sha256 differs); {rebuild}"
        read_checkpoint(path)  # whole (its own digest) and a policy checkpoint of a format this ript loads
    except (OSError, ValueError, CorruptFileError) as exc:
        return None, {}, f"the shipped starter does not verify ({exc}); {rebuild}"
    return path, record, ""


def _ript(*args: str) -> None:
    from ript.cli.main import main

    print("$ ript " + " ".join(args), flush=True)
    code = main(list(args))
    if code:
        raise SystemExit(f"starter policy: `ript {args[0]}` failed with exit code {code}")


def _newest_policy(folder: Path) -> Path:
    found = sorted(folder.glob("*/policy.pt"))
    if not found:
        raise SystemExit(f"starter policy: no */policy.pt under {folder}")
    return found[-1]


def ensure_starter_policy(
    folder: str | Path, tasks: str = "0", progress: bool = True, rebuild: bool = False, use_shipped: bool = True
) -> Path:
    """The shipped starter for `tasks` if one verifies (and `use_shipped`), else the one built in
    `folder` (built first if missing, or anew with `rebuild`). Each finished step of a build leaves
    its folder behind, so an interrupted build resumes at the step it was in."""
    folder = Path(folder)
    final = folder / "policy.pt"
    if rebuild:
        shutil.rmtree(folder, ignore_errors=True)
    elif use_shipped:
        shipped, record, why = shipped_starter(tasks)
        if shipped is not None:
            print(f"starter policy: {shipped} (ships with ript; {describe(record)})", flush=True)
            return shipped
        if not final.exists():
            print(f"{why}.", flush=True)
    if final.exists():
        return final
    quiet = [] if progress else ["--no-progress"]
    print(
        f"no policy checkpoint given: building a starter policy for libero_spatial task(s) {tasks} in {folder} "
        f"(once, tens of minutes on a 2-core CPU; scripted demos -> SFT -> DAgger -> scale calibration)",
        flush=True,
    )
    demos, dagger = folder / "demos", folder / "dagger"
    common = ["--tasks", tasks, "--state-only", "--memoryless-expert", *quiet]
    # One torch thread: a small state model gains nothing from more, and loses a lot beside a busy process.
    sft = ["sft", "--threads", "1", *quiet]

    def first_sft() -> str:  # exists only once its step has run
        return str(_newest_policy(folder / "sft"))

    # A step's output folder appears when the step starts: build under a temporary name, then rename,
    # so that an existing folder means a finished step. Arguments are built when the step runs.
    for out, make_args in (
        (
            demos,
            lambda: [
                "record-demos",
                "--demos",
                str(DEMOS_PER_TASK),
                "--noise",
                str(DEMO_NOISE),
                "--seed",
                str(DEMO_SEED),
                *common,
            ],
        ),
        (folder / "sft", lambda: [*sft, "--demos", str(demos), *MODEL, "--steps", str(SFT_STEPS)]),
        (
            dagger,
            lambda: [
                "record-demos",
                "--demos",
                str(DAGGER_EPISODES_PER_TASK),
                "--learner",
                first_sft(),
                "--beta",
                str(DAGGER_BETA),
                "--seed",
                str(DAGGER_SEED),
                *common,
            ],
        ),
        (
            folder / "sft_dagger",
            lambda: [*sft, "--demos", str(demos), str(dagger), "--init", first_sft(), "--steps", str(DAGGER_SFT_STEPS)],
        ),
    ):
        if out.exists():
            continue
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)  # what an interrupted try of this step left
        _ript(*make_args(), "--out", str(partial))
        partial.rename(out)
    _ript(
        "calibrate-scale",
        "--checkpoint",
        str(_newest_policy(folder / "sft_dagger")),
        "--demos",
        str(demos),
        "--out",
        str(folder / "policy.partial.pt"),
        *quiet,
    )
    (folder / "policy.partial.pt").rename(final)
    print(f"starter policy: {final}", flush=True)
    return final


def describe(record: dict) -> str:
    """A shipped starter's measured success, in one line."""
    measured = record.get("success", {})
    parts = [f"{name} {m['successes']}/{m['episodes']}" for name, m in measured.items()]
    return "measured success: " + (", ".join(parts) if parts else "not recorded")


def ship(built: Path, tasks: str, episodes: int, command: str) -> Path:
    """Copy a built starter into the package with its record: recipe, command, SHA-256, and its
    success on the first `episodes` benchmark states of each task, deterministic and sampled."""
    from ript.core.safe_io import file_digest

    folder = shipped_folder(tasks)
    folder.mkdir(parents=True, exist_ok=True)
    success = {}
    for name, extra in (("benchmark_deterministic", []), ("benchmark_sampled", ["--stochastic"])):
        out = built.parent / f"eval_{name}"
        _ript(
            "eval", "--checkpoint", str(built), "--tasks", tasks, "--episodes", str(episodes), *extra, "--out", str(out)
        )
        report = json.loads(next(out.glob("*/eval.json")).read_text())
        wins = sum(t["successes"] for t in report["tasks"])
        total = sum(t["episodes"] for t in report["tasks"])
        success[name] = {"successes": wins, "episodes": total}
    shutil.copyfile(built, folder / "policy.pt")
    record = {
        "format": STARTER_FORMAT,
        "tasks": tasks,
        "recipe": recipe(),
        "sha256": file_digest(folder / "policy.pt"),
        "command": command,
        "seeds": {"demos": DEMO_SEED, "dagger": DAGGER_SEED},
        "success": success,
    }
    (folder / "starter.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"shipped {folder / 'policy.pt'} ({describe(record)})", flush=True)
    return folder / "policy.pt"
