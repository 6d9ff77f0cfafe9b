"""Record scripted-expert demos from *training* contexts into LIBERO-layout HDF5 files.

Demos start from fresh seeded placements (never the benchmark's evaluation init states), only
successful episodes are kept, and each task gets its own `<task_name>_demo.hdf5`, as LIBERO ships
its datasets, so `ript.policies.libero_data.read_demos` reads ours and the official ones alike.

With a learner checkpoint this is one round of DAgger (Ross et al., 2011): the learner drives (the
expert with probability beta per step), the expert labels every state the learner visits, and
every episode is kept, failures included: the labels are what the learner should have done there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ript.sim.contexts import Context, training_contexts
from ript.sim.env import SIM_STATE, LiberoEnvConfig
from ript.sim.expert import ExpertConfig, ScriptedExpert
from ript.sim.vector_env import EpisodeResult, VectorEnv, run_episodes


class RecordingAgent:
    """Wraps an EpisodeAgent and keeps every step of every trial (restarted trials start over)."""

    def __init__(self, agent) -> None:
        self.agent = agent
        self.steps: dict[int, dict[str, list]] = {}
        self.finished: dict[int, tuple[EpisodeResult, dict[str, list]]] = {}

    def begin(self, trial: int, context: Context, obs: dict) -> None:
        self.steps[trial] = {"obs": [], "actions": []}
        self.agent.begin(trial, context, obs)

    def act(self, trials: list[int], obs: list[dict]) -> np.ndarray:
        actions = self.agent.act(trials, obs)
        for trial, o, a in zip(trials, obs, actions):
            self.steps[trial]["obs"].append(o)
            self.steps[trial]["actions"].append(np.asarray(a, dtype=np.float64))
        return actions

    def end(self, trial: int, result: EpisodeResult) -> None:
        self.agent.end(trial, result)
        self.finished[trial] = (result, self.steps.pop(trial))


class LabellingAgent(RecordingAgent):
    """DAgger: records the expert's action at every step but executes the learner's (or, with
    probability beta, the expert's). Both see every step, so the expert's phase follows the scene."""

    def __init__(self, expert, learner, beta: float, seed: int = 0) -> None:
        super().__init__(expert)
        self.learner = learner
        self.beta = beta
        self._rng = np.random.default_rng(seed)

    def begin(self, trial: int, context: Context, obs: dict) -> None:
        super().begin(trial, context, obs)
        self.learner.begin(trial, context, obs)

    def act(self, trials: list[int], obs: list[dict]) -> np.ndarray:
        labels = super().act(trials, obs)
        driven = np.asarray(self.learner.act(trials, obs), dtype=np.float64)
        use_expert = self._rng.random(len(trials)) < self.beta
        return np.where(use_expert[:, None], labels, driven)

    def end(self, trial: int, result: EpisodeResult) -> None:
        self.learner.end(trial, result)
        super().end(trial, result)


def to_demo(context: Context, steps: dict[str, list]):
    from ript.policies.libero_data import Demo

    keys = [k for k in steps["obs"][0] if k != SIM_STATE]
    length = len(steps["actions"])
    rewards = np.zeros(length, dtype=np.uint8)
    rewards[-1] = 1  # LIBERO marks the last step of a (successful) demo
    return Demo(
        obs={k: np.stack([o[k] for o in steps["obs"]]) for k in keys},
        actions=np.stack(steps["actions"]),
        states=np.stack([o[SIM_STATE] for o in steps["obs"]]),
        rewards=rewards,
        dones=rewards.copy(),
        instruction=context.instruction,
        task_name="",
        attrs={"seed": -1 if context.seed is None else context.seed, "context_index": context.index},
    )


@dataclass
class RecordConfig:
    suite: str = "libero_spatial"
    task_ids: Sequence[int] | None = None
    demos_per_task: int = 50
    num_envs: int = 2
    render: bool = True
    image_size: int = 128
    max_attempts_factor: float = 2.0
    """Give up on a task after demos_per_task * this many attempts."""
    seed: int = 0
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    learner: str | None = None
    """A policy checkpoint that drives while the expert labels (DAgger); None: the expert drives."""
    beta: float = 0.0
    """DAgger: probability per step that the expert's action is executed instead of the learner's."""

    def __post_init__(self) -> None:
        if self.demos_per_task < 1 or self.num_envs < 1 or self.max_attempts_factor < 1:
            raise ValueError(f"invalid record config: {self}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")


@dataclass
class TaskRecord:
    task_id: int
    task_name: str
    attempts: int
    expert_successes: int
    """Successful episodes among the attempts (the expert's success rate on training contexts;
    with a learner: the success rate of the learner driving, mixed with the expert by beta)."""
    demos: int
    path: str | None


def record_demos(config: RecordConfig, out_dir: str | Path, progress: bool = True) -> list[TaskRecord]:
    from tqdm import tqdm

    from ript.policies.libero_data import write_demos
    from ript.sim.env import num_tasks, task_name
    from ript.sim.expert import can_solve

    out_dir = Path(out_dir)
    task_ids = list(range(num_tasks(config.suite)) if config.task_ids is None else config.task_ids)
    learner, learner_env = None, {}
    if config.learner is not None:
        from ript.sim.eval import checkpoint_agent

        learner, learner_env, _ = checkpoint_agent(config.learner, seed=config.seed)
        if learner_env["render"] and not config.render:
            raise ValueError("the learner reads images: record with cameras (not state-only)")
    image_size = learner_env.get("image_size", config.image_size)
    env_config = LiberoEnvConfig(suite=config.suite, render=config.render, image_size=image_size)
    records = []
    bar = tqdm(
        total=len(task_ids) * config.demos_per_task, desc=f"demos {config.suite}", disable=not progress, unit="demo"
    )
    with VectorEnv(config.num_envs, env_config) as vec:
        for task_id in task_ids:
            name = task_name(config.suite, task_id)
            if not can_solve(config.suite, task_id):
                records.append(TaskRecord(task_id, name, 0, 0, 0, None))
                continue
            expert = ScriptedExpert(config.expert)
            if learner is None:
                recorder = RecordingAgent(expert)
                max_attempts = math.ceil(config.demos_per_task * config.max_attempts_factor)
            else:
                recorder = LabellingAgent(expert, learner, config.beta, seed=config.seed + task_id)
                max_attempts = config.demos_per_task  # every episode is kept
            contexts = training_contexts(config.suite, [task_id], max_attempts, seed=config.seed)
            demos, attempts, wins, start = [], 0, 0, 0
            env_args = {**env_config.__dict__, "task_id": task_id}
            while len(demos) < config.demos_per_task and start < len(contexts):
                # Just enough attempts for the demos still missing (a few spare for failures).
                batch = contexts[start : start + max(config.num_envs, config.demos_per_task - len(demos))]
                start += len(batch)
                recorder.finished.clear()
                run_episodes(vec, batch, recorder)
                for trial in sorted(recorder.finished):
                    result, steps = recorder.finished[trial]
                    attempts += 1
                    wins += result.success
                    keep = result.success or learner is not None
                    if keep and len(demos) < config.demos_per_task:
                        demo = to_demo(result.context, steps)
                        demo.task_name = name
                        demos.append(demo)
                        bar.update()
                bar.set_postfix(task=task_id, success=f"{len(demos)}/{attempts}")
            path = write_demos(out_dir / f"{name}_demo.hdf5", demos, env_args) if demos else None
            records.append(TaskRecord(task_id, name, attempts, wins, len(demos), str(path) if path else None))
    bar.close()
    return records
