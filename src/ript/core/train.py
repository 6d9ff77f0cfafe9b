"""`ript train`'s driver: the learner (learner.py) fed by a RolloutSource it pulls trials from.
One iteration, top to bottom, is `RiptTrainer.step`:

    collect: the sampler opens groups (K trials per context); the source runs them; the sampler
             keeps the groups whose K rewards differ, until B informative trials
    update:  LOOP, N epochs of PPO clip on leave-one-out advantages (Learner.update_from_batch)
    every eval_every iterations: source.evaluate(policy) on held-out states; with rollback_drop,
             a drop below the best evaluation puts the best checkpoint's weights back
    checkpoint (atomic, verified; the best evaluation's also as best.ckpt), then log

`stop_on_signals` ends a run cleanly on SIGINT/SIGTERM (Ctrl-C, a container or scheduler stopping
it): after the rollout call, or the update and evaluation, in progress, the weights in memory are
those of the last checkpoint.

Where trials come from is a `RolloutSource`: the reach task, a vector of LIBERO envs, or anything
else that can run K trials per context.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import torch

from ript.core.distributed import DataParallel
from ript.core.learner import Learner, TrainConfig, derive_seed
from ript.core.policy import Policy
from ript.core.sampler import Trial

log = logging.getLogger("ript.train")
HEARTBEAT_S = 60.0
"""Without progress bars, how often a long collection says where it is."""


class RolloutSource(Protocol):
    """Runs trials. `rollout` returns, per context, K Trials whose data is a Trajectory."""

    @property
    def contexts(self) -> Sequence[Any]: ...

    def rollout(self, policy: Policy, contexts: list[Any], group_size: int, seed: int) -> list[list[Trial]]: ...

    def evaluate(self, policy: Policy, seed: int) -> dict[str, float]: ...


class RiptTrainer(Learner):
    def __init__(
        self,
        policy: Policy,
        source: RolloutSource,
        config: TrainConfig,
        run_dir: str | Path,
        extra_config: dict | None = None,
        tensorboard: bool = True,
        on_status: Callable[[str, str], None] | None = None,
        policy_checkpoint: dict | None = None,
        data_parallel: DataParallel | None = None,
    ) -> None:
        super().__init__(
            policy,
            source.contexts,
            config,
            run_dir,
            extra_config,
            tensorboard,
            on_status,
            policy_checkpoint,
            data_parallel,
        )
        self.source = source
        self.stop_reason: str | None = None
        """Set by `request_stop`: why the run ended before its iterations or budget."""

    def request_stop(self, reason: str) -> None:
        """Ends `run` at the next safe point: after a rollout call the open iteration is dropped
        (nothing of it is updated or saved; a resume redraws the same trials, which are seeded by
        iteration and call), an update that has begun finishes and is checkpointed."""
        self.stop_reason = reason

    @property
    def exit_status(self) -> int:
        """A CLI's exit status after `run`: 0 when it finished, 128 + the signal's number when a signal
        stopped it early (the shell's convention: a scheduler sees it unfinished and can resume it)."""
        return 0 if self.stop_reason is None else 128 + signal.Signals[self.stop_reason].value

    def run(self, progress: bool = True) -> list[dict]:
        from tqdm import tqdm

        cfg = self.config
        bar = tqdm(total=cfg.iterations, initial=self.iteration, desc="ript train", unit="it", disable=not progress)
        self.lead_followers()
        if self.iteration == 0 and not self.history:
            row: dict[str, float] = {"iteration": 0, "env_steps": 0}
            if cfg.eval_every:
                bar.set_description("evaluating")
                row.update(self._evaluate())
            self.finish_iteration(row)
        while self.iteration < cfg.iterations and not self.budget_spent() and self.stop_reason is None:
            done = self.step(bar if progress else None)
            if done is None:
                log.warning(
                    "stopped (%s) while collecting iteration %d: its trials are dropped; the policy is "
                    "iteration %d's checkpoint",
                    self.stop_reason,
                    self.iteration + 1,
                    self.iteration,
                )
                break
            if not progress:
                log.info(iteration_summary(done))
            bar.update(1)
            bar.set_postfix(
                {
                    k.split("/")[-1]: f"{v:.2f}"
                    for k, v in done.items()
                    if k in ("rollout/success_rate", "eval/success_rate", "stats/approx_kl_final")
                }
            )
        bar.close()
        if self.iteration >= cfg.iterations or self.budget_spent():
            self.stop_reason = None  # a stop that came during the last iteration ended nothing early
        self.release_followers()
        self.on_status("idle", "done")
        return self.history

    def step(self, bar=None) -> dict | None:
        """One RIPT iteration: collect, update, maybe evaluate, checkpoint, log. None: a stop was
        requested while collecting, and the iteration was dropped before its update."""
        cfg = self.config
        iteration = self.iteration + 1
        start = last_said = time.perf_counter()
        env_steps_before = self.env_steps

        def say(text: str) -> None:
            nonlocal last_said
            if bar is not None:
                bar.set_description(text)
            elif time.perf_counter() - last_said >= HEARTBEAT_S:  # logs: a line a minute, not per group
                last_said = time.perf_counter()
                log.info("iteration %d: %s", iteration, text)

        self.policy.eval()
        self.on_status("collecting", f"iteration {iteration}")

        # 1. Collect: up to parallel_groups contexts at a time, K trials each; the sampler keeps the
        #    groups whose rewards differ until it has B informative trials (or says why it stopped).
        rollout_calls = trials_run = 0
        while groups := self.sampler.open_groups(cfg.parallel_groups):
            seed = derive_seed(cfg.seed, iteration, rollout_calls)
            results = self.source.rollout(self.policy, [g.context for g in groups], cfg.sampler.group_size, seed)
            rollout_calls += 1
            self.sampler.add_groups(groups, results)
            trials = [trial for group in results for trial in group]
            self.env_steps += sum(getattr(trial.data, "num_steps", 0) for trial in trials)
            trials_run += len(trials)
            if self.stop_reason is not None:
                self.env_steps = env_steps_before  # the dropped trials count nowhere
                return None
            if self.budget_spent():  # the run's budget holds inside an iteration: a weak start's
                self.sampler.stop("env_step_budget")  # collection could otherwise run on for hours
            detail = (
                f"collecting {self.sampler.accepted_trials}/{cfg.sampler.batch_size} informative ({trials_run} run)"
            )
            self.on_status("collecting", detail)
            say(detail)
        batch = self.sampler.finish_batch()
        rollout_s = time.perf_counter() - start

        # 2. Update: LOOP on the batch's groups.
        row = self.update_from_batch(batch, iteration, lambda epoch, total: say(f"updating epoch {epoch}/{total}"))
        row["time/rollout_s"] = rollout_s
        row["time/update_s"] = time.perf_counter() - start - rollout_s

        # 3. Evaluate every eval_every iterations and after the last.
        last = iteration == cfg.iterations or self.budget_spent()
        if cfg.eval_every and (iteration % cfg.eval_every == 0 or last):
            say("evaluating")
            row.update(self._evaluate(iteration))
            if "eval/success_rate" in row:
                row.update(self.roll_back_if_dropped(row["eval/success_rate"], iteration))

        # 4. Checkpoint, then log.
        row["env_steps"] = self.env_steps
        row["time/iteration_s"] = time.perf_counter() - start
        self.finish_iteration(row)
        return row

    def _evaluate(self, iteration: int = 0) -> dict[str, float]:
        self.on_status("evaluating", f"iteration {iteration}")
        start = time.perf_counter()
        with torch.no_grad(), self.deployed_weights():  # the average, with average_decay
            result = self.source.evaluate(self.policy, derive_seed(self.config.seed, iteration, 1 << 21))
        return {**result, "time/eval_s": time.perf_counter() - start}


@contextmanager
def stop_on_signals(trainer: RiptTrainer, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """While the block runs, the first of `signals` asks the trainer to stop at its next safe point
    (`RiptTrainer.request_stop`) so that the caller can still write its final policy and report;
    a second one stops at once (KeyboardInterrupt; the last checkpoint stays the place to resume
    from). Outside the main thread signals cannot be caught, and nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(number: int, _frame) -> None:
        name = signal.Signals(number).name
        if trainer.stop_reason is not None:
            raise KeyboardInterrupt(f"{name} after {trainer.stop_reason}: stopping at once")
        trainer.request_stop(name)
        # os.write, not logging: the signal may have interrupted a write to the same stream
        os.write(
            2,
            f"{name}: stopping after the rollout call (its iteration dropped) or the update and "
            f"evaluation in progress; send it again to stop at once\n".encode(),
        )

    previous = {number: signal.signal(number, on_signal) for number in signals}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def iteration_summary(row: dict) -> str:
    """One log line for an iteration's row: what was collected, what the update did, where the run is."""
    parts = [f"iteration {int(row['iteration'])}:"]
    if "sampler/trials" in row:
        parts.append(
            f"{row['sampler/trials']:.0f} trials, {row.get('sampler/mixed_groups', 0):.0f} mixed groups "
            f"({row.get('sampler/mixed_groups_per_100_trials', 0):.1f} per 100 trials),"
        )
    if "rollout/success_rate" in row:
        parts.append(f"sampled success {row['rollout/success_rate']:.2f},")
    if "stats/approx_kl_final" in row:
        parts.append(f"KL after update {row['stats/approx_kl_final']:.3f},")
    if "eval/success_rate" in row:
        parts.append(f"eval success {row['eval/success_rate']:.2f},")
    if "train/rolled_back_to" in row:
        parts.append(f"rolled back to iteration {row['train/rolled_back_to']:.0f},")
    parts.append(f"{row.get('env_steps', 0):,.0f} env steps, {row.get('time/iteration_s', 0):.0f} s")
    return " ".join(parts)
