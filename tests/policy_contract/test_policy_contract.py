"""The Policy contract on the reference MLP policy: sample/log_prob consistency, clipping, chunks."""

import numpy as np
import pytest
import torch
from torch.distributions import Laplace, Normal

from ript.core.constants import OBS_STATE
from ript.core.distributions import gaussian_log_prob, laplace_log_prob, sample_gaussian, sample_laplace
from ript.core.policy import PolicySample
from ript.core.trial_runner import TrialRunner
from ript.policies.mlp_policy import MLPPolicy, MLPPolicyConfig


def make_policy(distribution="gaussian", chunk_size=4, init_scale=0.8):
    torch.manual_seed(0)
    return MLPPolicy(
        MLPPolicyConfig(
            state_dim=3, action_dim=2, chunk_size=chunk_size, distribution=distribution, init_scale=init_scale
        )
    )


@pytest.mark.parametrize("distribution", ["gaussian", "laplace"])
def test_sample_log_probs_match_rescoring(distribution):
    policy = make_policy(distribution)
    obs = {OBS_STATE: torch.randn(5, 3)}
    with torch.no_grad():
        sample = policy.sample(obs, generator=torch.Generator().manual_seed(1))
    assert sample.actions.shape == (5, 4, 2) and sample.log_probs.shape == (5, 4)
    torch.testing.assert_close(policy.log_prob(obs, sample.scored), sample.log_probs)
    # Sequence log-prob is the sum of the per-step log-probs.
    torch.testing.assert_close(policy.chunk_log_prob(obs, sample.scored), sample.log_probs.sum(dim=1))


def test_clipping_executed_actions_keeps_the_raw_log_prob():
    policy = make_policy(init_scale=3.0)  # wide: many samples fall outside [-1, 1]
    obs = {OBS_STATE: torch.randn(64, 3)}
    with torch.no_grad():
        sample = policy.sample(obs, generator=torch.Generator().manual_seed(2))
    assert sample.actions.abs().max() <= 1.0
    assert (sample.scored.abs() > 1.0).any()
    torch.testing.assert_close(policy.log_prob(obs, sample.scored), sample.log_probs)
    # Scoring the clipped action instead would give a different (wrong) value.
    assert not torch.allclose(policy.log_prob(obs, sample.actions), sample.log_probs)


def test_densities_match_torch_distributions():
    torch.manual_seed(0)
    x, mean, scale = torch.randn(6, 4, 7), torch.randn(6, 4, 7), torch.rand(6, 4, 7) + 0.1
    torch.testing.assert_close(gaussian_log_prob(x, mean, scale), Normal(mean, scale).log_prob(x).sum(-1))
    torch.testing.assert_close(laplace_log_prob(x, mean, scale), Laplace(mean, scale).log_prob(x).sum(-1))


@pytest.mark.parametrize("sampler,dist", [(sample_gaussian, Normal), (sample_laplace, Laplace)])
def test_samplers_draw_from_the_scored_distribution(sampler, dist):
    loc, scale = torch.full((200_000,), 0.3), torch.full((200_000,), 0.5)
    draws = sampler(loc, scale, torch.Generator().manual_seed(0))
    reference = dist(loc, scale)
    assert float(draws.mean()) == pytest.approx(float(reference.mean[0]), abs=0.01)
    assert float(draws.std()) == pytest.approx(float(reference.stddev[0]), rel=0.02)


def test_log_prob_is_differentiable():
    policy = make_policy()
    obs = {OBS_STATE: torch.randn(3, 3)}
    with torch.no_grad():
        sample = policy.sample(obs)
    policy.log_prob(obs, sample.scored).sum().backward()
    assert policy.log_scale.grad is not None and policy.mean_net[0].weight.grad.abs().sum() > 0


def test_act_is_deterministic_and_bounded():
    policy = make_policy()
    obs = {OBS_STATE: torch.randn(4, 3) * 10}
    torch.testing.assert_close(policy.act(obs), policy.act(obs))
    assert policy.act(obs).abs().max() <= 1.0


def test_chunk_recorder_executes_h_of_H_then_requeries():
    policy = make_policy(chunk_size=4)
    runner = TrialRunner(policy, execute_steps=2)
    runner.begin("t", stochastic=True, seed=0)
    obs = {OBS_STATE: np.random.default_rng(0).normal(size=3).astype(np.float32)}
    first, query = runner.act(obs)
    chunk = query.actions
    torch.testing.assert_close(torch.as_tensor(first), chunk[0])
    torch.testing.assert_close(torch.as_tensor(runner.act(obs)[0]), chunk[1])
    assert runner.recorder.needs_query
    assert runner.act(obs)[1].actions is not chunk
    with pytest.raises(ValueError, match="execute_steps"):
        TrialRunner(policy, execute_steps=5)
    deterministic = TrialRunner(policy, execute_steps=4)
    deterministic.begin("d", stochastic=False)
    torch.testing.assert_close(
        torch.as_tensor(deterministic.act(obs)[0]), policy.act({OBS_STATE: torch.as_tensor(obs[OBS_STATE])[None]})[0, 0]
    )


def test_policy_sample_validates_shapes():
    with pytest.raises(ValueError, match=r"\[B, H, A\]"):
        PolicySample(actions=torch.zeros(2, 3), scored=torch.zeros(2, 3), log_probs=torch.zeros(2, 1))
    with pytest.raises(ValueError, match="log_probs"):
        PolicySample(actions=torch.zeros(2, 3, 1), scored=torch.zeros(2, 3), log_probs=torch.zeros(3, 1))


def test_config_validation():
    with pytest.raises(ValueError, match="distribution"):
        MLPPolicyConfig(state_dim=1, action_dim=1, distribution="cauchy")


def test_executed_mask_per_step_and_per_token():
    from ript.core.policy import executed_mask

    executed = torch.tensor([4, 2, 1])
    per_step = executed_mask(executed, 4, scores_per_step=True)
    assert per_step.tolist() == [[True] * 4, [True, True, False, False], [True, False, False, False]]
    per_token = executed_mask(executed, 2, scores_per_step=False)  # 2 tokens for a 4-step chunk
    assert per_token.all() and per_token.shape == (3, 2)
