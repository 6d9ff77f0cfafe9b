"""Standard LIBERO evaluation: the benchmark's init states, the suite's step budget, Wilson 95% CIs.

Protocol: for each task, episodes 0..N-1 start from benchmark init state i (N = 50 by default),
settle for 10 no-op steps, then run at most MAX_STEPS[suite] policy steps (220/280/300/520/400 for
spatial/object/goal/10/90); success is LIBERO's own goal check. `evaluate` takes any
`ript.core.policy.Policy` (or a factory for one, or an EpisodeAgent such as the scripted expert).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ript.core.metrics import wilson_interval
from ript.sim.contexts import Context, evaluation_contexts
from ript.sim.env import LiberoEnvConfig, num_tasks, task_instruction
from ript.sim.vector_env import EpisodeResult, VectorEnv, run_episodes


def policy_agent(
    policy,
    execute_steps: int | None = None,
    stochastic: bool = False,
    embed_instruction: Callable[[str], np.ndarray] | None = None,
    image_size: int | None = None,
    seed: int = 0,
    featurize: Callable[[dict, Context], dict[str, np.ndarray]] | None = None,
):
    """The rollout source's PolicyAgent (one batched query for every trial whose chunk queue is
    empty), with a default featurisation: libero_data.policy_observation with
    embed_instruction(context.instruction) and image_size."""
    from ript.policies.libero_data import policy_observation
    from ript.sim.rollout_source import PolicyAgent

    if featurize is None:
        cache: dict[str, np.ndarray | None] = {}

        def featurize(obs: dict, context: Context) -> dict[str, np.ndarray]:
            text = context.instruction
            if text not in cache:
                cache[text] = (
                    None if embed_instruction is None else np.asarray(embed_instruction(text), dtype=np.float32)
                )
            return policy_observation(obs, cache[text], image_size)

    return PolicyAgent(policy, featurize, execute_steps or policy.chunk_size, stochastic, seed=seed)


def checkpoint_agent(
    path: str | Path,
    stochastic: bool = False,
    seed: int = 0,
    execute_steps: int | None = None,
    knobs: dict | None = None,
) -> tuple[object, dict, object]:
    """(PolicyAgent, env overrides, policy) for a VLA checkpoint: the same featurisation as SFT/RL.
    knobs: sampling knobs set on the policy (`apply_sampling_knobs`; an unknown one is refused)."""
    from ript.policies.checkpoint import load_checkpoint
    from ript.policies.encoders import instruction_encoder
    from ript.policies.sft import libero_policy_inputs
    from ript.policies.vla import apply_sampling_knobs

    policy, payload = load_checkpoint(path)
    if knobs:
        apply_sampling_knobs(policy, knobs)
    language = instruction_encoder(policy, payload.get("instruction_embeddings"))
    embeddings: dict[str, object] = {}

    def featurize(obs, context):
        if context.instruction not in embeddings:
            embeddings[context.instruction] = language(context.instruction)
        return libero_policy_inputs(obs, policy.config, embeddings[context.instruction])

    agent = policy_agent(
        policy,
        execute_steps=execute_steps or policy.config.execute_steps,
        stochastic=stochastic,
        seed=seed,
        featurize=featurize,
    )
    env = {"render": policy.config.input_mode == "image", "image_size": policy.config.image_size}
    return agent, env, policy


@dataclass
class TaskResult:
    task_id: int
    instruction: str
    episodes: int
    successes: int
    success_rate: float
    ci_low: float
    ci_high: float
    mean_steps: float
    failed_init_states: list[int] = field(default_factory=list)
    """Indices of the failed episodes' states within the report's `states` (the benchmark's init-state
    index, or the fresh placement's index)."""


VIDEOS_OF = ("failed", "all")


class EpisodeVideos:
    """An EpisodeAgent that drives `agent` and films its episodes: the agentview camera, upright,
    one mp4 per episode (`task<T>_state<I>_<success|failure>.mp4`) for up to `per_task` episodes of
    each task — failed ones only, or all (`of`). Needs rendered observations; frames are kept only
    while their episode runs."""

    def __init__(self, agent, folder: str | Path, per_task: int, of: str = "failed", fps: int = 20) -> None:
        if per_task < 1 or of not in VIDEOS_OF:
            raise ValueError(f"need per_task >= 1 and of in {VIDEOS_OF}, got {per_task}, {of!r}")
        self.agent, self.folder, self.per_task, self.of, self.fps = agent, Path(folder), per_task, of, fps
        self.frames: dict[int, list[np.ndarray]] = {}
        self.contexts: dict[int, Context] = {}
        self.written: dict[int, list[Path]] = {}
        """Task id -> the videos written for it."""

    def _film(self, trial: int, obs: dict) -> None:
        from ript.policies.libero_data import AGENTVIEW, upright

        if AGENTVIEW not in obs:
            raise ValueError("videos need rendered observations: evaluate with env_config.render=True")
        self.frames[trial].append(upright(np.asarray(obs[AGENTVIEW])))

    def begin(self, trial: int, context: Context, obs: dict) -> None:
        self.agent.begin(trial, context, obs)
        self.contexts[trial], self.frames[trial] = context, []  # a restarted trial films afresh
        self._film(trial, obs)

    def act(self, trials: list[int], obs: list[dict]) -> np.ndarray:
        actions = self.agent.act(trials, obs)
        for trial, observation in zip(trials, obs):
            self._film(trial, observation)
        return actions

    def end(self, trial: int, result: EpisodeResult) -> None:
        from ript.policies.lerobot_data import VideoFile

        self.agent.end(trial, result)
        frames, context = self.frames.pop(trial), self.contexts.pop(trial)
        done = self.written.setdefault(context.task_id, [])
        if len(done) >= self.per_task or (self.of == "failed" and result.success):
            return
        outcome = "success" if result.success else "failure"
        path = self.folder / f"task{context.task_id}_state{context.index}_{outcome}.mp4"
        video = VideoFile(path, self.fps, *frames[0].shape[:2])
        video.add(np.stack(frames))
        video.close()
        done.append(path)


@dataclass
class EvalReport:
    suite: str
    policy: str
    tasks: list[TaskResult]
    success_rate: float
    """Mean over tasks (equal episodes per task, so also the pooled rate)."""
    ci_low: float
    ci_high: float
    episodes_per_task: int
    max_steps: int
    wall_time_s: float
    worker_restarts: int
    videos: list[str] = field(default_factory=list)
    """Episode videos written (`videos` > 0)."""
    states: str = "benchmark init states"
    """What the episodes started from: the benchmark's init states, or fresh placements (`contexts`)."""

    def to_dict(self) -> dict:
        return asdict(self)


def _as_agent(policy, agent_kwargs: dict):
    if hasattr(policy, "begin") and hasattr(policy, "act") and hasattr(policy, "end"):
        return policy  # already an EpisodeAgent (e.g. the scripted expert)
    if callable(policy) and not hasattr(policy, "act"):
        policy = policy()  # a factory
    policy.eval()
    return policy_agent(policy, **agent_kwargs)


def evaluate(
    policy,
    suite: str,
    task_ids: Sequence[int] | None = None,
    episodes: int = 50,
    num_envs: int = 1,
    env_config: LiberoEnvConfig | None = None,
    vec: VectorEnv | None = None,
    progress: bool = True,
    policy_name: str = "policy",
    videos: int = 0,
    videos_of: str = "failed",
    video_dir: str | Path | None = None,
    contexts: Sequence[Context] | None = None,
    states: str = "benchmark init states",
    **agent_kwargs,
) -> EvalReport:
    """Evaluates `policy` (Policy, () -> Policy, or EpisodeAgent) with the standard protocol.

    env_config: the env template (render mode, image size); its suite/task are set per context and
    its max_steps must be None (the suite's standard budget). vec: reuse a running VectorEnv (the
    RL trainer's); otherwise one with num_envs workers is started and closed here.
    agent_kwargs go to policy_agent (execute_steps, stochastic, embed_instruction, image_size, ...).
    videos: film up to this many episodes per task (`videos_of` 'failed' or 'all') into video_dir
    (EpisodeVideos); needs env_config.render. contexts: run one episode from each of these (e.g. fresh
    placements, `ript.sim.contexts.validation_contexts`) instead of the benchmark's init states
    0..episodes-1 of each task; `states` names them in the report.
    """
    from tqdm import tqdm

    task_ids = list(range(num_tasks(suite)) if task_ids is None else task_ids)
    env_config = replace(env_config or LiberoEnvConfig(), suite=suite)
    if env_config.max_steps is not None:
        raise ValueError("the standard protocol fixes max_steps per suite; leave env_config.max_steps None")
    if contexts is None:
        contexts = evaluation_contexts(suite, task_ids, episodes)
    elif {c.suite for c in contexts} != {suite} or sorted({c.task_id for c in contexts}) != sorted(task_ids):
        raise ValueError(f"contexts of tasks {sorted({c.task_id for c in contexts})}, asked for {suite} {task_ids}")
    agent = _as_agent(policy, agent_kwargs)
    filmed = None
    if videos:
        if video_dir is None or not env_config.render:
            raise ValueError("videos need a video_dir and env_config.render=True")
        agent = filmed = EpisodeVideos(agent, video_dir, videos, videos_of)
    start = time.perf_counter()
    own_vec = vec is None
    vec = vec or VectorEnv(num_envs, env_config)
    bar = tqdm(total=len(contexts), desc=f"eval {suite}", disable=not progress, unit="ep")
    successes = 0

    def on_result(result: EpisodeResult) -> None:
        nonlocal successes
        successes += result.success
        bar.update()
        bar.set_postfix(success=f"{successes}/{bar.n}")

    try:
        results = run_episodes(vec, contexts, agent, on_result=on_result)
    finally:
        bar.close()
        restarts = vec.restarts
        if own_vec:
            vec.close()
    tasks = []
    for task_id in task_ids:
        rows = [r for r in results if r.context.task_id == task_id]
        wins = sum(r.success for r in rows)
        low, high = wilson_interval(wins, len(rows))
        tasks.append(
            TaskResult(
                task_id,
                task_instruction(suite, task_id),
                len(rows),
                wins,
                wins / len(rows),
                low,
                high,
                float(np.mean([r.steps for r in rows])),
                [r.context.index for r in rows if not r.success],
            )
        )
    total_wins, total = sum(t.successes for t in tasks), sum(t.episodes for t in tasks)
    low, high = wilson_interval(total_wins, total)
    return EvalReport(
        suite,
        policy_name,
        tasks,
        float(np.mean([t.success_rate for t in tasks])),
        low,
        high,
        episodes,
        env_config.episode_steps,
        time.perf_counter() - start,
        restarts,
        [str(p) for task_id in task_ids for p in filmed.written.get(task_id, [])] if filmed else [],
        states,
    )


def markdown_table(report: EvalReport) -> str:
    lines = [
        f"### {report.suite}: {report.policy}, {report.episodes_per_task} episodes per task "
        f"({report.states}), max {report.max_steps} steps",
        "",
        "| task | instruction | success | 95% CI (Wilson) | mean steps |",
        "|---:|---|---:|---|---:|",
    ]
    for t in report.tasks:
        lines.append(
            f"| {t.task_id} | {t.instruction} | {t.successes}/{t.episodes} ({100 * t.success_rate:.0f}%) "
            f"| [{100 * t.ci_low:.0f}, {100 * t.ci_high:.0f}] | {t.mean_steps:.0f} |"
        )
    lines.append(
        f"| **mean** | | **{100 * report.success_rate:.1f}%** | [{100 * report.ci_low:.1f}, "
        f"{100 * report.ci_high:.1f}] | |"
    )
    return "\n".join(lines) + "\n"


def save_report(report: EvalReport, out_dir: str | Path) -> dict[str, Path]:
    """Writes eval.json, eval.md and eval.png (per-task success with CI bars) into out_dir."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "eval.json", "markdown": out_dir / "eval.md", "png": out_dir / "eval.png"}
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2))
    paths["markdown"].write_text(markdown_table(report))
    rates = np.array([t.success_rate for t in report.tasks])
    errors = np.array(
        [[t.success_rate - t.ci_low for t in report.tasks], [t.ci_high - t.success_rate for t in report.tasks]]
    )
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(rates) + 2), 3.8))
    ax.bar([str(t.task_id) for t in report.tasks], 100 * rates, yerr=100 * errors, capsize=3, color="tab:blue")
    ax.axhline(
        100 * report.success_rate, color="tab:red", linestyle="--", label=f"mean {100 * report.success_rate:.1f}%"
    )
    ax.set(
        ylim=(0, 105),
        xlabel="task",
        ylabel="success (%)",
        title=f"{report.suite}: {report.policy}\n{report.episodes_per_task} episodes/task, 95% Wilson CI",
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    return paths
