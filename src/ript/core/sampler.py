"""Dynamic rollout sampling (RIPT-VLA Sec. 4.2): collect B informative trials, K per context.

A group of K trials from one context whose rewards are all equal has zero leave-one-out
advantage everywhere, so it is dropped and another context is drawn. Per-context outcome
history lets contexts solved in their last K trials be skipped (and retried after a few skips,
in case the policy regressed). A group-attempt budget guarantees termination: when no
informative context can be found the sampler stops and says why, it never loops forever.

Which context comes next is `context_selection`: 'uniform' walks a reshuffled cycle over all
contexts; 'mixed' prefers the contexts most likely to give a mixed group (a LOOP gradient): a
Beta posterior per context from its recent trials, one Thompson draw p per context, and the context
with the largest P(mixed | p) = 1 - p^K - (1 - p)^K is chosen — so contexts near 50 % win. The
prior of a context is its task's pooled success (`prior_strength` pseudo-trials): a run visits
each of its ~50 contexts only a few times, and without pooling an unvisited context of a solved
task looks as promising as one of a task at 50 %. Unvisited contexts stay uncertain enough to be
tried, and a fraction `uniform_fraction` of draws still comes from the uniform cycle, so every
context is visited. `min_task_share` keeps a task whose success fell near 0 (or rose near 1) in
the batch: its contexts give few mixed groups, so Thompson selection alone would stop drawing them
and the task would stop being trained just when it needs it. `favor_failing_tasks` goes further: each
group's task is drawn in proportion to its estimated failure rate, so the trials go where the success
is missing (a task at 5 % beside two at 90 % gets most groups). A context already drawn in this batch
is passed over while others remain (an update should see B/K different contexts, not one
context's noise B/K times).

Two ways to drive it, one implementation:
  * synchronous: `collect(rollout_fn)` — rollout_fn runs K trials for each of a list of contexts
    (a vector of simulators);
  * incremental: `open_group()` / `add_trial()` / `finished` / `finish_batch()` — trials arrive
    one by one (a robot with an operator, or the ROS trainer node).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

CONTEXT_SELECTIONS = ("mixed", "uniform")


def _task_of(context: Any) -> Any:
    return getattr(context, "task_id", None)


def mixed_probability(p: float, k: int) -> float:
    """P(a group of k trials at success rate p is mixed) = 1 - p^k - (1 - p)^k."""
    return 1.0 - p**k - (1.0 - p) ** k


@dataclass
class SamplerConfig:
    group_size: int = 8
    """K: trials per context (RIPT-VLA default 8)."""
    batch_size: int = 48
    """B: informative trials to collect per optimisation step; a multiple of K."""
    dynamic: bool = True
    """Reject groups whose K rewards are all equal. False keeps every group (the ablation)."""
    skip_solved: bool = True
    """Skip contexts whose last K recorded trials were all successes."""
    retry_after_skips: int = 3
    """A solved context is tried again after it has been skipped this many times in a row."""
    context_selection: str = "mixed"
    """'mixed': prefer contexts whose estimated success is near 1/2 (most likely to give a mixed
    group); 'uniform': a reshuffled cycle over all contexts."""
    uniform_fraction: float = 0.25
    """'mixed' only: share of draws taken from the uniform cycle anyway, so every context is visited."""
    min_task_share: float = 0.0
    """'mixed' only: each task named by the contexts gets at least this share of the groups opened in
    a batch: a task with fewer than floor(min_task_share * n) of the n groups opened so far (counting
    the next) gets the next group, its context chosen by the same Thompson draw. 0: off; at most
    1 / number of tasks (that: round-robin over tasks)."""
    favor_failing_tasks: bool = False
    """'mixed' only: draw each group's task first, with probability proportional to its estimated failure
    rate (1 - its pooled success over its contexts' recent trials, with a flat prior), then its context by
    the Thompson draw among that task's contexts. Plain 'mixed' follows P(mixed) alone, which is small
    at both ends, so a task stuck near 0 beside tasks near 1 is drawn least although it has the most
    to gain. `min_task_share` and `uniform_fraction` still apply first."""
    history_trials: int | None = None
    """Recent trials per context that estimate its success (None: 2 K)."""
    prior_strength: float = 8.0
    """'mixed' only: pseudo-trials of the task's pooled success in each context's prior (at most the
    task's recorded trials; 0: a flat prior). Contexts name their task by a `task_id` attribute;
    contexts that do not share one pool."""
    early_stop_fraction: float = 1.0
    """Stop opening groups once this fraction of B informative trials is collected."""
    max_group_attempts: int | None = None
    """Groups that may be opened per batch; None: 4 * B/K + number of contexts."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError(f"group_size (K) must be >= 2 for leave-one-out, got {self.group_size}")
        if self.batch_size < self.group_size or self.batch_size % self.group_size:
            raise ValueError(
                f"batch_size (B={self.batch_size}) must be a positive multiple of group_size (K={self.group_size})"
            )
        if not 0.0 < self.early_stop_fraction <= 1.0:
            raise ValueError(f"early_stop_fraction must be in (0, 1], got {self.early_stop_fraction}")
        if self.context_selection not in CONTEXT_SELECTIONS:
            raise ValueError(f"context_selection must be one of {CONTEXT_SELECTIONS}, got {self.context_selection!r}")
        if not 0.0 <= self.uniform_fraction <= 1.0:
            raise ValueError(f"uniform_fraction must be in [0, 1], got {self.uniform_fraction}")
        if not 0.0 <= self.min_task_share <= 1.0:
            raise ValueError(f"min_task_share must be in [0, 1], got {self.min_task_share}")
        if self.history_trials is not None and self.history_trials < self.group_size:
            raise ValueError(f"history_trials must be >= group_size (K={self.group_size}), got {self.history_trials}")
        if self.retry_after_skips < 0:
            raise ValueError(f"retry_after_skips must be >= 0, got {self.retry_after_skips}")
        if self.prior_strength < 0:
            raise ValueError(f"prior_strength must be >= 0, got {self.prior_strength}")
        if self.max_group_attempts is not None and self.max_group_attempts < 1:
            raise ValueError(f"max_group_attempts must be >= 1 or None, got {self.max_group_attempts}")


@dataclass
class Trial:
    """One finished trial. `data` is whatever the trainer needs later (a Trajectory)."""

    context_index: int
    reward: float
    data: Any = None


@dataclass
class Group:
    group_id: int
    context_index: int
    context: Any
    trials: list[Trial] = field(default_factory=list)

    @property
    def rewards(self) -> list[float]:
        return [trial.reward for trial in self.trials]


@dataclass
class SampledBatch:
    groups: list[Group]
    """Accepted groups, each with exactly K trials."""
    reason: str
    """'complete', 'early_stop', 'all_contexts_solved', 'budget_exhausted' or 'no_contexts'."""
    stats: dict[str, float]

    @property
    def trials(self) -> list[Trial]:
        return [trial for group in self.groups for trial in group.trials]

    @property
    def complete(self) -> bool:
        return self.reason in ("complete", "early_stop")


RolloutFn = Callable[[list[Any]], list[list[float | Trial]]]
"""contexts -> for each context, K results (a Trial or a bare reward)."""


class DynamicSampler:
    _stop_reason: str | None
    """Why the current batch stopped early (None while it runs); set per batch by _start_batch."""

    def __init__(self, contexts: Sequence[Any], config: SamplerConfig | None = None) -> None:
        self.contexts = list(contexts)
        self.config = config or SamplerConfig()
        window = self.history_window
        self.history: list[deque[float]] = [deque(maxlen=window) for _ in self.contexts]
        self.skips: list[int] = [0] * len(self.contexts)
        self._rng = random.Random(self.config.seed)
        self._order: list[int] = []
        self._next_group_id = 0
        self.tasks = list(dict.fromkeys(_task_of(c) for c in self.contexts if _task_of(c) is not None))
        if self.config.min_task_share * len(self.tasks) > 1.0 + 1e-9:
            raise ValueError(
                f"min_task_share={self.config.min_task_share} cannot hold for {len(self.tasks)} tasks "
                f"(at most 1/{len(self.tasks)} = {1 / len(self.tasks):.3f})"
            )
        self._start_batch()

    # ---- incremental API -------------------------------------------------------------------
    @property
    def target_trials(self) -> int:
        return (
            math.ceil(self.config.early_stop_fraction * self.config.batch_size / self.config.group_size)
            * self.config.group_size
        )

    @property
    def max_group_attempts(self) -> int:
        if self.config.max_group_attempts is not None:
            return self.config.max_group_attempts
        return 4 * self.config.batch_size // self.config.group_size + len(self.contexts)

    @property
    def accepted_trials(self) -> int:
        return len(self._accepted) * self.config.group_size

    @property
    def history_window(self) -> int:
        return self.config.history_trials or 2 * self.config.group_size

    def is_solved(self, context_index: int) -> bool:
        outcomes = list(self.history[context_index])[-self.config.group_size :]
        return len(outcomes) == self.config.group_size and all(r >= 1.0 for r in outcomes)

    def open_group(self) -> Group | None:
        """Pick the next context and open a group for it; None when the batch needs no more groups
        (target reached, budget spent, or no contexts)."""
        if self._stop_reason is not None or self.accepted_trials >= self.target_trials:
            return None
        if not self.contexts:
            self._stop_reason = "no_contexts"
            return None
        if self._attempts >= self.max_group_attempts:
            self._stop_reason = (
                "all_contexts_solved" if all(map(self.is_solved, range(len(self.contexts)))) else "budget_exhausted"
            )
            return None
        index = self._next_context_index()
        self._drawn.add(index)
        task = _task_of(self.contexts[index])
        self._groups_per_task[task] = self._groups_per_task.get(task, 0) + 1
        group = Group(self._next_group_id, index, self.contexts[index])
        self._next_group_id += 1
        self._attempts += 1
        self._open[group.group_id] = group
        return group

    def add_trial(self, group_id: int, result: float | Trial) -> Group | None:
        """Record one trial of an open group. Returns the group once it has K trials (accepted or
        rejected, see `was_accepted`), else None. Unknown or closed groups raise KeyError."""
        if group_id not in self._open:
            raise KeyError(f"group {group_id} is not open (unknown, already complete, or from an old batch)")
        group = self._open[group_id]
        trial = result if isinstance(result, Trial) else Trial(group.context_index, float(result))
        if trial.context_index != group.context_index:
            raise ValueError(
                f"trial for context {trial.context_index} added to a group of context {group.context_index}"
            )
        group.trials.append(trial)
        self.history[group.context_index].append(trial.reward)
        self._stats["trials"] += 1
        self._stats["reward_sum"] += trial.reward
        task = _task_of(group.context)
        if task is not None:  # contexts that name their task (LIBERO) also get per-task success
            trials, successes = self._per_task.get(task, (0, 0.0))
            self._per_task[task] = (trials + 1, successes + trial.reward)
        if len(group.trials) < self.config.group_size:
            return None
        del self._open[group_id]
        rewards = group.rewards
        all_equal = all(r == rewards[0] for r in rewards)
        self._stats["mixed"] += float(not all_equal)
        if all_equal and self.config.dynamic:
            key = (
                "rejected_all_success"
                if rewards[0] >= 1.0
                else "rejected_all_fail"
                if rewards[0] <= 0.0
                else "rejected_all_equal"
            )
            self._stats[key] += 1
        else:
            self._accepted.append(group)
        return group

    def was_accepted(self, group: Group) -> bool:
        return any(g is group for g in self._accepted)

    @property
    def finished(self) -> bool:
        """True when no group is open and no more will be opened for this batch."""
        if self._open:
            return False
        return (
            self.accepted_trials >= self.target_trials
            or self._stop_reason is not None
            or self._attempts >= self.max_group_attempts
            or not self.contexts
        )

    def finish_batch(self) -> SampledBatch:
        """Close this batch (open groups are abandoned) and start the next one."""
        if self._stop_reason is None and not self.contexts:
            self._stop_reason = "no_contexts"
        if self.accepted_trials >= self.target_trials:
            reason = "complete" if self.accepted_trials >= self.config.batch_size else "early_stop"
        elif self._stop_reason is not None:
            reason = self._stop_reason
        else:
            self.open_group()  # sets the budget reason when the budget is spent
            reason = self._stop_reason or "budget_exhausted"
        s = self._stats
        rejected = s["rejected_all_success"] + s["rejected_all_fail"] + s["rejected_all_equal"]
        stats = {
            "sampler/groups_sampled": float(self._attempts),
            "sampler/groups_accepted": float(len(self._accepted)),
            "sampler/groups_rejected": float(rejected),
            "sampler/groups_rejected_all_success": float(s["rejected_all_success"]),
            "sampler/groups_rejected_all_fail": float(s["rejected_all_fail"]),
            "sampler/groups_abandoned": float(len(self._open)),
            "sampler/contexts_skipped": float(s["skipped"]),
            "sampler/trials": float(s["trials"]),
            "sampler/mixed_groups": float(s["mixed"]),
            "sampler/mixed_groups_per_100_trials": 100.0 * s["mixed"] / s["trials"] if s["trials"] else 0.0,
            "rollout/success_rate": s["reward_sum"] / s["trials"] if s["trials"] else 0.0,
            **{
                f"rollout/success_rate/task_{task}": successes / trials
                for task, (trials, successes) in sorted(self._per_task.items())
            },
            **{f"sampler/trials/task_{task}": float(trials) for task, (trials, _) in sorted(self._per_task.items())},
        }
        batch = SampledBatch(groups=self._accepted, reason=reason, stats=stats)
        self._start_batch()
        return batch

    def stop(self, reason: str) -> None:
        """Open no more groups in this batch; finish_batch reports `reason` unless the batch is full."""
        self._stop_reason = reason

    def open_groups(self, limit: int) -> list[Group]:
        """Open up to `limit` groups, no more than the batch still needs; [] when it needs none."""
        if limit < 1:
            raise ValueError(f"parallel_groups must be >= 1, got {limit}")
        needed = math.ceil((self.target_trials - self.accepted_trials) / self.config.group_size)
        groups = []
        for _ in range(min(limit, max(needed, 0))):
            group = self.open_group()
            if group is None:
                break
            groups.append(group)
        return groups

    def add_groups(self, groups: Sequence[Group], results: Sequence[Sequence[float | Trial]]) -> None:
        """All K trials of each of these open groups, as a rollout returned them (one list per group,
        in order; a Trial's context_index is set to its group's)."""
        if len(results) != len(groups):
            raise ValueError(f"a rollout returned {len(results)} groups for {len(groups)} contexts")
        for group, group_results in zip(groups, results):
            if len(group_results) != self.config.group_size:
                raise ValueError(f"a rollout returned {len(group_results)} trials, expected K={self.config.group_size}")
            for result in group_results:
                if isinstance(result, Trial):
                    result.context_index = group.context_index
                self.add_trial(group.group_id, result)

    # ---- synchronous API -------------------------------------------------------------------
    def collect(self, rollout_fn: RolloutFn, parallel_groups: int = 1) -> SampledBatch:
        """Collect one batch by calling rollout_fn on up to `parallel_groups` contexts at a time."""
        while groups := self.open_groups(parallel_groups):
            self.add_groups(groups, rollout_fn([group.context for group in groups]))
        return self.finish_batch()

    # ---- persistence -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Cross-batch state (history, skip counters, RNG); enough to resume between batches."""
        return {
            "history": [list(h) for h in self.history],
            "skips": list(self.skips),
            "rng": self._rng.getstate(),
            "order": list(self._order),
            "next_group_id": self._next_group_id,
        }

    def load_state_dict(self, state: dict) -> None:
        if len(state["history"]) != len(self.contexts):
            raise ValueError(f"state has {len(state['history'])} contexts, sampler has {len(self.contexts)}")
        self.history = [deque(h, maxlen=self.history_window) for h in state["history"]]
        self.skips = list(state["skips"])
        rng_state = state["rng"]
        self._rng.setstate((rng_state[0], tuple(rng_state[1]), rng_state[2]))
        self._order = list(state["order"])
        self._next_group_id = int(state["next_group_id"])
        self._start_batch()

    # ---- internals -------------------------------------------------------------------------
    def _start_batch(self) -> None:
        self._accepted: list[Group] = []
        self._open: dict[int, Group] = {}
        self._attempts = 0
        self._drawn: set[int] = set()  # contexts drawn in this batch
        self._groups_per_task: dict[Any, int] = {}  # task id -> groups opened in this batch
        self._stop_reason = None
        self._stats = dict.fromkeys(
            (
                "trials",
                "reward_sum",
                "skipped",
                "mixed",
                "rejected_all_success",
                "rejected_all_fail",
                "rejected_all_equal",
            ),
            0.0,
        )
        self._per_task: dict[Any, tuple[int, float]] = {}  # task id -> (trials, summed reward)

    def _next_context_index(self) -> int:
        if self.config.context_selection == "mixed":
            pooled = self._pooled_success()
            owed = self._task_owed_a_group()
            if owed is not None:
                index = self._most_likely_mixed(pooled, task=owed)
                if index is not None:
                    return index
            if self._rng.random() >= self.config.uniform_fraction:
                if self.config.favor_failing_tasks and self.tasks:
                    index = self._most_likely_mixed(pooled, task=self._failing_task(pooled))
                    if index is not None:
                        return index
                index = self._most_likely_mixed(pooled)
                if index is not None:
                    return index
        return self._next_in_cycle()

    def _pooled_success(self) -> dict[Any, tuple[float, int]]:
        """task -> (successes, trials) over the recent trials of all its contexts."""
        pooled: dict[Any, tuple[float, int]] = {}
        for context, outcomes in zip(self.contexts, self.history):
            successes, trials = pooled.get(_task_of(context), (0.0, 0))
            pooled[_task_of(context)] = (successes + sum(outcomes), trials + len(outcomes))
        return pooled

    def _failing_task(self, pooled: dict[Any, tuple[float, int]]) -> Any:
        """A task drawn with probability proportional to its posterior-mean failure rate (`pooled`:
        `_pooled_success()`)."""
        weights = [1.0 - (pooled[task][0] + 1.0) / (pooled[task][1] + 2.0) for task in self.tasks]
        return self._rng.choices(self.tasks, weights=weights)[0]

    def _task_owed_a_group(self) -> Any:
        """The task furthest below its `min_task_share` of this batch's groups (after this one), if any."""
        due = math.floor(self.config.min_task_share * (self._attempts + 1) + 1e-9)
        if due < 1:
            return None
        owed = [(self._groups_per_task.get(task, 0), task) for task in self.tasks]
        count, task = min(owed, key=lambda pair: pair[0])
        return task if count < due else None

    def _most_likely_mixed(self, pooled: dict[Any, tuple[float, int]], task: Any = None) -> int | None:
        """Thompson draw of each context's success rate, its prior from `pooled` (`_pooled_success()`);
        the context whose draw makes a mixed group most likely (solved contexts count as skipped, as
        in the cycle), among `task`'s contexts when one is named. None: every candidate is solved."""
        k = self.config.group_size
        candidates = [i for i, c in enumerate(self.contexts) if task is None or _task_of(c) == task]
        fresh = any(index not in self._drawn for index in candidates)
        best, best_value = None, -1.0
        for index in candidates:
            outcomes = self.history[index]
            if self.config.skip_solved and self.is_solved(index) and self.skips[index] < self.config.retry_after_skips:
                continue
            if fresh and index in self._drawn:
                continue
            task_successes, task_trials = pooled[_task_of(self.contexts[index])]
            strength = min(self.config.prior_strength, float(task_trials))
            task_rate = (task_successes + 1.0) / (task_trials + 2.0)
            successes = sum(outcomes)
            p = self._rng.betavariate(
                1.0 + strength * task_rate + successes,
                1.0 + strength * (1.0 - task_rate) + len(outcomes) - successes,
            )
            value = mixed_probability(p, k)
            if value > best_value:
                best, best_value = index, value
        if best is not None:
            self.skips[best] = 0
        return best

    def _next_in_cycle(self) -> int:
        # Walk a reshuffled cycle over all contexts. Every skip raises that context's counter, so
        # within len(contexts) * (retry_after_skips + 1) draws some context is always chosen.
        while True:
            if not self._order:
                self._order = list(range(len(self.contexts)))
                self._rng.shuffle(self._order)
            index = self._order.pop()
            if self.config.skip_solved and self.is_solved(index) and self.skips[index] < self.config.retry_after_skips:
                self.skips[index] += 1
                self._stats["skipped"] += 1
                continue
            self.skips[index] = 0
            return index
