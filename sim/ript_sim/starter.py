"""A starter policy for `ript up sim` when none is given, so that `./run.sh` runs the whole sim stack.

RIPT needs a policy whose success on the training contexts is neither 0 nor 1 (else every group
is all-equal and carries no gradient). Built once into `folder` and reused, from the same `ript`
subcommands a user runs by hand (docs/results.md explains the recipe):

1. scripted demos of the graph's tasks (memoryless expert, state-only, 0.1 command noise so the
   demos show recoveries; they also calibrate the exploration scale);
2. SFT of a small state-input policy that re-plans every step;
3. one DAgger round (the policy drives half of the time, the expert labels every state), SFT again;
4. NLL calibration of the regression head's scale (mean frozen).

Measured on task 0: 1/10 on the benchmark init states (deterministic), a start with room for RIPT
to learn from; built in 58 min on 2 CPU cores that a LIBERO training run was using at the same
time. It is a demonstration policy for the stack, not the 1-demo protocol of the benchmark
(bench/ript_libero.py): it sees 10 demos of the task it is trained on.
"""

from __future__ import annotations

import shutil
from pathlib import Path

DEMOS_PER_TASK = 10
DEMO_NOISE = 0.1
SFT_STEPS = 2000
DAGGER_EPISODES_PER_TASK = 10
DAGGER_BETA = 0.5
DAGGER_SFT_STEPS = 1000
MODEL = ["--input-mode", "state", "--hidden-dim", "128", "--num-layers", "3", "--chunk-size", "4",
         "--execute-steps", "1"]


def _ript(*args: str) -> None:
    from ript_trainer.cli import main

    print("$ ript " + " ".join(args), flush=True)
    code = main(list(args))
    if code:
        raise SystemExit(f"starter policy: `ript {args[0]}` failed with exit code {code}")


def _newest_policy(folder: Path) -> Path:
    found = sorted(folder.glob("*/policy.pt"))
    if not found:
        raise SystemExit(f"starter policy: no */policy.pt under {folder}")
    return found[-1]


def ensure_starter_policy(folder: str | Path, tasks: str = "0", progress: bool = True) -> Path:
    """The starter policy's checkpoint in `folder`, built first if missing. Each finished step
    leaves its folder behind, so an interrupted build resumes at the step it was in."""
    folder = Path(folder)
    final = folder / "policy.pt"
    if final.exists():
        return final
    quiet = [] if progress else ["--no-progress"]
    print(f"no policy checkpoint given: building a starter policy for libero_spatial task(s) {tasks} in {folder} "
          f"(once, tens of minutes on a 2-core CPU; scripted demos -> SFT -> DAgger -> scale calibration)", flush=True)
    demos, dagger = folder / "demos", folder / "dagger"
    common = ["--tasks", tasks, "--state-only", "--memoryless-expert", *quiet]
    # One torch thread: a small state model gains nothing from more, and loses a lot beside a busy process.
    sft = ["sft", "--threads", "1", *quiet]

    def first_sft() -> str:  # exists only once its step has run
        return str(_newest_policy(folder / "sft"))

    # A step's output folder appears when the step starts: build under a temporary name, then rename,
    # so that an existing folder means a finished step. Arguments are built when the step runs.
    for out, make_args in (
        (demos, lambda: ["record-demos", "--demos", str(DEMOS_PER_TASK), "--noise", str(DEMO_NOISE), "--seed", "1",
                         *common]),
        (folder / "sft", lambda: [*sft, "--demos", str(demos), *MODEL, "--steps", str(SFT_STEPS)]),
        (dagger, lambda: ["record-demos", "--demos", str(DAGGER_EPISODES_PER_TASK), "--learner", first_sft(),
                          "--beta", str(DAGGER_BETA), "--seed", "11", *common]),
        (folder / "sft_dagger", lambda: [*sft, "--demos", str(demos), str(dagger), "--init", first_sft(),
                                         "--steps", str(DAGGER_SFT_STEPS)]),
    ):
        if out.exists():
            continue
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)  # what an interrupted try of this step left
        _ript(*make_args(), "--out", str(partial))
        partial.rename(out)
    _ript("calibrate-scale", "--checkpoint", str(_newest_policy(folder / "sft_dagger")),
          "--demos", str(demos), "--out", str(folder / "policy.partial.pt"), *quiet)
    (folder / "policy.partial.pt").rename(final)
    print(f"starter policy: {final}", flush=True)
    return final
