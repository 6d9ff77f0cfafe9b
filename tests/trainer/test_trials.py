"""Groups of trials become one LoopBatch with each trial's leave-one-out advantage on its rows."""

import pytest
import torch

from ript.core.sampler import Group, Trial
from ript.core.trials import Trajectory, build_loop_batch


def traj(num_queries, value):
    return Trajectory(
        obs={"s": torch.full((num_queries, 2), value)},
        scored=torch.full((num_queries, 3), value),
        log_probs=torch.full((num_queries, 3), -value),
        mask=torch.ones(num_queries, 3, dtype=torch.bool),
    )


def test_build_loop_batch_rows_and_advantages():
    group = Group(0, 0, "ctx", [Trial(0, 1.0, traj(2, 1.0)), Trial(0, 0.0, traj(3, 2.0)), Trial(0, 0.0, traj(1, 3.0))])
    batch, advantages = build_loop_batch([group])
    assert len(batch) == 6 and batch.obs["s"].shape == (6, 2)
    torch.testing.assert_close(advantages, torch.tensor([[1.0, -0.5, -0.5]]))
    torch.testing.assert_close(batch.advantages, torch.tensor([1.0, 1.0, -0.5, -0.5, -0.5, -0.5]))
    torch.testing.assert_close(batch.logp_old[:, 0], torch.tensor([-1.0, -1.0, -2.0, -2.0, -2.0, -3.0]))
    assert batch.mask.dtype == torch.bool


def test_trial_weights_make_every_trial_weigh_the_same():
    from ript.core.loop import ppo_clip_loss

    # 6, 9 and 3 valid elements; the short trial is the success.
    group = Group(0, 0, "ctx", [Trial(0, 0.0, traj(2, 1.0)), Trial(0, 0.0, traj(3, 2.0)), Trial(0, 1.0, traj(1, 3.0))])
    batch, _ = build_loop_batch([group])
    torch.testing.assert_close(batch.weights, torch.tensor([1 / 6, 1 / 6, 1 / 9, 1 / 9, 1 / 9, 1 / 3]))
    # At ratio 1 the trial-normalised loss is -mean(A) over trials = 0 (RLOO sums to 0 per group);
    # the token mean lets the long failures outweigh the success: -(-0.5 * 6 - 0.5 * 9 + 1 * 3) / 18.
    logp = batch.logp_old.clone()
    trial, _ = ppo_clip_loss(logp, batch.logp_old, batch.advantages, batch.mask, weights=batch.weights)
    token, _ = ppo_clip_loss(logp, batch.logp_old, batch.advantages, batch.mask)
    assert float(trial) == pytest.approx(0.0, abs=1e-6) and float(token) == pytest.approx(4.5 / 18)


def test_trajectory_validates_rows():
    with pytest.raises(ValueError, match="rows"):
        Trajectory(
            obs={"s": torch.zeros(3, 2)},
            scored=torch.zeros(2, 3),
            log_probs=torch.zeros(2, 3),
            mask=torch.ones(2, 3, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match="no groups"):
        build_loop_batch([])
