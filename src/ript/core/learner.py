"""The learner both drivers share: the policy and its optimizer, the sampler's state, the LOOP
updater, iteration checkpoints and metrics. How trials reach it is the driver's business:

    RiptTrainer (train.py)              pulls trials from a RolloutSource (LIBERO, the reach task)
    InteractiveTrainer (interactive.py) receives them one by one (the ROS trainer node, a robot)

Both call `update_from_batch` when the sampler's batch is complete and `finish_iteration` after
it. Every random draw is derived from (seed, iteration), and the sampler's, optimizer's and
policy's states are checkpointed after each iteration, so a run killed at any moment resumes from
its last completed iteration with the results it would have had.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ript.core.distributed import DataParallel
from ript.core.loop import LoopConfig, LoopUpdater
from ript.core.metrics import MetricsLogger
from ript.core.policy import Policy
from ript.core.safe_io import load_or_set_aside, save_verified
from ript.core.sampler import DynamicSampler, SampledBatch, SamplerConfig
from ript.core.trials import build_loop_batch

log = logging.getLogger("ript.train")

CHECKPOINT_GLOB = "iter_*.ckpt"
BEST_CHECKPOINT = "best.ckpt"
"""In the checkpoint folder: the iteration checkpoint of the best evaluation so far (keep_best)."""


@dataclass
class TrainConfig:
    """The training tree: `ript train`, `ript up` and the ROS trainer node read it (their defaults
    are these). lr 2e-5 with LoopConfig's KL stop and the adaptive rate: one Adam step at 1e-4 moved a
    calibrated LIBERO policy by ~11 nats per query (bench/loop_trust_region.py); at 1e-5 the weak-start
    runs' updates stayed far inside the trust region (KL 0.01-0.06 against 0.1) and lifted slowly, at
    2e-5 they kept 0.008-0.093 (docs/results.md, issue 18)."""

    iterations: int = 20
    """M: optimisation steps."""
    max_env_steps: int | None = None
    """Also stop when this many env steps are spent (None: no budget): an iteration whose collection
    reaches it stops collecting and updates on the groups it has, then the run ends. Compares runs
    at equal interaction, e.g. dynamic sampling on vs off."""
    learning_rate: float = 2e-5
    """Adam learning rate for the LOOP updates (the largest one `adapt_learning_rate` uses)."""
    adapt_learning_rate: bool = True
    """An update that target_kl stops before its second optimizer step (Adam's first step moves every
    parameter by about the learning rate, whatever its gradient) is redone on the same batch at half
    the learning rate, up to `max_lr_halvings` times; the policy and optimizer were restored, so the
    batch is still on-policy. Updates that stay under target_kl / 4 double it again, never past
    `learning_rate`. Needs target_kl; off under the data-parallel learner (its ranks step in lockstep)."""
    max_lr_halvings: int = 4
    """Halvings one update may take (4: down to 1/16 of the learning rate in effect)."""
    final_learning_rate: float | None = None
    """None: the learning rate stays `learning_rate`. Else it falls linearly with the env steps spent,
    from `learning_rate` at 0 to this at `max_env_steps` (as PPO implementations anneal it): the updates
    late in a run, whose noise undid earlier gains (docs/results.md, issue 18), get smaller.
    `adapt_learning_rate` stays under this ceiling. Needs max_env_steps."""
    average_decay: float = 0.0
    """Polyak averaging of the weights: after every update, average <- average_decay * average +
    (1 - average_decay) * policy. The run's evaluations (so keep_best and rollback_drop), the weights
    its checkpoints deploy (`ript eval` reads them) and policy_final / policy_best are the average;
    rollouts keep using the policy being trained, so LOOP stays on-policy. 0: off. Averaging cancels
    the part of successive updates that is noise, which at a few mixed groups per task is most of it
    (docs/results.md, issue 18), without slowing the policy that learns. 0.8 averages over about the
    last 5 iterations."""
    weight_decay: float = 0.0
    eval_every: int = 5
    """Evaluate every this many iterations (and before the first, and after the last). 0: never."""
    keep_best: bool = True
    """Keep the checkpoint of the best evaluation so far as checkpoints/best.ckpt (a later one wins
    a tie): benchmark success is not monotone in env steps (docs/results.md, issue 18), so the last
    iteration is not always the one to deploy. Choose on `eval_on=validation` states, not on the
    benchmark states the result is reported on."""
    rollback_drop: float = 0.0
    """When an evaluation falls more than this (success rate, 0..1) below the best so far, the policy
    and optimizer go back to the best checkpoint and training continues from there, on new trials.
    0: never. Needs eval_every and keep_best; the evaluation's noise (about 0.5/sqrt(episodes))
    should be well below it, or noise alone rolls runs back."""
    parallel_groups: int = 1
    """Groups rolled out at once; the source runs parallel_groups * K trials per call."""
    keep_checkpoints: int = 2
    """Completed-iteration checkpoints kept on disk (older ones are deleted)."""
    seed: int = 0
    frozen_parameters: list[str] = field(default_factory=list)
    """Policy parameters the LOOP update leaves alone, by name prefix (e.g. 'head.scale_head': keep
    the SFT-calibrated exploration scale instead of letting PPO shrink or blow it up)."""
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if self.max_env_steps is not None and self.max_env_steps < 1:
            raise ValueError(f"max_env_steps must be >= 1 or None, got {self.max_env_steps}")
        if self.learning_rate < 0:
            raise ValueError(f"learning_rate must be >= 0, got {self.learning_rate}")
        if self.max_lr_halvings < 0:
            raise ValueError(f"max_lr_halvings must be >= 0, got {self.max_lr_halvings}")
        if self.final_learning_rate is not None and not 0.0 <= self.final_learning_rate <= self.learning_rate:
            raise ValueError(
                f"final_learning_rate must be in [0, learning_rate={self.learning_rate}] or None, "
                f"got {self.final_learning_rate}"
            )
        if self.final_learning_rate is not None and self.max_env_steps is None:
            raise ValueError("final_learning_rate needs max_env_steps (the learning rate falls with env steps)")
        if not 0.0 <= self.average_decay < 1.0:
            raise ValueError(f"average_decay must be in [0, 1), got {self.average_decay}")
        if not 0.0 <= self.rollback_drop <= 1.0:
            raise ValueError(f"rollback_drop must be in [0, 1], got {self.rollback_drop}")
        if self.rollback_drop and not (self.keep_best and self.eval_every):
            raise ValueError("rollback_drop needs keep_best and eval_every > 0 (it rolls back to the best evaluation)")
        if self.eval_every < 0 or self.parallel_groups < 1 or self.keep_checkpoints < 1:
            raise ValueError(
                f"need eval_every >= 0, parallel_groups >= 1, keep_checkpoints >= 1; got "
                f"{self.eval_every}, {self.parallel_groups}, {self.keep_checkpoints}"
            )


AVERAGE_KEY = "policy_average"
"""In a checkpoint of a run with average_decay: the averaged weights (beside `policy`, the trained ones)."""


def deployed_weights_of(state: dict) -> dict:
    """The weights a `ript train` checkpoint deploys: its average (average_decay), else its policy's."""
    return state[AVERAGE_KEY] if AVERAGE_KEY in state else state["policy"]


class UnresumableRunError(RuntimeError):
    """A run folder with a history that no checkpoint can restore."""


def derive_seed(*parts: int) -> int:
    """A stable 63-bit seed from integers (Python's hash of ints is not salted, but be explicit)."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value * 6364136223846793005 + int(part) + 1442695040888963407) % (1 << 63)
    return value


def trainable_parameters(policy: Policy, frozen_prefixes: Sequence[str]) -> list[torch.nn.Parameter]:
    """The policy's parameters that require grad, minus those whose name starts with a frozen prefix
    (each prefix must match something: a typo should not silently train everything). A frozen base
    model (a VLM under LoRA) is left out, so LOOP neither steps nor snapshots it."""
    named = list(policy.named_parameters())
    for prefix in frozen_prefixes:
        if not any(name.startswith(prefix) for name, _ in named):
            raise ValueError(
                f"frozen parameter prefix {prefix!r} matches no parameter of the policy "
                f"(names start with: {sorted({name.split('.')[0] for name, _ in named})})"
            )
    return [p for name, p in named if p.requires_grad and not name.startswith(tuple(frozen_prefixes))]


def make_updater(policy: Policy, config: TrainConfig, data_parallel: DataParallel | None = None) -> LoopUpdater:
    """The LOOP updater of the policy's trainable parameters, with its Adam optimizer."""
    trainable = trainable_parameters(policy, config.frozen_parameters)
    optimizer = torch.optim.Adam(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    return LoopUpdater(policy.log_prob, trainable, optimizer, config.loop, data_parallel=data_parallel)


class Learner:
    def __init__(
        self,
        policy: Policy,
        contexts: Sequence[Any],
        config: TrainConfig,
        run_dir: str | Path,
        extra_config: dict | None = None,
        tensorboard: bool = True,
        on_status: Callable[[str, str], None] | None = None,
        policy_checkpoint: dict | None = None,
        data_parallel: DataParallel | None = None,
    ) -> None:
        self.policy = policy
        self.config = config
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        # With data_parallel this learner is rank 0: the other ranks run an UpdateFollower.
        self.data_parallel = data_parallel
        self.updater = make_updater(policy, config, data_parallel)
        self.optimizer = self.updater.optimizer
        self.sampler = DynamicSampler(contexts, config.sampler)
        self.iteration = 0
        self.history: list[dict] = []
        self.env_steps = 0
        self.logger = MetricsLogger(self.run_dir, tensorboard=tensorboard)
        self.logger.save_config({"train": asdict(config), **(extra_config or {})})
        self.on_status = on_status or (lambda state, detail: None)
        # A policy checkpoint's header (ript.policies.checkpoint.checkpoint_header): stored in every
        # iteration checkpoint so `ript eval` can load any iteration.
        self.policy_checkpoint = policy_checkpoint
        self.average: dict[str, torch.Tensor] | None = self._copy_weights() if config.average_decay else None
        """average_decay: the averaged weights (a full state dict of the policy), else None."""

    # ---- averaged weights (average_decay) ---------------------------------------------------------
    def _copy_weights(self) -> dict[str, torch.Tensor]:
        return {name: value.detach().clone() for name, value in self.policy.state_dict().items()}

    def _update_average(self) -> None:
        if self.average is None:
            return
        decay = self.config.average_decay
        with torch.no_grad():
            for name, value in self.policy.state_dict().items():
                if torch.is_floating_point(value):
                    self.average[name].mul_(decay).add_(value, alpha=1.0 - decay)
                else:  # counters and the like are not averaged: the policy's own
                    self.average[name] = value.detach().clone()

    @contextmanager
    def deployed_weights(self) -> Iterator[None]:
        """Inside the block the policy holds the weights the run deploys: the average with
        average_decay, else its own. Its own weights are back afterwards."""
        if self.average is None:
            yield
            return
        own = self._copy_weights()
        self.policy.load_state_dict(self.average)
        try:
            yield
        finally:
            self.policy.load_state_dict(own)

    def learning_rate_ceiling(self) -> float:
        """The largest learning rate an update may use now (final_learning_rate anneals it)."""
        config = self.config
        if config.final_learning_rate is None or config.max_env_steps is None:
            return config.learning_rate
        spent = min(self.env_steps / config.max_env_steps, 1.0)
        return config.learning_rate + spent * (config.final_learning_rate - config.learning_rate)

    def budget_spent(self) -> bool:
        return self.config.max_env_steps is not None and self.env_steps >= self.config.max_env_steps

    def update_from_batch(
        self, batch: SampledBatch, iteration: int, on_epoch: Callable[[int, int], None] | None = None
    ) -> dict[str, Any]:
        """The LOOP update of one sampled batch (shared with the ROS trainer's interactive core):
        RLOO advantages + N epochs of PPO clip, seeded from (seed, iteration). Returns the log row."""
        row: dict[str, Any] = {"iteration": iteration, **batch.stats, "sampler/stop_reason": batch.reason}
        if batch.reason not in ("complete", "early_stop"):
            log.warning(
                "iteration %d: sampler stopped early (%s) with %d informative trials",
                iteration,
                batch.reason,
                len(batch.trials),
            )
        if batch.groups:
            # The policy stays in eval mode while updating: dropout (or any train-mode behaviour)
            # would make log pi_theta differ from the sampling distribution at ratio = 1.
            order_seed = derive_seed(self.config.seed, iteration, 1 << 20)

            def report_epoch(epoch, total):
                self.on_status("updating", f"epoch {epoch}/{total}")
                if on_epoch is not None:
                    on_epoch(epoch, total)

            loop_batch, _ = build_loop_batch(batch.groups)
            ceiling = self.learning_rate_ceiling()
            if self.learning_rate > ceiling or not self._adapts_learning_rate():
                self._set_learning_rate(ceiling)
            if self.data_parallel is not None:  # the ranks step alike: same batch, order and rate
                self.data_parallel.from_rank0(("update", loop_batch, order_seed, self.learning_rate))
            row.update(self._update(loop_batch, order_seed, report_epoch, iteration, ceiling))
            self._update_average()
            describe = getattr(self.policy, "distribution_stats", None)
            if describe is not None:  # how wide the policy now explores, per action dimension
                rows = torch.linspace(0, len(loop_batch) - 1, min(len(loop_batch), 512)).long()
                row.update(describe({key: value[rows] for key, value in loop_batch.obs.items()}))
            if row["stats/stopped_early"] and row["stats/num_minibatches"] <= 1:
                # A run in this state barely learns, and its metrics alone do not say why.
                log.warning(
                    "iteration %d: target_kl stopped the update after %d optimizer step(s) kept "
                    "(approx KL %.3f > %g): the step is too large for the policy's sampling "
                    "scale; lower train.learning_rate, or raise exploration_floor / fix the "
                    "dims with a tiny calibrated scale (docs/policy.md)",
                    iteration,
                    int(row["stats/num_minibatches"]),
                    row["stats/approx_kl_at_stop"],
                    self.updater.config.target_kl,
                )
        return row

    @property
    def learning_rate(self) -> float:
        """The learning rate in effect (`adapt_learning_rate` moves it below the configured one)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _set_learning_rate(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = value

    def _adapts_learning_rate(self) -> bool:
        return (
            self.config.adapt_learning_rate and self.data_parallel is None and self.updater.config.target_kl is not None
        )

    def _update(self, loop_batch, order_seed: int, on_epoch, iteration: int, ceiling: float) -> dict[str, float]:
        """The LOOP update of one batch; with `adapt_learning_rate`, redone at half the learning rate
        while target_kl stops it before its second step, and doubled back after a quiet one, never
        past `ceiling` (see TrainConfig)."""
        target_kl = self.updater.config.target_kl
        adapts = self._adapts_learning_rate()
        halvings = 0
        while True:
            self.updater.generator = torch.Generator().manual_seed(order_seed)
            stats = self.updater.update(loop_batch, on_epoch=on_epoch)
            stalled = stats["stats/stopped_early"] and stats["stats/num_minibatches"] <= 1
            if not (adapts and stalled and halvings < self.config.max_lr_halvings):
                break
            halvings += 1
            self._set_learning_rate(self.learning_rate / 2)
            log.info(
                "iteration %d: target_kl stopped the update before its second step (approx KL %.3f); "
                "redoing it at learning rate %.3g",
                iteration,
                stats["stats/approx_kl_at_stop"],
                self.learning_rate,
            )
        used = self.learning_rate
        quiet = (
            target_kl is not None
            and not stats["stats/stopped_early"]
            and stats["stats/approx_kl_final"] < target_kl / 4
        )
        if adapts and quiet and used < ceiling:
            self._set_learning_rate(min(2 * used, ceiling))
        return {**stats, "train/learning_rate": used, "train/lr_halvings": float(halvings)}

    def lead_followers(self) -> None:
        """Rank 0, before its first update: the other ranks take this learner's weights and
        optimizer state (a resume loaded them here only)."""
        if self.data_parallel is not None:
            self.data_parallel.from_rank0(("state", self.optimizer.state_dict()))
            self.data_parallel.broadcast_parameters(self.updater.parameters)

    def release_followers(self) -> None:
        """Rank 0, after its last update: the other ranks' `UpdateFollower.run` returns."""
        if self.data_parallel is not None:
            self.data_parallel.from_rank0(None)

    def finish_iteration(self, row: dict) -> None:
        """Closes an iteration: its row joins the history, then the checkpoint (and, if its
        evaluation is the best so far, the best checkpoint), then the log."""
        self.iteration = int(row["iteration"])
        self.history.append(row)
        state = self.state_dict()
        self.save_checkpoint(state)
        best = self.best_evaluation()
        if self.config.keep_best and best is not None and best[0] == self.iteration:
            save_verified(state, self.checkpoint_dir / BEST_CHECKPOINT)
        self.logger.log(self.iteration, row)

    def best_evaluation(self) -> tuple[int, float] | None:
        """(iteration, success) of the best evaluation in the history; a later one wins a tie (more
        training at equal success). None before the first evaluation."""
        best: tuple[int, float] | None = None
        for row in self.history:
            success = row.get("eval/success_rate")
            if isinstance(success, (int, float)) and (best is None or success >= best[1]):
                best = (int(row["iteration"]), float(success))
        return best

    def best_state(self) -> tuple[int, float, dict] | None:
        """keep_best: (iteration, success, checkpoint state) of the best evaluation, read from
        checkpoints/best.ckpt; None without an evaluation, or (with a warning) when the file is missing,
        unreadable or another iteration's (killed between the iteration checkpoint and the best one)."""
        best = self.best_evaluation()
        if not self.config.keep_best or best is None:
            return None
        path = self.checkpoint_dir / BEST_CHECKPOINT
        state = load_or_set_aside(path, "best checkpoint") if path.exists() else None
        if state is None or int(state["iteration"]) != best[0]:
            log.warning("%s does not hold iteration %d (the best evaluation's)", path, best[0])
            return None
        return best[0], best[1], state

    def roll_back_if_dropped(self, success: float, iteration: int) -> dict[str, float]:
        """rollback_drop: `iteration`'s evaluation (`success`, not yet in the history) more than
        rollback_drop below the best one puts the best checkpoint's policy and optimizer back. The
        weights that fell are kept as checkpoints/fallen_<iteration>.ckpt (`ript eval` reads it): the
        iteration's own checkpoint will hold the best's. Returns the log entry ({} when nothing was
        rolled back)."""
        best = self.best_evaluation()
        # success rates are counts over episodes: without the tolerance, a fall of exactly rollback_drop
        # (20/30 after 26/30, 11/30 after 17/30) fired or not by float rounding of the two rates
        if not self.config.rollback_drop or best is None or success >= best[1] - self.config.rollback_drop - 1e-9:
            return {}
        verified = self.best_state()
        if verified is None:
            log.warning("evaluation %.2f fell below the best (%.2f); not rolling back", success, best[1])
            return {}
        best_iteration, best_success, state = verified
        fallen = self.checkpoint_dir / f"fallen_{iteration:06d}.ckpt"
        save_verified(
            {
                "iteration": iteration,
                "eval/success_rate": success,
                "policy": self.policy.state_dict(),
                **self._average_entry(),
                **self._policy_header(),
            },
            fallen,
        )
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._restore_average(state)
        self.lead_followers()  # data-parallel ranks take the restored weights and optimizer state
        log.warning(
            "evaluation %.2f fell more than %.2f below iteration %d's %.2f: policy and optimizer rolled "
            "back to iteration %d (training goes on from there on new trials; the fallen weights are in %s)",
            success,
            self.config.rollback_drop,
            best_iteration,
            best_success,
            best_iteration,
            fallen,
        )
        return {"train/rolled_back_to": float(best_iteration)}

    # ---- checkpoints ---------------------------------------------------------------------------
    def _policy_header(self) -> dict:
        """What makes a checkpoint with `policy` weights loadable as a policy (`ript eval`)."""
        return {} if self.policy_checkpoint is None else {"policy_checkpoint": self.policy_checkpoint}

    def _average_entry(self) -> dict:
        """A checkpoint's averaged weights (average_decay): what `ript eval` and the exports load."""
        return {} if self.average is None else {AVERAGE_KEY: self.average}

    def _restore_average(self, state: dict) -> None:
        """The average from a checkpoint; one written without averaging starts it at its policy."""
        if self.average is None:
            return
        if AVERAGE_KEY not in state:
            log.warning(
                "checkpoint %s has no averaged weights: the average starts again from its policy",
                state.get("iteration"),
            )
        self.average = {name: value.detach().clone() for name, value in deployed_weights_of(state).items()}

    def state_dict(self) -> dict:
        return {
            "iteration": self.iteration,
            "policy": self.policy.state_dict(),
            **self._average_entry(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "history": self.history,
            "env_steps": self.env_steps,
            "config": asdict(self.config),
            "learning_rate": self.learning_rate,
            **self._policy_header(),
        }

    def save_checkpoint(self, state: dict | None = None) -> Path:
        path = self.checkpoint_dir / f"iter_{self.iteration:06d}.ckpt"
        save_verified(self.state_dict() if state is None else state, path)
        for old in sorted(self.checkpoint_dir.glob(CHECKPOINT_GLOB))[: -self.config.keep_checkpoints]:
            old.unlink(missing_ok=True)
        return path

    def resume(self, fresh: bool = False) -> bool:
        """Load the newest checkpoint that verifies. Corrupt ones are reported and set aside.
        Returns False when there is nothing to resume from.

        A run folder whose checkpoints all failed to verify (now or on an earlier start) has a history
        that cannot be restored: starting over at iteration 1 beside it would mix runs, so that raises
        UnresumableRunError unless `fresh` (`resume=fresh`), which sets that history aside first."""
        for path in sorted(self.checkpoint_dir.glob(CHECKPOINT_GLOB), reverse=True):
            state = load_or_set_aside(path, "checkpoint")
            if state is None:
                continue
            self.policy.load_state_dict(state["policy"])
            self.optimizer.load_state_dict(state["optimizer"])
            self._restore_average(state)
            # The config wins when a resumed run changes the lr; else the adapted lr carries on.
            same_lr = state.get("config", {}).get("learning_rate") == self.config.learning_rate
            for group in self.optimizer.param_groups:
                group["lr"] = (
                    state.get("learning_rate", self.config.learning_rate) if same_lr else self.config.learning_rate
                )
                group["weight_decay"] = self.config.weight_decay
            self.sampler.load_state_dict(state["sampler"])
            self.iteration = int(state["iteration"])
            self.history = list(state["history"])
            self.env_steps = int(state["env_steps"])
            # metrics.jsonl may have rows past the checkpoint (killed between log and save): rewrite it.
            self.logger.rewrite(self.history)
            log.info("resumed from %s (iteration %d)", path.name, self.iteration)
            return True
        lost = sorted(self.checkpoint_dir.glob("iter_*.corrupt"))
        if lost and not fresh:
            raise UnresumableRunError(
                f"{self.run_dir}: every checkpoint is unreadable ({', '.join(p.name for p in lost)} set aside); "
                "refusing to start again at iteration 1 beside that run's history. Resume from a copy of the "
                "checkpoints, or start over here with resume=fresh (the old history is moved aside, not deleted)"
            )
        if fresh:
            self._set_history_aside()
        return False

    def _set_history_aside(self) -> None:
        """resume=fresh: move what belonged to the unrecoverable run into <run>/discarded-<time>/."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.run_dir / f"discarded-{stamp}"
        for name in self.DISCARDED_ON_FRESH:
            if (self.run_dir / name).exists():
                target.mkdir(exist_ok=True)
                (self.run_dir / name).rename(target / name)
                log.warning("resume=fresh: moved %s to %s", name, target)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.logger.rewrite([])

    DISCARDED_ON_FRESH: tuple[str, ...] = ("checkpoints",)
    """What resume=fresh moves aside (the ROS trainer adds its stored trials)."""

    def close(self) -> None:
        self.logger.close()


class UpdateFollower:
    """A rank > 0 of a data-parallel learner: a copy of the policy that takes its share of every
    LOOP update rank 0's Learner runs. No rollouts, evaluation, checkpoints or logs here."""

    def __init__(self, policy: Policy, config: TrainConfig, data_parallel: DataParallel) -> None:
        policy.eval()  # as the learner's policy: log pi_theta must match the sampling distribution
        self.data_parallel = data_parallel
        self.updater = make_updater(policy, config, data_parallel)

    def run(self) -> int:
        """Follows rank 0 until it releases the followers; returns the number of updates taken."""
        updates = 0
        while (message := self.data_parallel.from_rank0()) is not None:
            assert isinstance(message, tuple)
            if message[0] == "state":
                self.updater.optimizer.load_state_dict(message[1])
                self.data_parallel.broadcast_parameters(self.updater.parameters)
            else:
                _, loop_batch, order_seed, learning_rate = message
                for group in self.updater.optimizer.param_groups:
                    group["lr"] = learning_rate
                self.updater.generator = torch.Generator().manual_seed(order_seed)
                self.updater.update(loop_batch)
                updates += 1
        return updates
