"""Exact numeric tests of RLOO advantages and the PPO clipped loss against hand-computed values."""

import math

import pytest
import torch

from ript.core.loop import LoopBatch, LoopConfig, LoopUpdater, approx_kl, ppo_clip_loss, rloo_advantages


def test_rloo_hand_computed():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    expected = torch.tensor(
        [
            [1 - 1 / 3, 0 - 2 / 3, 0 - 2 / 3, 1 - 1 / 3],
            [1.0, -1 / 3, -1 / 3, -1 / 3],
        ]
    )
    torch.testing.assert_close(rloo_advantages(rewards), expected)


def test_rloo_k2_and_all_equal():
    torch.testing.assert_close(rloo_advantages(torch.tensor([[1.0, 0.0]])), torch.tensor([[1.0, -1.0]]))
    torch.testing.assert_close(rloo_advantages(torch.ones(3, 5)), torch.zeros(3, 5))
    torch.testing.assert_close(rloo_advantages(torch.zeros(2, 4)), torch.zeros(2, 4))
    # Each group's advantages sum to zero.
    adv = rloo_advantages(torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]]))
    assert abs(float(adv.sum())) < 1e-6


def test_rloo_rejects_bad_shapes():
    with pytest.raises(ValueError, match="K >= 2"):
        rloo_advantages(torch.ones(4, 1))
    with pytest.raises(ValueError, match=r"\[G, K\]"):
        rloo_advantages(torch.ones(4))


def _case():
    # Row 0: A = +1, ratios 1.5 and 1.1, both valid. Row 1: A = -2, ratios 0.5 (valid), 1.5 (masked).
    logp_old = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]])
    ratios = torch.tensor([[1.5, 1.1], [0.5, 1.5]])
    logp_new = (logp_old + ratios.log()).requires_grad_(True)
    advantages = torch.tensor([1.0, -2.0])
    mask = torch.tensor([[True, True], [True, False]])
    return logp_new, logp_old, advantages, mask


def test_ppo_loss_symmetric_token_level():
    logp_new, logp_old, adv, mask = _case()
    loss, stats = ppo_clip_loss(logp_new, logp_old, adv, mask, clip_low=0.2, clip_high=0.2, token_level=True)
    # max(-1.5, -1.2) = -1.2; max(-1.1, -1.1) = -1.1; max(2*0.5, 2*0.8) = 1.6
    assert float(loss.detach()) == pytest.approx((-1.2 - 1.1 + 1.6) / 3, abs=1e-6)
    assert stats["clip_frac"] == pytest.approx(2 / 3)
    assert stats["ratio_mean"] == pytest.approx((1.5 + 1.1 + 0.5) / 3, abs=1e-6)
    k3 = [(r - 1) - math.log(r) for r in (1.5, 1.1, 0.5)]
    assert stats["approx_kl"] == pytest.approx(sum(k3) / 3, abs=1e-6)


def test_ppo_loss_sequence_level():
    logp_new, logp_old, adv, mask = _case()
    loss, _ = ppo_clip_loss(logp_new, logp_old, adv, mask, token_level=False)
    # Row means: (-1.2 - 1.1) / 2 = -1.15 and 1.6; then their mean.
    assert float(loss.detach()) == pytest.approx((-1.15 + 1.6) / 2, abs=1e-6)


def test_ppo_loss_asymmetric_clip():
    logp_new, logp_old, adv, mask = _case()
    loss, stats = ppo_clip_loss(logp_new, logp_old, adv, mask, clip_low=0.1, clip_high=0.3)
    # max(-1.5, -1.3) = -1.3; -1.1; max(1.0, 2*0.9) = 1.8
    assert float(loss.detach()) == pytest.approx((-1.3 - 1.1 + 1.8) / 3, abs=1e-6)
    assert stats["clip_frac_high"] == pytest.approx(1 / 3)
    assert stats["clip_frac_low"] == pytest.approx(1 / 3)
    # Widen the upper clip past 1.5: the first element is no longer clipped.
    loss, stats = ppo_clip_loss(logp_new, logp_old, adv, mask, clip_low=0.1, clip_high=0.6)
    assert float(loss.detach()) == pytest.approx((-1.5 - 1.1 + 1.8) / 3, abs=1e-6)
    assert stats["clip_frac"] == pytest.approx(1 / 3)


def test_ppo_gradient_signs_and_clipping():
    logp_new, logp_old, adv, mask = _case()
    loss, _ = ppo_clip_loss(logp_new, logp_old, adv, mask)
    loss.backward()
    grad = logp_new.grad
    assert grad[0, 0] == 0.0, "ratio 1.5 > 1.2 with A > 0 is clipped: no gradient"
    assert grad[0, 1] < 0.0, "A > 0 inside the clip range: descending the loss raises log-prob"
    assert grad[1, 0] == 0.0, "ratio 0.5 < 0.8 with A < 0 is clipped: no gradient"
    assert grad[1, 1] == 0.0, "masked element: no gradient"
    # Exact value of the one live gradient: d/dlogp (-A r) / n_valid = -1 * 1.1 / 3.
    assert float(grad[0, 1]) == pytest.approx(-1.1 / 3, abs=1e-6)


def test_ppo_negative_advantage_pushes_down():
    logp_old = torch.zeros(1, 3)
    logp_new = torch.zeros(1, 3, requires_grad=True)
    loss, _ = ppo_clip_loss(logp_new, logp_old, torch.tensor([-1.0]), torch.ones(1, 3, dtype=torch.bool))
    loss.backward()
    assert torch.all(logp_new.grad > 0)


def test_masked_padding_cannot_poison_loss_or_grad():
    logp_old = torch.tensor([[-1.0, float("-inf")], [-1.0, float("nan")]])
    logp_new = torch.tensor([[-0.9, float("nan")], [-1.2, float("inf")]], requires_grad=True)
    mask = torch.tensor([[True, False], [True, False]])
    loss, stats = ppo_clip_loss(logp_new, logp_old, torch.tensor([1.0, -1.0]), mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logp_new.grad).all()
    assert logp_new.grad[:, 1].abs().sum() == 0
    assert math.isfinite(stats["approx_kl"]) and math.isfinite(stats["ratio_mean"])


def test_ppo_all_masked_row_is_ignored_in_sequence_mode():
    logp = torch.zeros(2, 2, requires_grad=True)
    mask = torch.tensor([[True, True], [False, False]])
    loss, _ = ppo_clip_loss(logp, torch.zeros(2, 2), torch.tensor([1.0, 5.0]), mask, token_level=False)
    assert float(loss.detach()) == pytest.approx(-1.0)


def test_ppo_shape_errors():
    with pytest.raises(ValueError, match="same"):
        ppo_clip_loss(torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="advantages"):
        ppo_clip_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3), torch.ones(2, 3, dtype=torch.bool))


def test_loop_config_validation():
    with pytest.raises(ValueError, match="ppo_epochs"):
        LoopConfig(ppo_epochs=0)
    with pytest.raises(ValueError, match="clip_low"):
        LoopConfig(clip_low=1.5)
    with pytest.raises(ValueError, match="loss_normalization"):
        LoopConfig(loss_normalization="episode")


def test_updater_moves_logprobs_by_advantage_sign_and_clips_grad():
    torch.manual_seed(0)
    logits = torch.nn.Parameter(torch.zeros(4))  # a 4-armed bandit, one row per pull

    def log_prob_fn(obs, scored):
        return torch.log_softmax(logits, dim=0)[scored]  # [N, 1]

    arms = torch.tensor([[0], [1], [2], [3]])
    batch = LoopBatch(
        obs={},
        scored=arms,
        logp_old=torch.full((4, 1), -math.log(4)),
        mask=torch.ones(4, 1, dtype=torch.bool),
        advantages=torch.tensor([1.0, -1.0, 0.0, 0.0]),
    )
    updater = LoopUpdater(
        log_prob_fn,
        [logits],
        torch.optim.SGD([logits], lr=10.0),
        LoopConfig(ppo_epochs=3, minibatch_size=2, max_grad_norm=0.01, loss_normalization="token", target_kl=None),
    )
    metrics = updater.update(batch)
    assert logits[0] > logits[2] > logits[1]
    assert metrics["stats/num_minibatches"] == 6
    # Every step moved the parameters by at most lr * max_grad_norm.
    assert float(logits.detach().abs().max()) <= 3 * 2 * 10.0 * 0.01 + 1e-6
    for key in ("loss/policy", "stats/approx_kl", "stats/clip_frac", "stats/ratio_mean", "stats/grad_norm"):
        assert key in metrics


def test_frozen_parameter_prefixes_select_and_typos_fail():
    from ript.core.learner import trainable_parameters

    model = torch.nn.ModuleDict({"trunk": torch.nn.Linear(2, 2), "scale_head": torch.nn.Linear(2, 1)})
    kept = trainable_parameters(model, ["scale_head"])
    assert [p.shape for p in kept] == [p.shape for p in model["trunk"].parameters()]
    assert len(trainable_parameters(model, [])) == 4
    with pytest.raises(ValueError, match="matches no parameter"):
        trainable_parameters(model, ["head.scale"])


def test_target_kl_stops_before_the_minibatch_that_went_too_far():
    logits = torch.nn.Parameter(torch.zeros(4))

    def log_prob_fn(obs, scored):
        return torch.log_softmax(logits, dim=0)[scored]

    arms = torch.tensor([[0], [1], [2], [3]] * 4)
    batch = LoopBatch(
        obs={},
        scored=arms,
        logp_old=torch.full((16, 1), -math.log(4)),
        mask=torch.ones(16, 1, dtype=torch.bool),
        advantages=torch.tensor([1.0, -1.0, 0.0, 0.0] * 4),
    )

    def run(target_kl):
        logits.data.zero_()
        updater = LoopUpdater(
            log_prob_fn,
            [logits],
            torch.optim.SGD([logits], lr=0.5),
            LoopConfig(ppo_epochs=4, minibatch_size=4, target_kl=target_kl, loss_normalization="token"),
            generator=torch.Generator().manual_seed(0),
        )
        return updater.update(batch)

    free = run(None)
    assert free["stats/num_minibatches"] == 16 and free["stats/stopped_early"] == 0.0
    stopped = run(0.01)
    assert stopped["stats/stopped_early"] == 1.0 and 1 <= stopped["stats/num_minibatches"] < 16
    # The step that went beyond the target was undone: the policy left behind is within it, and
    # the logged final KL (whole batch, after the update) is that policy's, not a pre-step average.
    kept = logits.detach().clone()
    assert stopped["stats/approx_kl_final"] <= 0.01 < free["stats/approx_kl_final"]
    torch.testing.assert_close(
        torch.tensor(stopped["stats/approx_kl_final"]),
        approx_kl(torch.log_softmax(kept, 0)[arms], batch.logp_old, batch.mask),
    )
    # ...and the KL that stopped it is reported, since the averages above never see it.
    assert stopped["stats/approx_kl_at_stop"] > 0.01 and "stats/approx_kl_at_stop" not in free


def test_logged_final_kl_sees_the_last_step():
    # One minibatch, one epoch: the pre-step approx_kl is 0 by construction (ratio 1), the policy
    # left behind is not. approx_kl_final must measure the latter.
    logits = torch.nn.Parameter(torch.zeros(4))
    arms = torch.tensor([[0], [1], [2], [3]])
    batch = LoopBatch(
        obs={},
        scored=arms,
        logp_old=torch.full((4, 1), -math.log(4)),
        mask=torch.ones(4, 1, dtype=torch.bool),
        advantages=torch.tensor([1.0, -1.0, 0.0, 0.0]),
    )
    updater = LoopUpdater(
        lambda obs, scored: torch.log_softmax(logits, dim=0)[scored],
        [logits],
        torch.optim.SGD([logits], lr=10.0),
        LoopConfig(ppo_epochs=1, minibatch_size=4, loss_normalization="token", target_kl=None),
    )
    metrics = updater.update(batch)
    assert metrics["stats/approx_kl"] == pytest.approx(0.0, abs=1e-7)
    assert metrics["stats/approx_kl_final"] > 0.05


def test_trial_normalization_weighs_every_trial_alike():
    # Trial a: 1 query with A = +1; trial b: 3 queries with A = -1, all at ratio 1.
    # Token mean: (+1 * -1 + 3 * +1) / 4 = 0.5; trial mean: (-1 + 1) / 2 = 0.
    logp = torch.zeros(4, 1, requires_grad=True)
    mask = torch.ones(4, 1, dtype=torch.bool)
    adv = torch.tensor([1.0, -1.0, -1.0, -1.0])
    token, _ = ppo_clip_loss(logp, torch.zeros(4, 1), adv, mask)
    trial, _ = ppo_clip_loss(logp, torch.zeros(4, 1), adv, mask, weights=torch.tensor([1.0, 1 / 3, 1 / 3, 1 / 3]))
    assert float(token.detach()) == pytest.approx(0.5) and float(trial.detach()) == pytest.approx(0.0, abs=1e-7)
