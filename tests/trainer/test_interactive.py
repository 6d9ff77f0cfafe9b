"""The ROS trainer's cores without ROS: trial store and the one-by-one (interactive) RIPT trainer.

Trials come in as (reward, trajectory) pairs matched by trial id; the tests check the LOOP update
happens after B trials, that stray/duplicate/conflicting messages get the right verdicts, and that
a trainer killed mid-iteration resumes from stored trials to the very same weights."""

import pytest
import torch

from ript.core.constants import OBS_STATE
from ript.core.interactive import ContextInfo, InteractiveTrainer
from ript.core.learner import TrainConfig
from ript.core.loop import LoopConfig
from ript.core.safe_io import load_verified, save_verified
from ript.core.sampler import SamplerConfig
from ript.core.trial_store import StoredTrial, TrialStore
from ript.core.trials import Trajectory
from ript.policies.config import VLAConfig
from ript.policies.vla import build_policy

STATE_DIM = 5
CONTEXTS = [ContextInfo(f"ctx{i}", f"task {i}") for i in range(2)]


def tiny_policy():
    torch.manual_seed(0)
    config = VLAConfig(
        input_mode="state",
        state_dim=STATE_DIM,
        use_language=False,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        chunk_size=4,
        execute_steps=4,
    )
    return build_policy(config).eval()


def trajectory(policy, seed: int, queries: int = 3) -> Trajectory:
    gen = torch.Generator().manual_seed(seed)
    obs = {OBS_STATE: torch.randn(queries, STATE_DIM, generator=gen)}
    with torch.no_grad():
        sample = policy.sample(obs, generator=gen)
    return Trajectory(
        obs=obs,
        scored=sample.scored,
        log_probs=sample.log_probs,
        mask=torch.ones_like(sample.log_probs, dtype=torch.bool),
        num_steps=queries * 4,
    )


def make_trainer(run_dir, iterations=1):
    policy = tiny_policy()
    config = TrainConfig(
        iterations=iterations,
        learning_rate=1e-2,
        eval_every=0,
        sampler=SamplerConfig(group_size=2, batch_size=4, dynamic=True),
        loop=LoopConfig(ppo_epochs=1, minibatch_size=12, loss_normalization="token", target_kl=None),
    )

    def save_weights(path):
        save_verified(policy.state_dict(), path)

    return InteractiveTrainer(policy, CONTEXTS, config, run_dir, save_weights, run_dir / "initial.ckpt")


def run_trial(trainer, seed, reward):
    ticket = trainer.next_trial()
    assert ticket is not None
    first = trainer.on_reward(ticket.trial_id, reward, "simulator")
    assert first.accepted and not first.trial_stored
    verdict = trainer.on_trajectory(ticket.trial_id, trajectory(trainer.policy, seed))
    assert verdict.accepted and verdict.trial_stored, verdict.reason
    return ticket, verdict


def test_trial_store_roundtrip_and_order(tmp_path):
    store = TrialStore(tmp_path)
    policy = tiny_policy()
    for n, trial_id in enumerate(["b-2", "a-1"]):
        store.save(StoredTrial(trial_id, 1, 0, 1, "ctx1", float(n), "operator", 0, trajectory(policy, n)))
    loaded = store.load(1)
    assert [t.trial_id for t in loaded] == ["b-2", "a-1"], "replay order is storage order"
    assert [t.sequence for t in loaded] == [0, 1]
    assert torch.equal(loaded[1].trajectory.log_probs, trajectory(policy, 1).log_probs)
    assert store.trial_ids() == {"b-2": 1, "a-1": 1}
    # A damaged (or deleted) file is set aside and rebuilt from its replica: nothing is lost.
    path = next(store.iteration_dir(1).glob("000000-*"))
    path.write_bytes(path.read_bytes()[:-10])
    next(store.iteration_dir(1).glob("000001-*")).unlink()
    assert [t.trial_id for t in store.load(1)] == ["b-2", "a-1"]
    assert path.with_suffix(".corrupt").exists() and len(list(store.iteration_dir(1).glob("*.trial"))) == 2
    # Both copies gone: the replay ends before the lost trial, the later ones are kept aside, unreplayed.
    for copy in (path, store.replica(path)):
        copy.write_bytes(copy.read_bytes()[:-10])
    assert store.load(1) == []
    assert [p.name.split("-", 1)[1] for p in (store.iteration_dir(1) / "unreplayed").glob("*.trial")] == ["a-1.trial"]
    # Both copies *deleted* (no file to find unreadable): the skipped number tells, same handling.
    for n in range(3):
        store.save(StoredTrial(f"c-{n}", 2, 0, 1, "ctx1", 1.0, "operator", 0, trajectory(policy, n)))
    middle = next(store.iteration_dir(2).glob("000001-*"))
    middle.unlink()
    store.replica(middle).unlink()
    assert [t.trial_id for t in store.load(2)] == ["c-0"]
    assert [p.name for p in (store.iteration_dir(2) / "unreplayed").glob("*.trial")] == ["000002-c-2.trial"]


def test_one_iteration_updates_and_saves_weights(tmp_path):
    trainer = make_trainer(tmp_path)
    before = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    tickets = []
    for n, reward in enumerate([1.0, 0.0, 0.0, 1.0]):
        ticket, verdict = run_trial(trainer, n, reward)
        tickets.append(ticket)
        assert (verdict.iteration_row is not None) == (n == 3)
    assert [t.trial_index for t in tickets] == [0, 1, 0, 1]
    assert tickets[0].context_index == tickets[1].context_index
    assert {t.weights_version for t in tickets} == {0}
    assert trainer.iteration == 1 and trainer.weights_version == 1 and trainer.done
    assert trainer.weights_path().is_file()
    assert (tmp_path / "checkpoints" / "iter_000001.ckpt").is_file()
    row = trainer.history[-1]
    assert row["sampler/trials"] == 4 and "loss/policy" in row
    assert row["stats/ratio_mean"] == pytest.approx(1.0, abs=1e-4)
    assert any(not torch.equal(before[k], v) for k, v in trainer.policy.state_dict().items())
    assert trainer.next_trial() is None


def test_rejections_duplicates_and_abort(tmp_path):
    trainer = make_trainer(tmp_path)
    unknown = trainer.on_reward("it0001-nope", 1.0)
    assert not unknown.accepted and "unknown trial" in unknown.reason

    ticket = trainer.next_trial()
    assert trainer.next_trial() is None, "one trial at a time"
    assert trainer.on_reward(ticket.trial_id, 1.0).accepted
    dup = trainer.on_reward(ticket.trial_id, 1.0)
    assert dup.accepted and "duplicate" in dup.reason and not dup.trial_stored
    conflict = trainer.on_reward(ticket.trial_id, 0.0)
    assert not conflict.accepted and "conflicting" in conflict.reason
    assert trainer.on_trajectory(ticket.trial_id, trajectory(trainer.policy, 0)).trial_stored

    late_dup = trainer.on_reward(ticket.trial_id, 1.0)
    assert late_dup.accepted and "already stored" in late_dup.reason and not late_dup.trial_stored
    late_other = trainer.on_reward(ticket.trial_id, 0.0)
    assert not late_other.accepted and "finished trial" in late_other.reason
    assert len(trainer.store.load(1)) == 1, "duplicates never store twice"

    second = trainer.next_trial()
    assert trainer.abort(second.trial_id, "operator stop").accepted
    aborted = trainer.on_reward(second.trial_id, 1.0)
    assert not aborted.accepted and "aborted" in aborted.reason
    retry = trainer.next_trial()
    assert (retry.group_id, retry.trial_index) == (second.group_id, second.trial_index)
    assert retry.trial_id != second.trial_id


def test_restart_replays_stored_trials_to_the_same_weights(tmp_path):
    rewards = [1.0, 0.0, 0.0, 1.0]
    straight = make_trainer(tmp_path / "straight")
    for n, reward in enumerate(rewards):
        run_trial(straight, n, reward)

    first = make_trainer(tmp_path / "killed")
    for n, reward in enumerate(rewards[:3]):
        run_trial(first, n, reward)
    in_flight = first.next_trial()
    first.on_reward(in_flight.trial_id, 1.0)  # never completed: the trainer "dies" here
    del first

    restarted = make_trainer(tmp_path / "killed")
    assert restarted.resume()
    assert restarted.sampler.accepted_trials == 2 and restarted.iteration == 0
    assert not restarted.on_reward(in_flight.trial_id, 1.0).accepted, "an in-flight trial died with its trainer"
    _, verdict = run_trial(restarted, 3, rewards[3])
    assert verdict.iteration_row is not None and restarted.iteration == 1
    for key, value in straight.policy.state_dict().items():
        torch.testing.assert_close(restarted.policy.state_dict()[key], value)
    # A second restart after the update: stored trials of the closed iteration are rejected as finished.
    again = make_trainer(tmp_path / "killed", iterations=2)
    assert again.resume() and again.iteration == 1
    stored_id = again.store.load(1)[0].trial_id
    verdict = again.on_reward(stored_id, 1.0)
    assert not verdict.accepted and "closed with iteration 1" in verdict.reason


def test_a_corrupt_newest_checkpoint_is_recomputed_from_the_stored_trials_after_it(tmp_path):
    """Iterations 1 and 2 done, 2 trials of iteration 3 stored, iteration 2's checkpoint damaged: the
    resume starts from iteration 1's checkpoint, replays iteration 2's stored trials (its update
    runs again, to the same weights) and then iteration 3's; nothing is refused, nothing lost."""
    rewards = [1.0, 0.0, 0.0, 1.0] * 2 + [1.0, 0.0]
    straight = make_trainer(tmp_path / "straight", iterations=3)
    for n, reward in enumerate(rewards):
        run_trial(straight, n, reward)
    first = make_trainer(tmp_path / "run", iterations=3)
    for n, reward in enumerate(rewards):
        run_trial(first, n, reward)
    del first
    newest = tmp_path / "run" / "checkpoints" / "iter_000002.ckpt"
    newest.write_bytes(newest.read_bytes()[:-7])
    restarted = make_trainer(tmp_path / "run", iterations=3)
    assert restarted.resume()
    assert restarted.iteration == 2 and restarted.replayed_trials == 2 and restarted.sampler.accepted_trials == 2
    for key, value in straight.policy.state_dict().items():
        torch.testing.assert_close(restarted.policy.state_dict()[key], value)
    assert load_verified(newest)["iteration"] == 2, "iteration 2's checkpoint is written again"


def test_a_corrupt_trial_file_in_the_open_iteration_still_resumes_to_the_same_weights(tmp_path):
    rewards = [1.0, 0.0, 0.0, 1.0]
    straight = make_trainer(tmp_path / "straight")
    for n, reward in enumerate(rewards):
        run_trial(straight, n, reward)
    first = make_trainer(tmp_path / "damaged")
    for n, reward in enumerate(rewards[:3]):
        run_trial(first, n, reward)
    del first
    files = sorted((tmp_path / "damaged" / "trials" / "iter_000001").glob("*.trial"))
    files[0].write_bytes(files[0].read_bytes()[:-7] + b"garbage")  # the disk damaged an acknowledged trial
    restarted = make_trainer(tmp_path / "damaged")
    assert restarted.resume() and restarted.sampler.accepted_trials == 2
    _, verdict = run_trial(restarted, 3, rewards[3])
    assert verdict.iteration_row is not None
    for key, value in straight.policy.state_dict().items():
        torch.testing.assert_close(restarted.policy.state_dict()[key], value)


def test_a_run_whose_checkpoints_are_all_unreadable_is_not_silently_restarted(tmp_path):
    from ript.core.learner import UnresumableRunError

    first = make_trainer(tmp_path, iterations=3)
    for n, reward in enumerate([1.0, 0.0, 0.0, 1.0, 1.0, 0.0]):  # iteration 1, then 2 trials of iteration 2
        run_trial(first, n, reward)
    assert first.iteration == 1
    del first
    for path in (tmp_path / "checkpoints").glob("iter_*.ckpt"):
        path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(UnresumableRunError, match="every checkpoint is unreadable"):
        make_trainer(tmp_path, iterations=3).resume()
    # Still refused on the next start (the corrupt files were set aside, the history is still there).
    with pytest.raises(UnresumableRunError, match="resume=fresh"):
        make_trainer(tmp_path, iterations=3).resume()
    fresh = make_trainer(tmp_path, iterations=3)
    assert not fresh.resume(fresh=True) and fresh.iteration == 0 and fresh.sampler.accepted_trials == 0
    discarded = next(tmp_path.glob("discarded-*"))
    assert len(list((discarded / "trials").rglob("*.trial"))) >= 6, "the old history is kept aside, not deleted"
    run_trial(fresh, 0, 1.0)  # and the fresh run collects


def test_trials_stored_past_the_newest_checkpoint_refuse_a_resume(tmp_path):
    from ript.core.learner import UnresumableRunError

    first = make_trainer(tmp_path, iterations=3)
    for n, reward in enumerate([1.0, 0.0, 0.0, 1.0, 1.0, 0.0]):
        run_trial(first, n, reward)
    del first
    for path in (tmp_path / "checkpoints").glob("iter_*.ckpt"):
        path.unlink()  # deleted, not corrupt: the stored trials of iteration 2 still tell
    with pytest.raises(UnresumableRunError, match=r"trials are stored for iteration\(s\) \[2\]"):
        make_trainer(tmp_path, iterations=3).resume()


def test_a_damaged_weights_file_is_rebuilt_before_it_is_announced(tmp_path):
    trainer = make_trainer(tmp_path, iterations=2)
    for n, reward in enumerate([1.0, 0.0, 0.0, 1.0]):
        run_trial(trainer, n, reward)
    path = trainer.weights_path()
    assert trainer.weights_version == 1 and trainer.verified_weights_path() == path
    path.write_bytes(path.read_bytes()[:-3])
    assert trainer.verified_weights_path() == path
    assert path.with_suffix(".corrupt").exists()
    rebuilt = load_verified(path)
    for key, value in trainer.policy.state_dict().items():
        assert torch.equal(rebuilt[key], value)
    path.unlink()  # and a deleted one
    restarted = make_trainer(tmp_path, iterations=2)
    assert restarted.resume() and restarted.verified_weights_path() == path
    for key, value in load_verified(path).items():
        assert torch.equal(trainer.policy.state_dict()[key], value)
