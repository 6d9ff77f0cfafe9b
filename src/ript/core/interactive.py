"""RIPT with trials that arrive one by one (a robot with an operator, the ROS trainer node).

The same learner as `ript train` (DynamicSampler, LOOP update, checkpoints: learner.py); only
the way trials arrive differs:

    ticket = trainer.next_trial(robot)          # sampler picks the context; a fresh trial_id
    trainer.on_reward(trial_id, success)        # from /reward, matched by trial_id
    trainer.on_trajectory(trial_id, traj)       # from the policy node, matched by trial_id
        both present -> TrialStore.save (durable) -> sampler.add_trial -> acknowledged
        sampler finished -> build_loop_batch + LoopUpdater.update -> weights v<iteration>
                         -> trainer checkpoint (atomic) -> next iteration
    trainer.abort(trial_id, reason)             # dropped from its group; the group gets another trial

Every message about a trial names it, and each is checked against what the trainer issued: a
reward for an unknown, aborted or closed trial is rejected with its reason, a repeated one is
idempotent, a trajectory from a robot the trial was not issued to is refused.

Several robots: each runs one trial at a time, and the K trials of the open group are handed to
whichever robots ask (`next_trial(robot)`), so a group's trials run in parallel on different robots,
all on the group's one context. Only one group is open at a time: a robot that asks while every
trial of the group is issued gets None and waits for the group to close. That keeps the storage
order a replay of the sampler (groups open in the order their trials are stored), which is what
makes a restart reproduce its groups exactly. Restart: `resume()` loads the newest checkpoint, then replays the stored trials of the
open iteration through the sampler in storage order, which reproduces its groups exactly.
No rclpy here.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ript.core.learner import Learner, TrainConfig, UnresumableRunError
from ript.core.policy import Policy
from ript.core.safe_io import CorruptFileError, load_verified
from ript.core.sampler import Group, Trial
from ript.core.trial_identity import TrialTicket
from ript.core.trial_store import StoredTrial, TrialStore
from ript.core.trials import Trajectory

log = logging.getLogger("ript.interactive")


@dataclass(frozen=True)
class ContextInfo:
    """What the trainer needs to know of a context: a stable id and the language goal."""

    context_id: str
    instruction: str


@dataclass
class Verdict:
    """The trainer's answer to a message about a trial."""

    accepted: bool
    reason: str
    trial_stored: bool = False
    """This message completed the trial and it is now on disk and in the sampler."""
    iteration_row: dict | None = None
    """Set when storing the trial finished an iteration (the LOOP update's log row)."""


@dataclass
class _Pending:
    ticket: TrialTicket
    started: float = field(default_factory=time.monotonic)
    reward: float | None = None
    reward_source: str = ""
    trajectory: Trajectory | None = None

    @property
    def age_s(self) -> float:
        return time.monotonic() - self.started


SaveWeights = Callable[[Path], None]
"""Writes the current policy weights as a policy checkpoint at the given path."""


class InteractiveTrainer(Learner):
    def __init__(
        self,
        policy: Policy,
        contexts: Sequence[ContextInfo],
        config: TrainConfig,
        run_dir: str | Path,
        save_weights: SaveWeights,
        initial_weights: str | Path,
        extra_config: dict | None = None,
        tensorboard: bool = False,
    ) -> None:
        super().__init__(policy, contexts, config, run_dir, extra_config, tensorboard)
        self.contexts = list(contexts)
        self.store = TrialStore(self.run_dir / "trials")
        self.save_weights = save_weights
        self.initial_weights = Path(initial_weights)
        self.weights_dir = self.run_dir / "weights"
        self.group: Group | None = None
        self.running: dict[str, _Pending] = {}
        """trial_id -> a trial issued and not yet stored or aborted, in the order they were issued."""
        self._slots: dict[int, str] = {}
        """k -> trial_id of the open group's trials, running or stored (an abort frees its k)."""
        self.closed: dict[str, str] = {}
        """trial_id -> why no more messages are taken for it ('stored', 'aborted: ...', 'closed')."""
        self.rewards: dict[str, float] = {}
        self.stored_on: dict[str, str] = {}
        """trial_id -> the robot a stored trial ran on: a late record for it from another robot is
        refused as one for a running trial is, whenever it arrives."""
        self.stopped_reason: str | None = None
        self.replayed_trials = 0
        """Stored trials of the open iteration that the last resume() replayed."""
        self._iteration_start = time.perf_counter()
        self._iteration_rewards: list[float] = []

    # ---- weights -------------------------------------------------------------------------------
    @property
    def weights_version(self) -> int:
        """Version N = the weights after N iterations (0: the checkpoint the run started from)."""
        return self.iteration

    def weights_path(self, version: int | None = None) -> Path:
        version = self.weights_version if version is None else version
        return self.initial_weights if version == 0 else self.weights_dir / f"policy_v{version:06d}.ckpt"

    def verified_weights_path(self) -> Path:
        """The current weights file after a full check of its digest; one that is missing or does
        not verify is set aside and rebuilt from the policy in memory (after N iterations, or a
        resume from iteration N's checkpoint, those are version N's weights). Version 0 is the
        checkpoint the run started from, which this trainer itself loaded."""
        path = self.weights_path()
        if self.weights_version == 0:
            return path
        try:
            load_verified(path)
            return path
        except FileNotFoundError:
            log.error("weights v%d missing at %s; rebuilding it", self.weights_version, path)
        except CorruptFileError as exc:
            log.error(
                "weights v%d do not verify (%s); setting the file aside and rebuilding it", self.weights_version, exc
            )
            path.rename(path.with_suffix(".corrupt"))
        path.parent.mkdir(parents=True, exist_ok=True)
        self.save_weights(path)
        return path

    @property
    def done(self) -> bool:
        return self.iteration >= self.config.iterations or self.stopped_reason is not None

    # ---- trials ----------------------------------------------------------------------------------
    @property
    def pending(self) -> _Pending | None:
        """The newest running trial (None when none runs); `running` holds every one."""
        return next(reversed(self.running.values()), None)

    def running_on(self, robot: str) -> _Pending | None:
        """The trial `robot` runs now, if any."""
        return next((p for p in self.running.values() if p.ticket.robot == robot), None)

    def next_trial(self, robot: str = "") -> TrialTicket | None:
        """Issue the open group's next trial to `robot`; None while that robot runs one, while every
        trial of the open group is issued (the next group opens when it closes), or when training is done."""
        if self.done or self.running_on(robot) is not None:
            return None
        if self.group is None:
            # every running trial belongs to the open group, so none runs here: safe to close the iteration
            self.group = self.sampler.open_group()
            self._slots = {}
            if self.group is None:  # sampler budget spent or nothing informative: close the iteration
                self._finish_iteration_update()
                return self.next_trial(robot)
        group = self.group
        k = next((k for k in range(self.config.sampler.group_size) if k not in self._slots), None)
        if k is None:
            return None
        trial_id = (
            f"it{self.iteration + 1:04d}-g{group.group_id:03d}-c{group.context_index:03d}-k{k}-"
            f"{secrets.token_hex(3)}"
        )  # random tail: a restarted trainer never reuses an id
        ticket = TrialTicket(
            trial_id=trial_id,
            context_id=group.context.context_id,
            iteration=self.iteration + 1,
            trial_index=k,
            group_size=self.config.sampler.group_size,
            instruction=group.context.instruction,
            group_id=group.group_id,
            context_index=group.context_index,
            weights_version=self.weights_version,
            robot=robot,
        )
        self.running[trial_id] = _Pending(ticket)
        self._slots[k] = trial_id
        return ticket

    def on_reward(self, trial_id: str, reward: float, source: str = "") -> Verdict:
        reward = float(reward)
        closed = self._closed_verdict(trial_id, "reward", reward)
        if closed is not None:
            return closed
        pending = self.running[trial_id]  # _closed_verdict answered for any trial that is not running
        if pending.reward is not None:
            if pending.reward == reward:
                return Verdict(True, f"duplicate reward {reward:g} for {trial_id}: already recorded")
            return Verdict(False, f"conflicting reward {reward:g} for {trial_id}: already has {pending.reward:g}")
        pending.reward, pending.reward_source = reward, source
        return self._maybe_complete(pending, "reward recorded")

    def trajectory_wanted(self, trial_id: str, robot: str | None = None) -> Verdict | None:
        """None if a trajectory for `trial_id` from `robot` (None: not checked) would be taken now,
        else the verdict on it: checked before the file a message names is opened, so a stray or
        forged record, or one from a robot the trial was not issued to, reads nothing."""
        pending = self.running.get(trial_id)
        issued_to = pending.ticket.robot if pending is not None else self.stored_on.get(trial_id)
        if robot is not None and issued_to is not None and robot != issued_to:
            return Verdict(
                False,
                f"trajectory for {trial_id} from {robot or 'the un-namespaced robot'}: "
                f"the trial was issued to {issued_to or 'the un-namespaced robot'}",
            )
        closed = self._closed_verdict(trial_id, "trajectory", None)
        if closed is not None:
            return closed
        pending = self.running[trial_id]  # _closed_verdict answered for any trial that is not running
        if pending.trajectory is not None:
            return Verdict(True, f"duplicate trajectory for {trial_id}: already recorded")
        return None

    def on_trajectory(self, trial_id: str, trajectory: Trajectory, robot: str | None = None) -> Verdict:
        refused = self.trajectory_wanted(trial_id, robot)
        if refused is not None:
            return refused
        if trajectory.log_probs.shape[0] == 0:
            return Verdict(False, f"trajectory of {trial_id} has no policy queries")
        unscorable = self._unscorable(trajectory)
        if unscorable:
            return Verdict(False, f"trajectory of {trial_id} refused: {unscorable}")
        pending = self.running[trial_id]  # trajectory_wanted checked it is a running trial's
        pending.trajectory = trajectory
        return self._maybe_complete(pending, "trajectory recorded")

    def _unscorable(self, trajectory: Trajectory) -> str:
        """Why the policy cannot re-score this trajectory as LOOP will ('' if it can): a foreign or
        forged one must be refused here, not crash the update at the end of the iteration."""
        try:
            with torch.no_grad():
                log_probs = self.policy.log_prob(trajectory.obs, trajectory.scored)
        except Exception as exc:  # any shape/dtype/key mismatch, whatever layer notices it
            return f"the policy cannot score it ({type(exc).__name__}: {str(exc)[:200]})"
        if tuple(log_probs.shape) != tuple(trajectory.log_probs.shape):
            return f"it scores to {tuple(log_probs.shape)}, the file says {tuple(trajectory.log_probs.shape)}"
        return ""

    def abort(self, trial_id: str, reason: str) -> Verdict:
        pending = self.running.pop(trial_id, None)
        if pending is None:
            why = self.closed.get(trial_id, "unknown trial")
            return Verdict(False, f"cannot abort {trial_id}: {why}")
        if self._slots.get(pending.ticket.trial_index) == trial_id:
            del self._slots[pending.ticket.trial_index]  # its k goes to the group's next trial
        self.closed[trial_id] = f"aborted: {reason}"
        log.warning("trial %s aborted (%s); its group gets another trial", trial_id, reason)
        return Verdict(True, f"aborted {trial_id}")

    @property
    def pending_age_s(self) -> float:
        """Age of the newest running trial (0 when none runs)."""
        pending = self.pending
        return pending.age_s if pending is not None else 0.0

    def _closed_verdict(self, trial_id: str, what: str, reward: float | None) -> Verdict | None:
        if trial_id in self.running:
            return None
        why = self.closed.get(trial_id)
        if why is None:
            return Verdict(False, f"{what} for unknown trial {trial_id!r}")
        if why == "stored" and reward is not None and self.rewards.get(trial_id) == reward:
            return Verdict(True, f"duplicate {what} for finished trial {trial_id}: already stored")
        if why == "stored" and reward is None:
            return Verdict(True, f"duplicate {what} for finished trial {trial_id}: already stored")
        if why == "stored":
            return Verdict(
                False, f"{what} {reward:g} for finished trial {trial_id}: stored with reward {self.rewards[trial_id]:g}"
            )
        return Verdict(False, f"{what} for finished trial {trial_id}: {why}")

    def _maybe_complete(self, pending: _Pending, partial: str) -> Verdict:
        if pending.reward is None or pending.trajectory is None:
            return Verdict(True, partial)
        ticket = pending.ticket
        stored = StoredTrial(
            ticket.trial_id,
            ticket.iteration,
            ticket.group_id,
            ticket.context_index,
            ticket.context_id,
            pending.reward,
            pending.reward_source,
            ticket.weights_version,
            pending.trajectory,
            robot=ticket.robot,
        )
        self.store.save(stored)  # durable before the trial counts anywhere
        del self.running[ticket.trial_id]
        row = self._add_to_sampler(stored)
        return Verdict(
            True, f"stored {ticket.trial_id} (reward {stored.reward:g})", trial_stored=True, iteration_row=row
        )

    def _add_to_sampler(self, stored: StoredTrial) -> dict | None:
        group = self.group
        if group is None or group.group_id != stored.group_id or group.context_index != stored.context_index:
            raise RuntimeError(
                f"trial {stored.trial_id} belongs to group {stored.group_id}/context "
                f"{stored.context_index}, the open group is {group and group.group_id}"
            )
        self.closed[stored.trial_id] = "stored"
        if stored.trial_id not in self._slots.values():  # a replayed trial: it takes the next free k
            self._slots[min(set(range(len(self._slots) + 1)) - set(self._slots))] = stored.trial_id
        self.rewards[stored.trial_id] = stored.reward
        self.stored_on[stored.trial_id] = stored.robot
        self.env_steps += stored.trajectory.num_steps
        self._iteration_rewards.append(stored.reward)
        if self.sampler.add_trial(group.group_id, Trial(stored.context_index, stored.reward, stored.trajectory)):
            self.group, self._slots = None, {}
        if self.group is None and self.sampler.finished:
            return self._finish_iteration_update()
        return None

    # ---- iterations ------------------------------------------------------------------------------
    def _finish_iteration_update(self) -> dict:
        iteration = self.iteration + 1
        batch = self.sampler.finish_batch()
        self.group, self._slots = None, {}
        start = time.perf_counter()
        row = self.update_from_batch(batch, iteration)
        row["time/rollout_s"] = start - self._iteration_start
        row["time/update_s"] = time.perf_counter() - start
        if not batch.groups and batch.reason not in ("complete", "early_stop"):
            self.stopped_reason = batch.reason  # nothing informative left: stop, never loop forever
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        self.save_weights(self.weights_dir / f"policy_v{iteration:06d}.ckpt")  # before the checkpoint names it
        row["env_steps"] = self.env_steps
        row["time/iteration_s"] = time.perf_counter() - self._iteration_start
        self.finish_iteration(row)
        self._iteration_rewards = []
        self._iteration_start = time.perf_counter()
        return row

    DISCARDED_ON_FRESH = ("checkpoints", "trials", "weights")

    def resume(self, fresh: bool = False) -> bool:
        """Newest valid checkpoint, then the stored trials after it, iteration by iteration: those of
        an iteration whose checkpoint was lost (set aside as corrupt) complete it again, bit for bit,
        and the open iteration's are fed back to the sampler. Returns False when there was nothing
        to resume. Without any usable checkpoint only iteration 1 can be replayed: trials stored for
        later iterations then mean their history is gone (UnresumableRunError), unless `fresh`."""
        resumed = super().resume(fresh)
        ahead = lambda: sorted({i for i in self.store.trial_ids().values() if i > self.iteration + 1})

        def refuse() -> None:
            raise UnresumableRunError(
                f"{self.run_dir}: trials are stored for iteration(s) {ahead()} but the newest usable checkpoint "
                f"and the stored trials after it reach only iteration {self.iteration}; refusing to train past them "
                "as if they never happened. Restore the checkpoints, or start over here with resume=fresh (the old "
                "history is moved aside)"
            )

        if ahead() and fresh:
            self._set_history_aside()
        elif ahead() and not resumed:
            refuse()  # no checkpoint at all: the run's history cannot be rebuilt from iteration 0's weights
        for trial_id, iteration in self.store.trial_ids().items():
            if iteration <= self.iteration:
                self.closed[trial_id] = f"closed with iteration {iteration}"
        while True:
            before = self.iteration
            self.replayed_trials = self._replay(self.iteration + 1)
            if self.iteration == before:
                break  # the open iteration
        if ahead():
            refuse()  # a gap: an iteration's trials are missing between the checkpoint and later ones
        return resumed or self.replayed_trials > 0

    def _replay(self, iteration: int) -> int:
        """Feed iteration's stored trials to the sampler in their stored order; a complete batch runs
        its LOOP update again (same trials, same order, same seeds: the same weights)."""
        replayed = self.store.load(iteration)
        for stored in replayed:
            if self.group is None:
                self.group, self._slots = self.sampler.open_group(), {}
            if self.group is None or self.group.group_id != stored.group_id:
                raise RuntimeError(
                    f"replay diverged at {stored.trial_id}: sampler opened group "
                    f"{self.group and self.group.group_id}, the trial was stored for {stored.group_id}"
                )
            self._add_to_sampler(stored)
        if replayed:
            log.info("replayed %d stored trials of iteration %d", len(replayed), iteration)
        return len(replayed)

    def status(self) -> dict[str, Any]:
        ticket = self.pending.ticket if self.pending is not None else None
        rewards = self._iteration_rewards
        return {
            "iteration": self.iteration + (0 if self.done else 1),
            "trial_id": ticket.trial_id if ticket else "",
            "context_id": ticket.context_id if ticket else "",
            "trial_index": ticket.trial_index if ticket else 0,
            "group_size": self.config.sampler.group_size,
            "trials_collected": self.sampler.accepted_trials,
            "batch_target": self.config.sampler.batch_size,
            "success_rate": sum(rewards) / len(rewards) if rewards else 0.0,
        }
