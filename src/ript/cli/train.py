"""`ript train`: RIPT post-training of an SFT checkpoint on LIBERO (the in-process fast path).

    ript train --checkpoint runs/sft/policy.ckpt --set suite=libero_spatial --set task_ids=[0,1,2]
    ript train --config configs/train_state.yaml
    ript train --resume runs/train/20261124-170000
    ript train --resume runs/train/20261124-170000 --set train.iterations=40   # extend it
    ript train --resume runs/train/20261124-170000 --set resume=fresh   # its checkpoints are all unreadable
    torchrun --nproc-per-node 4 -m ript.cli.main train --checkpoint ...   # the LOOP update over 4 processes

Every hyperparameter lives in `LiberoTrainConfig` (defaults from the RIPT-VLA paper where they
apply: K=8, clip 0.2, grad clip 1.0); the resolved config is saved in the run folder, which also
gets checkpoints (resume after a crash or SIGKILL; SIGINT/SIGTERM stop it cleanly, final policy
included), the training contexts it drew (contexts.npz, read back on resume), metrics.jsonl,
TensorBoard events, a learning-curve PNG and the final policy checkpoint, ready for `ript eval`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ript.core.distributed import DataParallel
from ript.core.learner import TrainConfig, UnresumableRunError, deployed_weights_of
from ript.sim.ray_rollout import RayConfig


@dataclass
class LiberoTrainConfig:
    checkpoint: str = ""
    """SFT policy checkpoint to post-train (required)."""
    suite: str = "libero_spatial"
    task_ids: list[int] = field(default_factory=lambda: [0])
    contexts_per_task: int = 32
    """Training contexts per task: fresh seeded placements, disjoint from the evaluation states (32:
    the held-out runs of docs/results.md; a run visits each about once, so gains are not memorised)."""
    context_seed: int = 0
    eval_episodes_per_task: int = 10
    """Episodes per task of the periodic evaluation (train.eval_every), one per state of `eval_on`."""
    eval_on: str = "validation"
    """What the periodic evaluation runs on: 'validation' (fresh placements, drawn as the training
    contexts are with context_seed + 1000 and kept apart from them) or 'benchmark' (the benchmark's init
    states 0..N-1, the states `ript eval` reports on). Validation by default: train.keep_best chooses
    policy_best.ckpt on it, and a checkpoint chosen on the benchmark's states reads high there."""
    num_envs: int = 2
    """LIBERO worker processes."""
    max_steps: int | None = None
    """Episode budget; None: the suite's standard (220 for libero_spatial)."""
    execute_steps: int | None = None
    """Actions executed per policy query, 1..chunk_size (None: the checkpoint's). The whole chunk
    explores per chunk, as the references do (OFT 8 of 8): fewer, more decisive noised queries per trial."""
    exploration_scale: float | None = None
    """Regression head: multiplies sigma_theta while sampling and scoring (None: the checkpoint's)."""
    exploration_floor: float | None = None
    """Regression head: lower bound on the sampling scale (None: the checkpoint's, 0 unless set)."""
    fixed_action_dims: list[int] | None = None
    """Regression head: action dims executed at the mean, not explored nor scored (None: the checkpoint's)."""
    noise_correlation: float | None = None
    """Regression head: AR(1) correlation of the exploration noise along a chunk, in [0, 1) (None: the checkpoint's)."""
    correlate_across_queries: bool | None = None
    """Regression head: the AR(1) noise runs on from each query into the next, over the whole trial
    (None: the checkpoint's, off unless set)."""
    gripper_temperature: float | None = None
    """Regression head, Bernoulli gripper: p(close) = sigmoid(logit / T) (None: the checkpoint's)."""
    temperature: float | None = None
    """Tokenized head: sampling temperature (None: the checkpoint's)."""
    top_k: int | None = None
    """Tokenized head: top-k (None: the checkpoint's)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    rollout_backend: str = "local"
    """Where trials run: 'local' (num_envs LIBERO worker processes here) or 'ray' (Ray actors; see `ray`)."""
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        if self.eval_on not in ("benchmark", "validation"):
            raise ValueError(f"eval_on must be 'benchmark' or 'validation', got {self.eval_on!r}")
        if self.rollout_backend not in ("local", "ray"):
            raise ValueError(f"rollout_backend must be 'local' or 'ray', got {self.rollout_backend!r}")
        if not self.task_ids:
            raise ValueError("task_ids must name at least one task")
        if self.contexts_per_task < 1 or self.num_envs < 1 or self.eval_episodes_per_task < 0:
            raise ValueError(
                f"need contexts_per_task >= 1, num_envs >= 1, eval_episodes_per_task >= 0; got "
                f"{self.contexts_per_task}, {self.num_envs}, {self.eval_episodes_per_task}"
            )


# Settings that define a run's contexts, starting weights and trainable set: a resumed run's
# checkpoint (sampler state, optimizer state) only makes sense with the values it was saved under.
RESUME_LOCKED = {
    "checkpoint",
    "suite",
    "task_ids",
    "contexts_per_task",
    "context_seed",
    "train.seed",
    "train.frozen_parameters",
    "train.sampler.seed",
    "train.sampler.group_size",
}


def _changed_fields(before: dict, after: dict, prefix: str = "") -> list[str]:
    changed = []
    for key, value in after.items():
        if isinstance(value, dict):
            changed += _changed_fields(before.get(key, {}), value, f"{prefix}{key}.")
        elif before.get(key) != value:
            changed.append(f"{prefix}{key}: {before.get(key)} -> {value}")
    return changed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="SFT policy checkpoint (same as --set checkpoint=PATH)")
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML file with LiberoTrainConfig fields (sections: train, train.sampler, train.loop)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one field, e.g. --set train.iterations=50 --set task_ids=[0,1,2]",
    )
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue a run from its newest valid checkpoint; --set may extend it "
        "(e.g. --set train.iterations=20) or change the update, not its contexts or weights",
    )
    parser.add_argument(
        "--contexts",
        type=Path,
        metavar="FILE",
        help="train on contexts drawn before instead of drawing them (~1-2 s each): a `ript contexts` file "
        "or another run's contexts.npz, drawn with this run's suite, task_ids, contexts_per_task and "
        "context_seed (refused otherwise); e.g. seed 1 of a pair on seed 0's contexts",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/train"), help="run folder root (default runs/train)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")


def resolve_config(args: argparse.Namespace) -> tuple[LiberoTrainConfig, Path]:
    from ript.core.config_io import from_dict, load_config

    if args.resume is not None:
        saved = json.loads((args.resume / "config.json").read_text())["libero"]
        locked = sorted({a.split("=", 1)[0].strip() for a in args.set} & RESUME_LOCKED)
        if locked or args.checkpoint or args.config:
            raise SystemExit(
                f"ript train --resume: {locked or ['--checkpoint/--config']} cannot change in a "
                f"resumed run (they define its data and model); start a new run instead"
            )
        before = asdict(from_dict(LiberoTrainConfig, saved))
        config = load_config(LiberoTrainConfig, overrides=list(args.set), base=saved)
        changed = _changed_fields(before, asdict(config))
        if changed:
            print("resuming with changed settings: " + ", ".join(changed))
        return config, args.resume
    overrides = list(args.set) + ([f"checkpoint={args.checkpoint}"] if args.checkpoint else [])
    config = load_config(LiberoTrainConfig, args.config, overrides)
    if not config.checkpoint:
        raise SystemExit("ript train: give an SFT checkpoint with --checkpoint PATH (see `ript sft --help`)")
    return config, args.out / time.strftime("%Y%m%d-%H%M%S")


def load_run_policy(config: LiberoTrainConfig):
    """The SFT checkpoint's policy with the config's sampling knobs (they change its log-probs), and the payload."""
    from ript.policies.checkpoint import load_checkpoint
    from ript.policies.vla import SAMPLING_KNOBS, apply_sampling_knobs

    policy, payload = load_checkpoint(config.checkpoint)
    apply_sampling_knobs(policy, {knob: getattr(config, knob) for knob in SAMPLING_KNOBS})
    return policy, payload


def build(
    config: LiberoTrainConfig,
    progress: bool = True,
    contexts_file: Path | None = None,
    contexts_source: Path | None = None,
):
    """Policy, vector env and rollout source for a config (also used by tests and benchmarks).
    `contexts_file`: where the drawn training contexts are kept, so that a resumed run reads them;
    `contexts_source`: a file of contexts drawn before, copied there instead of drawing."""
    from ript.policies.encoders import instruction_encoder
    from ript.policies.sft import libero_policy_inputs
    from ript.sim.contexts import (
        cached_training_contexts,
        check_disjoint,
        evaluation_contexts,
        training_contexts,
        validation_contexts,
    )
    from ript.sim.env import LiberoEnvConfig
    from ript.sim.rollout_source import LiberoRolloutSource
    from ript.sim.vector_env import VectorEnv

    policy, payload = load_run_policy(config)
    language = instruction_encoder(policy, payload.get("instruction_embeddings"))
    draw = {"suite": config.suite, "task_ids": config.task_ids, "per_task": config.contexts_per_task}
    if contexts_file is None:
        train_contexts = training_contexts(**draw, seed=config.context_seed, progress=progress)
    else:
        train_contexts = cached_training_contexts(
            contexts_file, **draw, seed=config.context_seed, progress=progress, source=contexts_source
        )
    check_disjoint(train_contexts)
    if not config.eval_episodes_per_task:
        eval_contexts = []
    elif config.eval_on == "validation":
        eval_contexts = validation_contexts(
            config.suite,
            config.task_ids,
            config.eval_episodes_per_task,
            seed=config.context_seed,
            apart_from=train_contexts,
            path=None if contexts_file is None else contexts_file.with_name("validation_contexts.npz"),
            progress=progress,
        )
    else:
        eval_contexts = evaluation_contexts(config.suite, config.task_ids, config.eval_episodes_per_task)
    embeddings = {c.instruction: language(c.instruction) for c in train_contexts + eval_contexts}
    policy_config = policy.config  # what featurize needs (and what a Ray worker receives with it)

    def featurize(obs, context):
        return libero_policy_inputs(obs, policy_config, embeddings[context.instruction])

    image_mode = policy.config.input_mode == "image"
    env_config = LiberoEnvConfig(
        suite=config.suite, render=image_mode, image_size=policy.config.image_size, max_steps=config.max_steps
    )
    if config.rollout_backend == "ray":
        from ript.sim.ray_rollout import RayRolloutSource

        source = RayRolloutSource(
            policy, train_contexts, eval_contexts, featurize, policy.config.execute_steps, env_config, config.ray
        )
    else:
        vec = VectorEnv(config.num_envs, env_config)
        source = LiberoRolloutSource(vec, train_contexts, eval_contexts, featurize, policy.config.execute_steps)
    return policy, payload, source


def join_data_parallel() -> DataParallel | None:
    """Under torchrun (WORLD_SIZE > 1): join its process group (gloo for CPU tensors, NCCL for CUDA ones)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    # The other ranks wait for each update through rank 0's rollouts and evaluation.
    dist.init_process_group(
        "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo", timeout=datetime.timedelta(hours=6)
    )
    return DataParallel()


def follow_updates(config: LiberoTrainConfig, data_parallel: DataParallel) -> int:
    """A rank > 0: its copy of the policy takes part in rank 0's LOOP updates, nothing else."""
    import torch.distributed

    from ript.core.learner import UpdateFollower

    # torchrun passes Ctrl-C/SIGTERM to every rank; stopping is rank 0's call (it finishes the
    # update in progress, then releases the followers), so a follower must not die mid-collective
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    policy, _ = load_run_policy(config)
    updates = UpdateFollower(policy, config.train, data_parallel).run()
    logging.getLogger("ript.train").info("rank %d: took part in %d updates", data_parallel.rank, updates)
    torch.distributed.destroy_process_group()
    return 0


def export_best_policy(trainer, path: Path, stats, embeddings, metadata: dict) -> tuple[Path, int, float] | None:
    """keep_best: the best evaluation's weights as a policy checkpoint beside policy_final.ckpt
    (path, iteration, success); None without an evaluation or its checkpoint. Loads them into
    trainer.policy: call it after the final policy is written."""
    from ript.policies.checkpoint import save_checkpoint

    verified = trainer.best_state()
    if verified is None:
        return None
    iteration, success, state = verified
    trainer.policy.load_state_dict(deployed_weights_of(state))
    saved = save_checkpoint(
        path,
        trainer.policy,
        stats=stats,
        instruction_embeddings=embeddings,
        metadata={**metadata, "ript_iterations": iteration, "ript_best_eval_success": success},
    )
    return saved, iteration, success


def run(args: argparse.Namespace) -> int:
    from ript.core.metrics import plot_curves
    from ript.core.train import RiptTrainer
    from ript.policies.checkpoint import checkpoint_header, save_checkpoint

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    # Under torchrun, rank 0 is the whole of `ript train` (rollouts, evaluation, checkpoints, logs)
    # and every rank shares the LOOP update; the others only need the resolved config.
    data_parallel = join_data_parallel()
    if data_parallel is not None and data_parallel.rank != 0:
        config = data_parallel.from_rank0()
        assert isinstance(config, LiberoTrainConfig)
        return follow_updates(config, data_parallel)
    # resume=fresh is an instruction for this start only (it must not land in config.json, where
    # every later restart would read it): taken out of --set before the config is built
    modes = [item.split("=", 1)[1] for item in args.set if item.startswith("resume=")]
    if any(mode not in ("auto", "fresh") for mode in modes):
        raise SystemExit(f"ript train: resume must be 'auto' or 'fresh', got {modes}")
    fresh = "fresh" in modes
    args.set = [item for item in args.set if not item.startswith("resume=")]
    config, run_dir = resolve_config(args)
    if data_parallel is not None:
        data_parallel.from_rank0(config)
    from ript.core.train import stop_on_signals
    from ript.sim.contexts import UnusableContextsError

    try:
        policy, payload, source = build(
            config, not args.no_progress, contexts_file=run_dir / "contexts.npz", contexts_source=args.contexts
        )
    except UnusableContextsError as exc:
        raise SystemExit(f"ript train: --contexts: {exc}") from None
    stats, embeddings = payload.get("stats"), payload.get("instruction_embeddings")
    metadata = {**payload.get("metadata", {}), "ript_run": str(run_dir)}
    header = checkpoint_header(policy, stats=stats, instruction_embeddings=embeddings, metadata=metadata)
    trainer = RiptTrainer(
        policy,
        source,
        config.train,
        run_dir,
        extra_config={"libero": asdict(config)},
        policy_checkpoint=header,
        data_parallel=data_parallel,
    )
    try:
        try:
            if args.resume is not None and not trainer.resume(fresh=fresh):
                print(f"no valid checkpoint in {run_dir}; starting from the SFT weights")
        except UnresumableRunError as exc:
            raise SystemExit(f"ript train: {exc}") from None
        with stop_on_signals(trainer):
            history = trainer.run(progress=not args.no_progress)
    finally:
        trainer.close()
        source.close()
    if data_parallel is not None:
        import torch.distributed

        torch.distributed.destroy_process_group()
    with trainer.deployed_weights():  # the average, with average_decay
        final = save_checkpoint(
            run_dir / "policy_final.ckpt",
            policy,
            stats=stats,
            instruction_embeddings=embeddings,
            metadata={**metadata, "ript_iterations": trainer.iteration},
        )
    best = export_best_policy(
        trainer, run_dir / "policy_best.ckpt", stats=stats, embeddings=embeddings, metadata=metadata
    )
    plot_curves(
        history,
        ["eval/success_rate", "rollout/success_rate"],
        run_dir / "learning_curve.png",
        title=f"RIPT on {config.suite} tasks {config.task_ids}",
        x_key="iteration",
    )
    evals = [row for row in history if "eval/success_rate" in row]
    if evals:
        print(
            f"eval success {evals[0]['eval/success_rate']:.2f} -> {evals[-1]['eval/success_rate']:.2f} "
            f"({evals[-1].get('eval/episodes', 0):.0f} episodes), env steps {trainer.env_steps}"
        )
    from ript.core.report import write_report

    print(f"run: {run_dir}\nfinal policy: {final}")
    if best is not None:
        print(f"best policy: {best[0]} (iteration {best[1]}, eval success {best[2]:.2f} on {config.eval_on} states)")
    print(f"report: {write_report(run_dir)}")
    if trainer.stop_reason is not None:
        print(
            f"stopped by {trainer.stop_reason} after iteration {trainer.iteration}; "
            f"continue with: ript train --resume {run_dir}"
        )
    return trainer.exit_status
