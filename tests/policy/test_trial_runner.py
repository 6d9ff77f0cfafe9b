"""TrialRunner (the policy node's core, no ROS): bounded actions, one query per executed chunk,
an executed-step mask, and a trajectory that re-scores at ratio 1 under the sampling weights."""

import numpy as np
import pytest
import torch

from ript.core.constants import OBS_STATE
from ript.core.safe_io import load_verified
from ript.core.trial_runner import TrialRunner, UnsafeAction, save_trajectory
from ript.policies.config import VLAConfig
from ript.policies.vla import build_policy


@pytest.fixture
def policy():
    torch.manual_seed(0)
    return build_policy(
        VLAConfig(
            input_mode="state",
            state_dim=5,
            use_language=False,
            hidden_dim=16,
            num_layers=1,
            num_heads=2,
            chunk_size=4,
            execute_steps=3,
        )
    ).eval()


def test_acts_bounded_records_queries_and_masks(policy, tmp_path):
    policy.exploration_scale = 50.0  # wide samples, so the bound has something to clip
    runner = TrialRunner(policy, execute_steps=3, action_bound=0.5)
    runner.begin("t1", stochastic=True, seed=0)
    steps = [runner.act({OBS_STATE: np.full(5, i, dtype=np.float32)}) for i in range(7)]
    actions = np.stack([a for a, _ in steps])
    assert np.abs(actions).max() <= 0.5 and np.abs(actions).max() == pytest.approx(0.5)
    assert [q is not None for _, q in steps] == [True, False, False, True, False, False, True]
    trajectory = runner.trajectory()
    assert trajectory["num_steps"] == 7
    # Chunks of 4, 3 executed each, the last cut after 1 step by the trial's end.
    assert trajectory["mask"].tolist() == [[True] * 3 + [False]] * 2 + [[True, False, False, False]]
    logp = policy.log_prob(trajectory["obs"], trajectory["scored"])
    torch.testing.assert_close(logp, trajectory["log_probs"])
    digest = save_trajectory(tmp_path / "t1.traj", trajectory, "t1", weights_version=3)
    payload = load_verified(tmp_path / "t1.traj")
    assert len(digest) == 64 and payload["trial_id"] == "t1" and payload["weights_version"] == 3


def test_deterministic_trials_record_nothing_and_nan_is_refused(policy):
    runner = TrialRunner(policy, execute_steps=4)
    runner.begin("eval", stochastic=False)
    first, _ = runner.act({OBS_STATE: np.zeros(5, dtype=np.float32)})
    runner.begin("eval2", stochastic=False)
    again, _ = runner.act({OBS_STATE: np.zeros(5, dtype=np.float32)})
    np.testing.assert_array_equal(first, again)
    assert runner.trajectory() is None
    runner.begin("eval3", stochastic=False)
    with pytest.raises(UnsafeAction, match="non-finite inputs"):
        runner.act({OBS_STATE: np.full(5, np.nan, dtype=np.float32)})


def test_tokenized_chunk_counts_every_token_when_tokens_equal_steps():
    # tokens_per_chunk == chunk_size: the counts agree, yet the FSQ decoder mixes every token into
    # every executed step, so executing one step must still score all of the chunk's tokens.
    torch.manual_seed(0)
    config = VLAConfig(
        input_mode="state",
        state_dim=5,
        use_language=False,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        chunk_size=4,
        execute_steps=1,
        head="tokenized",
        tokenized={"fsq_levels": (5, 4), "tokens_per_chunk": 4, "tokenizer_hidden_dim": 32},
    )
    policy = build_policy(config).eval()
    ids = policy.sample({OBS_STATE: torch.zeros(1, 5)}, generator=torch.Generator().manual_seed(0)).scored
    changed = ids.clone()
    changed[:, 3] = (changed[:, 3] + 7) % config.tokenized.vocab_size
    assert not torch.allclose(policy.decode_tokens(ids)[:, 0], policy.decode_tokens(changed)[:, 0])
    runner = TrialRunner(policy, execute_steps=1)
    runner.begin("t", stochastic=True, seed=0)
    for i in range(3):
        runner.act({OBS_STATE: np.full(5, 0.1 * i, dtype=np.float32)})
    assert runner.trajectory()["mask"].tolist() == [[True] * 4] * 3


def test_noise_across_queries_travels_in_the_trajectory_file(policy, tmp_path):
    # The policy node's trials link each query to the one before (correlate_across_queries): the
    # trajectory file the trainer reads back carries the link and re-scores at ratio 1; without
    # the link the same actions score otherwise.
    from ript.core.trial_store import trajectory_from_dict

    policy.noise_correlation, policy.correlate_across_queries = 0.9, True
    runner = TrialRunner(policy, execute_steps=3)
    runner.begin("t1", stochastic=True, seed=0)
    for i in range(7):
        runner.act({OBS_STATE: np.full(5, 0.1 * i, dtype=np.float32)})
    save_trajectory(tmp_path / "t1.traj", runner.trajectory(), "t1", weights_version=0)
    trajectory = trajectory_from_dict(load_verified(tmp_path / "t1.traj"))
    assert trajectory.obs["previous_query/continues"].tolist() == [False, True, True]
    assert trajectory.obs["previous_query/step"].tolist() == [0, 2, 2]
    torch.testing.assert_close(trajectory.obs["previous_query/obs/" + OBS_STATE][1], trajectory.obs[OBS_STATE][0])
    logp = policy.log_prob(trajectory.obs, trajectory.scored)
    torch.testing.assert_close(logp, trajectory.log_probs)
    unlinked = {k: v for k, v in trajectory.obs.items() if not k.startswith("previous_query/")}
    assert not torch.allclose(policy.log_prob(unlinked, trajectory.scored)[1:], trajectory.log_probs[1:])
