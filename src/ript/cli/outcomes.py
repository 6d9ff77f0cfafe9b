"""`ript sim-outcomes`: labelled trial-outcome frames from LIBERO, for the success classifier.

Trials are scripted-expert episodes from *training* contexts (never the evaluation init states),
with noise on the expert's commands so that some fail. They run state-only (fast); afterwards the
chosen states are rendered one by one and labelled by LIBERO's own success check at that state:

- the trial's last frame (what an operator sees when judging it): success or failure;
- `--intermediate` frames from random earlier steps: the object on its way, grasped, above the
  target — the hard negatives a classifier meets when it judges a trial that ended early.

    ript sim-outcomes --tasks 0-3 --episodes 40 --out runs/classifier/sim_outcomes.npz
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ript.cli.common import add_suite_arguments, parse_task_ids

CAMERAS = {"agentview": "agentview_image", "wrist": "robot0_eye_in_hand_image"}


@dataclass
class OutcomeConfig:
    suite: str = "libero_spatial"
    task_ids: Sequence[int] = (0, 1, 2, 3)
    episodes_per_task: int = 40
    intermediate_per_episode: int = 2
    expert_noise: float = 0.6
    """Std of the noise on the expert's position command: enough that a fair share of trials fail."""
    camera: str = "agentview"
    image_size: int = 128
    num_envs: int = 2
    seed: int = 1


class FrameRenderer:
    """Renders a stored MuJoCo state of one task from a camera, upright, and checks success there."""

    def __init__(self, suite: str, task_id: int, camera: str, image_size: int) -> None:
        from ript.sim.env import LiberoEnv, LiberoEnvConfig

        self.env = LiberoEnv(LiberoEnvConfig(suite=suite, task_id=task_id, render=True, image_size=image_size))
        self.key = CAMERAS[camera]

    def render(self, state: np.ndarray, then_action: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
        """Frame and success at `state` (after one more `then_action` step when given)."""
        from ript.policies.libero_data import upright

        env = self.env
        env.sim.set_state_from_flattened(np.asarray(state, dtype=np.float64))
        env.sim.forward()
        if then_action is None:
            raw = env.robosuite_env._get_observations(force_update=True)
        else:
            raw, _, _, _ = env._env.step(np.asarray(then_action, dtype=np.float64))
        return upright(raw[self.key]), env.check_success()

    def close(self) -> None:
        self.env.close()


def collect_outcomes(config: OutcomeConfig, vec=None, progress: bool = True) -> dict[str, np.ndarray]:
    """images [N, S, S, 3], labels [N], groups [N] (one group per trial), tasks [N], final [N] and
    trial_success [N] (the episode's own success check). `vec`: a state-only VectorEnv to reuse."""
    import contextlib

    from tqdm import tqdm

    from ript.sim.contexts import training_contexts
    from ript.sim.env import SIM_STATE, LiberoEnvConfig
    from ript.sim.expert import ExpertConfig, ScriptedExpert
    from ript.sim.record import RecordingAgent
    from ript.sim.vector_env import VectorEnv, run_episodes

    rng = np.random.default_rng(config.seed)
    out: dict[str, list] = {"images": [], "labels": [], "groups": [], "tasks": [], "final": [], "trial_success": []}
    env_config = LiberoEnvConfig(suite=config.suite, render=False)
    bar = tqdm(
        total=len(config.task_ids) * config.episodes_per_task, desc="sim trials", unit="trial", disable=not progress
    )
    with contextlib.nullcontext(vec) if vec is not None else VectorEnv(config.num_envs, env_config) as vec:
        for task_id in config.task_ids:
            contexts = training_contexts(config.suite, [task_id], config.episodes_per_task, seed=config.seed)
            recorder = RecordingAgent(
                ScriptedExpert(ExpertConfig(noise_std=config.expert_noise, seed=config.seed + task_id))
            )
            run_episodes(vec, contexts, recorder, on_result=lambda _: bar.update())
            renderer = FrameRenderer(config.suite, task_id, config.camera, config.image_size)
            try:
                for _trial, (result, steps) in sorted(recorder.finished.items()):
                    states = [o[SIM_STATE] for o in steps["obs"]]
                    group = f"{config.suite}/{task_id}/train{result.context.index:03d}"
                    # The last frame: the state the last action led to.
                    frames = [(renderer.render(states[-1], steps["actions"][-1]), True)]
                    for t in rng.choice(
                        len(states) - 1, size=min(config.intermediate_per_episode, len(states) - 1), replace=False
                    ):
                        frames.append((renderer.render(states[t]), False))
                    for (image, success), final in frames:
                        out["images"].append(image)
                        out["labels"].append(int(success))
                        out["groups"].append(group)
                        out["tasks"].append(task_id)
                        out["final"].append(final)
                        out["trial_success"].append(result.success)
            finally:
                renderer.close()
    bar.close()
    return {key: np.asarray(value) for key, value in out.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_suite_arguments(parser)
    parser.set_defaults(tasks="0-3")
    parser.add_argument("--episodes", type=int, default=40, help="trials per task (default 40)")
    parser.add_argument(
        "--intermediate", type=int, default=2, help="extra frames from random earlier steps of each trial (default 2)"
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=OutcomeConfig.expert_noise,
        help=f"expert command noise std, makes some trials fail (default {OutcomeConfig.expert_noise})",
    )
    parser.add_argument("--camera", choices=sorted(CAMERAS), default="agentview")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1, help="training-context seed (default 1)")
    parser.add_argument("--out", type=Path, default=Path("runs/classifier/sim_outcomes.npz"))
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ript.policies.success_classifier import save_examples

    task_ids = parse_task_ids(args.tasks)
    if task_ids is None:
        from ript.sim.env import num_tasks

        task_ids = list(range(num_tasks(args.suite)))
    config = OutcomeConfig(
        suite=args.suite,
        task_ids=task_ids,
        episodes_per_task=args.episodes,
        intermediate_per_episode=args.intermediate,
        expert_noise=args.noise,
        camera=args.camera,
        image_size=args.image_size,
        num_envs=args.num_envs,
        seed=args.seed,
    )
    data = collect_outcomes(config, progress=not args.no_progress)
    save_examples(args.out, data["images"], data["labels"], data["groups"], data["final"])
    final = data["final"].astype(bool)
    print(
        f"{len(data['labels'])} frames from {final.sum()} trials -> {args.out}: "
        f"{int(data['labels'][final].sum())}/{final.sum()} trials succeeded; "
        f"{int(data['labels'].sum())} success frames in all"
    )
    return 0
