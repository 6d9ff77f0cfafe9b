"""DynamicSampler: rejection, refill, history skip and retry, early stop, clean termination."""

import random
from dataclasses import dataclass

import pytest

from ript.core.sampler import DynamicSampler, SamplerConfig, Trial


@dataclass(frozen=True)
class TaskContext:
    """A context that names its task, as LIBERO's do."""

    task_id: int
    index: int


def scripted_rollout(outcomes, calls=None):
    """rollout_fn whose K rewards per context come from outcomes[context] (a list, or a callable)."""

    def rollout(contexts):
        if calls is not None:
            calls.extend(contexts)
        return [list(outcomes[c]() if callable(outcomes[c]) else outcomes[c]) for c in contexts]

    return rollout


def test_rejects_all_equal_groups_and_refills():
    outcomes = {"solved": [1, 1, 1, 1], "hopeless": [0, 0, 0, 0], "mixed": [1, 0, 0, 1]}
    sampler = DynamicSampler(list(outcomes), SamplerConfig(group_size=4, batch_size=8, skip_solved=False))
    batch = sampler.collect(scripted_rollout(outcomes))
    assert batch.reason == "complete"
    assert [g.context for g in batch.groups] == ["mixed", "mixed"]
    assert len(batch.trials) == 8
    assert batch.stats["sampler/groups_accepted"] == 2
    assert batch.stats["sampler/groups_rejected"] == batch.stats["sampler/groups_sampled"] - 2
    assert batch.stats["sampler/groups_rejected"] >= 1
    assert (
        batch.stats["sampler/groups_rejected"]
        == batch.stats["sampler/groups_rejected_all_success"] + batch.stats["sampler/groups_rejected_all_fail"]
    )


def test_non_dynamic_keeps_every_group():
    outcomes = {"solved": [1, 1], "hopeless": [0, 0]}
    sampler = DynamicSampler(list(outcomes), SamplerConfig(group_size=2, batch_size=4, dynamic=False))
    batch = sampler.collect(scripted_rollout(outcomes))
    assert batch.reason == "complete" and len(batch.groups) == 2
    assert batch.stats["sampler/groups_rejected"] == 0


def test_skips_solved_context_then_retries_it():
    outcomes = {"solved": [1, 1], "mixed": [1, 0]}
    calls = []
    config = SamplerConfig(group_size=2, batch_size=2, retry_after_skips=2, skip_solved=True, seed=3)
    sampler = DynamicSampler(list(outcomes), config)
    for _ in range(12):
        sampler.collect(scripted_rollout(outcomes, calls))
    solved_draws = [i for i, c in enumerate(calls) if c == "solved"]
    assert solved_draws, "the solved context must be retried eventually"
    # After the first time it is seen solved, it is skipped exactly twice before each retry:
    # so between two consecutive draws of it, 'mixed' is drawn at least twice.
    for a, b in zip(solved_draws, solved_draws[1:]):
        assert b - a >= 3
    assert len(solved_draws) <= len(calls) // 3 + 1


def test_skip_disabled_draws_solved_context_every_cycle():
    outcomes = {"solved": [1, 1], "mixed": [1, 0]}
    calls = []
    sampler = DynamicSampler(
        list(outcomes), SamplerConfig(group_size=2, batch_size=2, skip_solved=False, context_selection="uniform")
    )
    for _ in range(6):
        sampler.collect(scripted_rollout(outcomes, calls))
    assert calls.count("solved") >= 4


def test_early_stop_fraction():
    outcomes = {c: [1, 0] for c in range(10)}
    sampler = DynamicSampler(list(outcomes), SamplerConfig(group_size=2, batch_size=8, early_stop_fraction=0.5))
    batch = sampler.collect(scripted_rollout(outcomes))
    assert batch.reason == "early_stop"
    assert len(batch.trials) == 4


@pytest.mark.timeout(10)
def test_terminates_when_every_context_is_solved():
    # The reference implementation loops forever here.
    outcomes = {c: [1, 1, 1] for c in range(3)}
    calls = []
    sampler = DynamicSampler(list(outcomes), SamplerConfig(group_size=3, batch_size=6))
    first = sampler.collect(scripted_rollout(outcomes, calls))
    assert first.groups == [] and first.reason == "all_contexts_solved"
    assert len(calls) == sampler.max_group_attempts
    second = sampler.collect(scripted_rollout(outcomes, calls))
    assert second.groups == [] and second.reason == "all_contexts_solved"
    assert second.stats["sampler/contexts_skipped"] > 0


@pytest.mark.timeout(10)
def test_terminates_when_nothing_is_informative():
    outcomes = {c: [0, 0] for c in range(4)}
    sampler = DynamicSampler(list(outcomes), SamplerConfig(group_size=2, batch_size=4, max_group_attempts=7))
    batch = sampler.collect(scripted_rollout(outcomes), parallel_groups=3)
    assert batch.reason == "budget_exhausted" and not batch.complete
    assert batch.stats["sampler/groups_sampled"] == 7
    assert batch.stats["sampler/groups_rejected_all_fail"] == 7


def test_no_contexts():
    batch = DynamicSampler([], SamplerConfig(group_size=2, batch_size=2)).collect(scripted_rollout({}))
    assert batch.reason == "no_contexts" and batch.groups == []


def test_returns_partial_batch_with_reason():
    calls = iter([[1, 0], [0, 0], [0, 0], [0, 0]])
    sampler = DynamicSampler(["a"], SamplerConfig(group_size=2, batch_size=4, max_group_attempts=4))
    batch = sampler.collect(lambda contexts: [next(calls) for _ in contexts])
    assert batch.reason == "budget_exhausted"
    assert len(batch.groups) == 1 and batch.groups[0].rewards == [1, 0]


def test_trials_one_by_one_like_a_robot():
    sampler = DynamicSampler(["left", "right"], SamplerConfig(group_size=3, batch_size=3, seed=1))
    group = sampler.open_group()
    assert sampler.add_trial(group.group_id, Trial(group.context_index, 1.0, data="traj-0")) is None
    # An aborted trial is simply never added: the group waits for a replacement.
    assert sampler.add_trial(group.group_id, 0.0) is None
    assert not sampler.finished
    done = sampler.add_trial(group.group_id, 0.0)
    assert done is group and sampler.was_accepted(group)
    assert sampler.finished and sampler.open_group() is None
    with pytest.raises(KeyError, match="not open"):
        sampler.add_trial(group.group_id, 1.0)
    batch = sampler.finish_batch()
    assert batch.reason == "complete" and batch.trials[0].data == "traj-0"
    assert batch.stats["rollout/success_rate"] == pytest.approx(1 / 3)
    with pytest.raises(KeyError):
        sampler.add_trial(12345, 1.0)


def test_open_groups_are_abandoned_at_finish():
    sampler = DynamicSampler(["a"], SamplerConfig(group_size=2, batch_size=2, max_group_attempts=1))
    group = sampler.open_group()
    sampler.add_trial(group.group_id, 1.0)
    batch = sampler.finish_batch()
    assert batch.stats["sampler/groups_abandoned"] == 1 and batch.groups == []
    with pytest.raises(KeyError):
        sampler.add_trial(group.group_id, 0.0)


def test_history_state_round_trip():
    outcomes = {"solved": [1, 1], "mixed": [1, 0], "other": [0, 1]}
    config = SamplerConfig(group_size=2, batch_size=2, seed=7)
    a = DynamicSampler(list(outcomes), config)
    for _ in range(3):
        a.collect(scripted_rollout(outcomes))
    b = DynamicSampler(list(outcomes), config)
    b.load_state_dict(a.state_dict())
    calls_a, calls_b = [], []
    for _ in range(5):
        a.collect(scripted_rollout(outcomes, calls_a))
        b.collect(scripted_rollout(outcomes, calls_b))
    assert calls_a == calls_b
    with pytest.raises(ValueError, match="contexts"):
        DynamicSampler(["x"], config).load_state_dict(a.state_dict())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(group_size=1), "group_size"),
        (dict(group_size=4, batch_size=6), "multiple"),
        (dict(early_stop_fraction=0.0), "early_stop_fraction"),
        (dict(max_group_attempts=0), "max_group_attempts"),
        (dict(min_task_share=-0.1), "min_task_share"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplerConfig(**kwargs)


def test_rollout_fn_contract_errors():
    sampler = DynamicSampler(["a"], SamplerConfig(group_size=2, batch_size=2))
    with pytest.raises(ValueError, match="expected K=2"):
        sampler.collect(lambda contexts: [[1.0] for _ in contexts])


def test_success_rate_per_task_when_contexts_name_their_task():
    contexts = [TaskContext(0, 0), TaskContext(0, 1), TaskContext(3, 0)]
    # Task 0 succeeds 3 times in 4 (both groups mixed), task 3 fails every trial (rejected).
    outcomes = {TaskContext(0, 0): [1, 0], TaskContext(0, 1): [1, 1], TaskContext(3, 0): [0, 0]}
    sampler = DynamicSampler(
        contexts,
        SamplerConfig(group_size=2, batch_size=6, skip_solved=False, max_group_attempts=3, context_selection="uniform"),
    )
    batch = sampler.collect(scripted_rollout(outcomes), parallel_groups=3)
    assert batch.stats["rollout/success_rate/task_0"] == pytest.approx(3 / 4)
    assert batch.stats["rollout/success_rate/task_3"] == 0.0
    assert batch.stats["rollout/success_rate"] == pytest.approx(3 / 6)
    # Plain contexts (no task_id) get only the overall rate.
    plain = DynamicSampler(["a"], SamplerConfig(group_size=2, batch_size=2)).collect(lambda chosen: [[1, 0]])
    assert [key for key in plain.stats if key.startswith("rollout/")] == ["rollout/success_rate"]


def _bernoulli_rollout(rates, k, rng, trials_run):
    def rollout(chosen):
        trials_run.extend(chosen)
        return [[float(rng.random() < rates[c]) for _ in range(k)] for c in chosen]

    return rollout


@pytest.mark.parametrize("dynamic", [True, False])
def test_mixed_selection_finds_more_mixed_groups_and_visits_every_context(dynamic):
    # 40 contexts: most never or always succeed, a few sit near 1/2 (a weak policy's spread).
    rates = {f"c{i}": (0.0 if i < 24 else 1.0 if i < 34 else 0.5) for i in range(40)}
    results = {}
    for selection in ("uniform", "mixed"):
        rng, run = random.Random(0), []
        sampler = DynamicSampler(
            list(rates),
            SamplerConfig(group_size=8, batch_size=32, dynamic=dynamic, context_selection=selection, seed=1),
        )
        mixed = trials = 0.0
        while trials < 4000:  # equal env steps for both
            stats = sampler.collect(_bernoulli_rollout(rates, 8, rng, run)).stats
            mixed += stats["sampler/mixed_groups"]
            trials += stats["sampler/trials"]
        results[selection] = 100 * mixed / trials
        assert set(run) == set(rates), f"{selection} left contexts unvisited"
    assert results["mixed"] >= 1.5 * results["uniform"], results


def test_mixed_groups_metric_counts_groups_whatever_dynamic_does():
    sampler = DynamicSampler(
        ["a", "b"], SamplerConfig(group_size=2, batch_size=4, dynamic=False, context_selection="uniform")
    )
    stats = sampler.collect(scripted_rollout({"a": [1, 0], "b": [0, 0]})).stats
    assert stats["sampler/mixed_groups"] == 1.0 and stats["sampler/mixed_groups_per_100_trials"] == 25.0


def test_task_pooled_prior_finds_mixed_groups_within_a_short_run():
    # A run's regime: 3 tasks x 16 contexts, ~500 trials, so each context is visited about once.
    # Contexts of one task share its success rate; the pooled prior lets the sampler prefer the
    # unvisited contexts of the task near 1/2 over those of the solved and the hopeless task.
    rates = {TaskContext(task, i): (0.95, 0.5, 0.02)[task] for task in range(3) for i in range(16)}

    def mixed_per_100(selection, prior_strength, seed):
        rng = random.Random(seed)
        sampler = DynamicSampler(
            list(rates),
            SamplerConfig(context_selection=selection, prior_strength=prior_strength, seed=seed),
        )
        mixed = trials = 0.0
        while trials < 500:
            stats = sampler.collect(_bernoulli_rollout(rates, 8, rng, [])).stats
            mixed += stats["sampler/mixed_groups"]
            trials += stats["sampler/trials"]
        return 100 * mixed / trials

    def mean(selection, prior_strength):
        return sum(mixed_per_100(selection, prior_strength, seed) for seed in range(10)) / 10

    uniform, flat, pooled = mean("uniform", 0.0), mean("mixed", 0.0), mean("mixed", 8.0)
    assert pooled >= 1.5 * uniform and pooled >= 1.15 * flat, (uniform, flat, pooled)


def test_min_task_share_gives_every_task_its_share_of_each_batch():
    # Task 2 fails everywhere: Thompson selection alone would rarely draw it after a few groups.
    rates = {TaskContext(task, i): (0.5, 1.0, 0.0)[task] for task in range(3) for i in range(8)}
    sampler = DynamicSampler(
        list(rates), SamplerConfig(min_task_share=0.25, uniform_fraction=0.0, skip_solved=False, seed=3)
    )
    for _ in range(5):
        opened = []
        stats = sampler.collect(_bernoulli_rollout(rates, 8, random.Random(0), opened)).stats
        order = [c.task_id for c in opened]
        for n in range(1, len(order)):  # a task below floor(n / 4) of the first n groups gets group n + 1
            behind = [task for task in range(3) if order[:n].count(task) < (n + 1) // 4]
            assert not behind or order[n] in behind, (n, order)
        assert all(order.count(task) >= len(order) // 4 - 2 for task in range(3)), order
        assert stats["sampler/trials/task_2"] == 8 * sum(c.task_id == 2 for c in opened)
    with pytest.raises(ValueError, match="at most 1/3"):
        DynamicSampler(list(rates), SamplerConfig(min_task_share=0.4))


def test_min_task_share_keeps_training_a_task_whose_success_fell():
    # The weak-start failure: one task falls to a few %, its groups are rarely mixed, and 'mixed'
    # selection stops drawing it. A floor of 0.2 per task gives it ~1.8x the accepted groups at
    # equal env steps, for a small loss of mixed groups overall (still above uniform drawing).
    rates = {TaskContext(task, i): (0.6, 0.5, 0.03)[task] for task in range(3) for i in range(32)}

    def run(selection, share, seed):
        rng = random.Random(seed)
        sampler = DynamicSampler(
            list(rates), SamplerConfig(context_selection=selection, min_task_share=share, seed=seed)
        )
        mixed = trials = accepted_weak = 0.0
        while trials < 2000:
            batch = sampler.collect(_bernoulli_rollout(rates, 8, rng, []))
            mixed += batch.stats["sampler/mixed_groups"]
            trials += batch.stats["sampler/trials"]
            accepted_weak += sum(group.context.task_id == 2 for group in batch.groups)
        return 100 * mixed / trials, accepted_weak

    def mean(selection, share):
        runs = [run(selection, share, seed) for seed in range(10)]
        return sum(r[0] for r in runs) / 10, sum(r[1] for r in runs) / 10

    (uniform, _), (thompson, weak_thompson), (floored, weak_floored) = (
        mean("uniform", 0.0),
        mean("mixed", 0.0),
        mean("mixed", 0.2),
    )
    assert weak_floored >= 1.5 * weak_thompson, (weak_thompson, weak_floored)
    assert uniform < floored <= thompson, (uniform, floored, thompson)


def test_favor_failing_tasks_spends_the_trials_on_the_task_near_zero():
    # Seed 0's end state at 300 k env steps: two tasks near solved, one near 0. 'mixed' draws the task
    # near 0 least (its P(mixed) is small); drawing the task by failure rate first gives it most trials
    # and more accepted groups at equal trials, and still visits every task.
    rates = {TaskContext(task, i): (0.75, 0.03, 0.95)[task] for task in range(3) for i in range(32)}

    def run(favor, seed):
        rng = random.Random(seed)
        sampler = DynamicSampler(list(rates), SamplerConfig(favor_failing_tasks=favor, seed=seed))
        trials = dict.fromkeys(range(3), 0.0)
        accepted_weak = 0
        while sum(trials.values()) < 3000:
            batch = sampler.collect(_bernoulli_rollout(rates, 8, rng, []))
            for task in range(3):
                trials[task] += batch.stats.get(f"sampler/trials/task_{task}", 0.0)
            accepted_weak += sum(group.context.task_id == 1 for group in batch.groups)
        return trials, accepted_weak

    plain = [run(False, seed) for seed in range(6)]
    favored = [run(True, seed) for seed in range(6)]
    share = [sum(t[1] for t, _ in runs) / sum(sum(t.values()) for t, _ in runs) for runs in (plain, favored)]
    accepted = [sum(a for _, a in runs) for runs in (plain, favored)]
    assert share[1] >= 0.5 and share[1] >= 2.5 * share[0], share
    assert accepted[1] >= 1.5 * accepted[0], accepted
    assert all(t[task] > 0 for t, _ in favored for task in range(3))
