"""A starter policy for `ript up sim` when none is given, so that `./run.sh` runs the whole sim stack
and shows RIPT learning.

RIPT needs a policy whose success on the training contexts is neither 0 nor 1 (else every group
is all-equal and carries no gradient). The starter is the weak-start recipe of docs/results.md
(issue 18): a policy pre-trained on other libero_spatial tasks, then fine-tuned on one scripted
demo of the task it will train on. Built once into `folder` and reused, from the same `ript`
subcommands a user runs by hand:

1. stage 1 on the pre-training tasks (PRETRAIN_TASKS minus the starter's): 10 scripted demos per
   task (memoryless expert, state-only, 0.1 command noise so the demos show recoveries), SFT of a
   small state-input policy, then two DAgger rounds (the policy drives part of the time, the
   expert labels every state), each followed by SFT from the previous policy;
2. one scripted demo of each starter task, fine-tuned from stage 1 at a low learning rate;
3. NLL calibration of the regression head's scale (mean frozen) on all demos.

`ript up sim` then runs RIPT with the settings that lifted this start (SAMPLING_KNOBS, written into
the starter: whole 4-step chunks, the gripper at temperature 0.5, rotation at the mean;
LAUNCH_ARGUMENTS: the scale frozen, contexts near 50 % first, B = 16 at lr 1e-5, rendered cameras).
On task 2 the same recipe's policy started at 4/20 deterministic and 12/20 sampled on benchmark
states, so groups are mixed from the first iteration, and RIPT took it to 18/20 and 17/20 (two
seeds, docs/results.md).

A starter can ship with the project (`starter_policies/<suite>_<tasks>/`, made by `ript starter
--ship`), with its recipe, the command that made it, its SHA-256 and its measured success beside it
in `starter.json`; `./run.sh` then reaches the panel without building anything. A shipped starter
that does not verify (other format or recipe, altered file) is not used: the reason is printed and
one is built as above.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

DEFAULT_TASKS = "2"
"""libero_spatial task 2 (the bowl at the table centre): the recipe starts it at 20 % and RIPT lifts it."""
PRETRAIN_TASKS = (0, 1, 5, 6, 8)
PRETRAIN_DEMOS_PER_TASK = 10
DEMO_NOISE = 0.1
PRETRAIN_SFT_STEPS = 3000
DAGGER_ROUNDS = ((0.5, 11), (0.3, 12))
"""(beta, seed) per DAgger round: the share of steps the expert drives, and the recording seed."""
DAGGER_EPISODES_PER_TASK = 10
DAGGER_SFT_STEPS = 2000
TARGET_DEMOS = 1
TARGET_SFT_STEPS = 300
TARGET_LEARNING_RATE = 3e-5
"""Fine-tuning at `ript sft`'s from-scratch 3e-4 undid stage 1 (docs/results.md)."""
DEMO_SEED, TARGET_SEED = 1, 2
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
SAMPLING_KNOBS = {"execute_steps": 4, "gripper_temperature": 0.5, "fixed_action_dims": (3, 4, 5)}
"""Set in the finished starter (part of its recipe), so that `ript eval`, `ript train` and the policy
node all run it as RIPT lifted it: whole 4-step chunks, the gripper sampled at temperature 0.5,
rotation executed at the mean (a top-down pick-and-place task does not need to explore it)."""
LAUNCH_ARGUMENTS = {
    "frozen_parameters": "head.scale_head",
    "context_selection": "mixed",
    "batch_size": "16",
    "learning_rate": "1e-5",
    "render": "true",
}
"""What `ript up sim` runs RIPT on the starter with, unless the user sets the launch argument: the
issue-18 recipe's trainer settings (the calibrated scale frozen, contexts near 50 % first), with
B = 16 (two mixed groups) so that the first update comes within minutes instead of after 48
informative trials, at lr 1e-5, half the recipe's (3e-5 moved this starter's first step out of the
trust region, KL 0.20 > 0.1, and two mixed groups give a noisier gradient than six), and rendered
cameras so the panel shows the scene (the policy itself reads states). How it is trained, not how
it is built: not part of `recipe()`."""


SHIPPED_DIR = Path(__file__).with_name("starter_policies")
STARTER_FORMAT = 1
"""Version of the starter record: a shipped starter written by another version is rebuilt."""


def recipe() -> dict:
    """What makes a starter: a shipped one built with another recipe is not used."""
    return {
        "pretrain_tasks": list(PRETRAIN_TASKS),
        "pretrain_demos_per_task": PRETRAIN_DEMOS_PER_TASK,
        "demo_noise": DEMO_NOISE,
        "pretrain_sft_steps": PRETRAIN_SFT_STEPS,
        "dagger_rounds": [list(r) for r in DAGGER_ROUNDS],
        "dagger_episodes_per_task": DAGGER_EPISODES_PER_TASK,
        "dagger_sft_steps": DAGGER_SFT_STEPS,
        "target_demos": TARGET_DEMOS,
        "target_sft_steps": TARGET_SFT_STEPS,
        "target_learning_rate": TARGET_LEARNING_RATE,
        "seeds": [DEMO_SEED, TARGET_SEED],
        "model": list(MODEL),
        "sampling_knobs": {knob: list(v) if isinstance(v, tuple) else v for knob, v in SAMPLING_KNOBS.items()},
    }


def pretrain_tasks(tasks: str) -> str:
    """The pre-training tasks for a starter of `tasks`: PRETRAIN_TASKS minus the starter's own."""
    from ript.cli.common import parse_task_ids

    own = set(parse_task_ids(tasks))
    kept = [task for task in PRETRAIN_TASKS if task not in own]
    if not kept:
        raise SystemExit(f"starter policy: no pre-training task left once {tasks} is held out")
    return ",".join(str(task) for task in kept)


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
    folder: str | Path,
    tasks: str = DEFAULT_TASKS,
    progress: bool = True,
    rebuild: bool = False,
    use_shipped: bool = True,
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
        "(once, about half an hour on a 2-core CPU: stage 1 on other tasks with scripted demos + 2 DAgger "
        "rounds, then 1 demo of the task, then scale calibration; `ript starter` says more)",
        flush=True,
    )
    pretrain = pretrain_tasks(tasks)
    demos = folder / "demos_pretrain"
    target = folder / "demos_target"
    expert = ["--state-only", "--memoryless-expert", *quiet]
    # One torch thread: a small state model gains nothing from more, and loses a lot beside a busy process.
    sft = ["sft", "--threads", "1", *quiet]

    def policy_of(step: str):  # a step's policy exists only once the step has run
        return lambda: str(_newest_policy(folder / step))

    previous = policy_of("sft_stage1")
    steps: list[tuple[Path, object]] = [
        (
            demos,
            lambda: [
                "record-demos", "--tasks", pretrain, "--demos", str(PRETRAIN_DEMOS_PER_TASK), "--noise",
                str(DEMO_NOISE), "--seed", str(DEMO_SEED), *expert,
            ],
        ),
        (folder / "sft_stage1", lambda: [*sft, "--demos", str(demos), *MODEL, "--steps", str(PRETRAIN_SFT_STEPS)]),
    ]  # fmt: skip
    recorded = [demos]
    for round_index, (beta, seed) in enumerate(DAGGER_ROUNDS, start=1):
        dagger, learner = folder / f"dagger_{round_index}", previous
        steps.append(
            (
                dagger,
                lambda learner=learner, beta=beta, seed=seed: [
                    "record-demos", "--tasks", pretrain, "--demos", str(DAGGER_EPISODES_PER_TASK), "--learner",
                    learner(), "--beta", str(beta), "--seed", str(seed), *expert,
                ],
            )
        )  # fmt: skip
        recorded = [*recorded, dagger]
        steps.append(
            (
                folder / f"sft_dagger_{round_index}",
                lambda learner=learner, recorded=recorded: [
                    *sft, "--demos", *map(str, recorded), "--init", learner(), "--steps", str(DAGGER_SFT_STEPS),
                ],
            )
        )  # fmt: skip
        previous = policy_of(f"sft_dagger_{round_index}")
    steps += [
        (
            target,
            lambda: [
                "record-demos", "--tasks", tasks, "--demos", str(TARGET_DEMOS), "--seed", str(TARGET_SEED), *expert,
            ],
        ),
        (
            folder / "sft_target",
            lambda: [
                *sft, "--demos", str(target), "--init", previous(), "--steps", str(TARGET_SFT_STEPS), "--lr",
                str(TARGET_LEARNING_RATE),
            ],
        ),
    ]  # fmt: skip
    # A step's output folder appears when the step starts: build under a temporary name, then rename,
    # so that an existing folder means a finished step. Arguments are built when the step runs.
    for out, make_args in steps:
        if out.exists():
            continue
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)  # what an interrupted try of this step left
        _ript(*make_args(), "--out", str(partial))  # type: ignore[operator]
        partial.rename(out)
    _ript(
        "calibrate-scale",
        "--checkpoint",
        str(_newest_policy(folder / "sft_target")),
        "--demos",
        str(target),
        str(demos),
        "--out",
        str(folder / "policy.partial.pt"),
        *quiet,
    )
    set_sampling_knobs(folder / "policy.partial.pt")
    (folder / "policy.partial.pt").rename(final)
    print(f"starter policy: {final}", flush=True)
    return final


def set_sampling_knobs(path: Path) -> None:
    """Writes SAMPLING_KNOBS into the checkpoint at `path` (weights, statistics and embeddings kept)."""
    from ript.policies.checkpoint import load_checkpoint, save_checkpoint
    from ript.policies.vla import apply_sampling_knobs

    policy, payload = load_checkpoint(path)
    apply_sampling_knobs(policy, dict(SAMPLING_KNOBS))
    save_checkpoint(
        path,
        policy,
        stats=payload.get("stats"),
        instruction_embeddings=payload.get("instruction_embeddings"),
        metadata={**payload.get("metadata", {}), "sampling_knobs": recipe()["sampling_knobs"]},
    )


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
        "seeds": {"demos": DEMO_SEED, "dagger": [seed for _, seed in DAGGER_ROUNDS], "target": TARGET_SEED},
        "success": success,
    }
    (folder / "starter.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"shipped {folder / 'policy.pt'} ({describe(record)})", flush=True)
    return folder / "policy.pt"
