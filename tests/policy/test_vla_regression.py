"""Regression head: closed-form densities, sampling/scoring consistency, exploration scale, clipping."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, Laplace, Normal
from vla_helpers import random_obs, tiny_config

from ript.core.distributions import gaussian_log_prob, laplace_log_prob, standard_noise
from ript.policies.checkpoint import load_checkpoint, save_checkpoint
from ript.policies.heads.regression import regression_log_prob, regression_sample
from ript.policies.vla import build_policy


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
def test_densities_match_torch_distributions(kind):
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 4, 7, generator=g)
    scale = torch.rand(5, 4, 7, generator=g) + 0.05
    x = mean + torch.randn(5, 4, 7, generator=g)
    ours = (laplace_log_prob if kind == "laplace" else gaussian_log_prob)(x, mean, scale)
    ref = Independent((Laplace if kind == "laplace" else Normal)(mean, scale), 1).log_prob(x)
    assert ours.shape == (5, 4)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
def test_standard_noise_has_unit_scale(kind):
    eps = standard_noise(kind, (200_000,), torch.Generator().manual_seed(1))
    # Laplace(0, 1): E|x| = 1; N(0, 1): std = 1.
    stat = eps.abs().mean() if kind == "laplace" else eps.std()
    assert abs(float(stat) - 1.0) < 0.01
    assert abs(float(eps.mean())) < 0.01


@pytest.mark.parametrize("loss", ["l1", "mse"])
def test_policy_sample_and_log_prob_agree_with_exploration_and_clipping(loss):
    config = tiny_config("regression", regression={"loss": loss, "init_scale": 0.5, "gripper": "continuous"})
    policy = build_policy(config).eval()
    policy.exploration_scale = 3.0  # large: many samples leave [-1, 1] and get clipped
    obs = random_obs(config, batch=6)
    sample = policy.sample(obs, generator=torch.Generator().manual_seed(0))

    assert sample.actions.shape == sample.scored.shape == (6, config.chunk_size, config.action_dim)
    assert sample.log_probs.shape == (6, config.chunk_size)  # T = H: one per action step
    assert float(sample.actions.abs().max()) <= 1.0
    clipped = sample.scored.abs() > 1.0
    assert bool(clipped.any()), "test needs some clipped actions"
    torch.testing.assert_close(sample.actions[~clipped], sample.scored[~clipped])

    # Re-scoring the raw sample reproduces the sampling log-probs (clipping did not touch them) ...
    rescored = policy.log_prob(obs, sample.scored)
    torch.testing.assert_close(rescored, sample.log_probs, rtol=1e-5, atol=1e-4)
    # ... and both equal the density of Laplace/Normal(mu, lambda * sigma) from torch.distributions.
    mean, scale = policy.regression_params(policy.prepare(obs))
    dist = (Laplace if loss == "l1" else Normal)(mean, 3.0 * scale)
    torch.testing.assert_close(rescored, dist.log_prob(sample.scored).sum(-1), rtol=1e-5, atol=1e-4)
    # Sequence log-prob = sum of per-step log-probs.
    torch.testing.assert_close(
        policy.chunk_log_prob(obs, sample.scored), dist.log_prob(sample.scored).sum((1, 2)), rtol=1e-5, atol=1e-3
    )
    # The exploration scale is part of the scored distribution.
    policy.exploration_scale = 1.0
    assert not torch.allclose(policy.log_prob(obs, sample.scored), rescored)


@pytest.mark.parametrize("loss", ["l1", "mse"])
def test_bernoulli_gripper_samples_and_scores_open_close(loss):
    config = tiny_config("regression", regression={"loss": loss, "init_scale": 0.5})
    policy = build_policy(config).eval()
    with torch.no_grad():
        policy.head.mean_out.bias[6] = 0.7  # p(close) = sigmoid(0.7 / T) away from 1/2
    policy.gripper_temperature = 2.0
    obs = random_obs(config, batch=4)
    sample = policy.sample(obs, generator=torch.Generator().manual_seed(0))
    gripper = sample.scored[..., 6]
    assert set(gripper.unique().tolist()) <= {-1.0, 1.0} and torch.equal(sample.actions[..., 6], gripper)
    # Scored exactly: the continuous dims' density + log Bernoulli(sigmoid(logit / T)) of the outcome.
    mean, scale = policy.regression_params(policy.prepare(obs))
    continuous = (Laplace if loss == "l1" else Normal)(mean[..., :6], scale[..., :6])
    bernoulli = torch.distributions.Bernoulli(logits=mean[..., 6] / 2.0)
    expected = continuous.log_prob(sample.scored[..., :6]).sum(-1) + bernoulli.log_prob((gripper > 0).float())
    torch.testing.assert_close(policy.log_prob(obs, sample.scored), expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(sample.log_probs, expected, rtol=1e-5, atol=1e-4)
    # The empirical close rate is p(close); the temperature is part of the scored distribution.
    many = {key: value[:1].expand(4000, *value.shape[1:]) for key, value in obs.items()}
    closed = (policy.sample(many, generator=torch.Generator().manual_seed(1)).scored[:, 0, 6] > 0).float().mean()
    assert abs(float(closed) - float(bernoulli.probs[0, 0].detach())) < 0.03
    rescored = policy.log_prob(obs, sample.scored)
    policy.gripper_temperature = 1.0
    assert not torch.allclose(policy.log_prob(obs, sample.scored), rescored)
    # The mode closes exactly where the logit is positive.
    assert torch.equal(policy.act(obs)[..., 6], torch.where(mean[..., 6] > 0, 1.0, -1.0))


def test_checkpoint_without_gripper_option_loads_as_continuous(tmp_path):
    # A checkpoint written before the option existed: its gripper was trained and scored continuous.
    from ript.policies.config import VLAConfig

    data = tiny_config("regression").to_dict()
    del data["regression"]["gripper"]
    assert VLAConfig.from_dict(data).regression.gripper == "continuous"
    assert VLAConfig(**{**data, "regression": data["regression"]}).regression.gripper == "bernoulli"


def test_empirical_spread_matches_exploration_scale():
    mean = torch.zeros(1, 1, 1)
    scale = torch.full((1, 1, 1), 0.2)
    eps = standard_noise("laplace", (100_000, 1, 1), torch.Generator().manual_seed(3))
    _, raw, logp = regression_sample(mean.expand_as(eps), scale.expand_as(eps), eps, "laplace", 2.0, -1, 1)
    assert abs(float(raw.abs().mean()) - 0.4) < 0.01  # E|x - mu| = b = lambda * sigma
    torch.testing.assert_close(logp, regression_log_prob(raw, mean, scale, "laplace", 2.0).expand_as(logp))
    # Log-likelihood of the samples is the negative entropy of Laplace(0.4): 1 + log(2b).
    assert abs(-float(logp.mean()) - (1 + math.log(0.8))) < 0.02


def test_exploration_floor_lifts_only_the_small_scales_and_is_scored():
    mean = torch.zeros(1, 1, 2)
    scale = torch.tensor([[[0.002, 0.3]]])  # one dimension the demos never varied, one they did
    eps = standard_noise("gaussian", (50_000, 1, 2), torch.Generator().manual_seed(4))
    _, raw, logp = regression_sample(mean.expand_as(eps), scale.expand_as(eps), eps, "gaussian", 1.0, -1, 1, floor=0.05)
    spread = raw.std(dim=(0, 1)).squeeze()
    assert abs(float(spread[0]) - 0.05) < 0.002  # floored
    assert abs(float(spread[1]) - 0.3) < 0.01  # above the floor: untouched
    expected = Normal(mean, torch.tensor([[[0.05, 0.3]]])).log_prob(raw).sum(-1)
    torch.testing.assert_close(logp, expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(regression_log_prob(raw, mean, scale, "gaussian", 1.0, 0.05), logp)
    # Without the floor the same raw actions score very differently: the floor is part of pi.
    assert float((regression_log_prob(raw, mean, scale, "gaussian", 1.0) - logp).abs().mean()) > 10


def test_policy_exploration_floor_is_saved_and_scored(tmp_path):
    config = tiny_config("regression", regression={"init_scale": 0.01, "min_scale": 0.001})
    policy = build_policy(config).eval()
    policy.exploration_floor = 0.2
    obs = random_obs(config, batch=3)
    sample = policy.sample(obs, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(policy.log_prob(obs, sample.scored), sample.log_probs, rtol=1e-5, atol=1e-4)
    mean, _ = policy.regression_params(policy.prepare(obs))
    assert float((sample.scored - mean.detach()).abs().mean()) > 0.05  # spread set by the floor, not by 0.01
    path = save_checkpoint(tmp_path / "p.pt", policy)
    loaded, _ = load_checkpoint(path)
    assert loaded.exploration_floor == 0.2


def test_fixed_action_dims_are_executed_at_the_mean_and_not_scored(tmp_path):
    config = tiny_config("regression", regression={"init_scale": 0.3, "gripper": "continuous"})
    policy = build_policy(config).eval()
    policy.fixed_action_dims = (3, 4, 5)
    obs = random_obs(config, batch=5)
    sample = policy.sample(obs, generator=torch.Generator().manual_seed(1))
    mean, scale = policy.regression_params(policy.prepare(obs))
    mean, scale = mean.detach(), scale.detach()
    torch.testing.assert_close(sample.scored[..., 3:6], mean[..., 3:6])  # no noise there
    assert float((sample.scored[..., :3] - mean[..., :3]).abs().mean()) > 0.05  # noise elsewhere
    explored = [0, 1, 2, 6]
    expected = Laplace(mean[..., explored], scale[..., explored]).log_prob(sample.scored[..., explored]).sum(-1)
    torch.testing.assert_close(sample.log_probs, expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(policy.log_prob(obs, sample.scored), sample.log_probs, rtol=1e-5, atol=1e-4)
    # Moving a fixed dimension's value changes nothing in the score.
    moved = sample.scored.clone()
    moved[..., 4] += 0.5
    torch.testing.assert_close(policy.log_prob(obs, moved), sample.log_probs, rtol=1e-5, atol=1e-4)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "p.pt", policy))
    assert loaded.fixed_action_dims == (3, 4, 5)
    with pytest.raises(ValueError, match="fixed_action_dims"):
        tiny_config("regression", regression={"fixed_action_dims": (7,)})


def test_ript_train_knobs_go_through_the_config_checks(tmp_path):
    """`ript train --set fixed_action_dims=[7]` on a 7-dim policy is a clear error before any env
    starts (it used to set the attribute and fail at the first sample with an IndexError)."""
    from ript.cli.train import LiberoTrainConfig, build

    path = save_checkpoint(tmp_path / "p.pt", build_policy(tiny_config("regression")))
    with pytest.raises(ValueError, match="fixed_action_dims"):
        build(LiberoTrainConfig(checkpoint=str(path), fixed_action_dims=[7]), progress=False)
    with pytest.raises(ValueError, match="exploration_floor|floor"):
        build(LiberoTrainConfig(checkpoint=str(path), exploration_floor=-1.0), progress=False)
    with pytest.raises(ValueError, match="does not apply"):
        build(LiberoTrainConfig(checkpoint=str(path), temperature=0.5), progress=False)


def test_log_prob_is_differentiable_and_sample_is_not():
    config = tiny_config("regression")
    policy = build_policy(config)
    obs = random_obs(config, batch=4)
    sample = policy.sample(obs)
    assert not sample.log_probs.requires_grad and not sample.actions.requires_grad
    logp = policy.log_prob(obs, sample.scored)
    logp.sum().backward()
    grads = {name: p.grad for name, p in policy.named_parameters()}
    assert grads["head.scale_head.2.weight"] is not None and grads["head.mean_out.weight"].abs().sum() > 0
    assert grads["trunk.blocks.0.attn.qkv.weight"].abs().sum() > 0


def test_act_is_the_clipped_mean():
    config = tiny_config("regression", input_mode="image")
    policy = build_policy(config).eval()
    obs = random_obs(config, batch=2)
    mean, _ = policy.regression_params(policy.prepare(obs))
    torch.testing.assert_close(policy.act(obs)[..., :6], mean[..., :6].clamp(-1, 1))
    torch.testing.assert_close(policy.act(obs)[..., 6], torch.where(mean[..., 6] > 0, 1.0, -1.0))  # Bernoulli mode


def test_config_validation_quotes_bad_values():
    with pytest.raises(ValueError, match="loss"):
        tiny_config("regression", regression={"loss": "huber"})
    with pytest.raises(ValueError, match="execute_steps"):
        tiny_config("regression", execute_steps=9)
    with pytest.raises(ValueError, match="features"):
        policy = build_policy(tiny_config("regression"))
        obs = random_obs(policy.config)
        obs["observation.state"] = obs["observation.state"][:, :5]
        policy.sample(obs)


def test_only_the_heads_own_exploration_knobs_exist():
    regression = build_policy(tiny_config("regression"))
    tokenized = build_policy(tiny_config("tokenized"))
    assert hasattr(regression, "exploration_scale") and not hasattr(regression, "temperature")
    assert hasattr(tokenized, "temperature") and hasattr(tokenized, "top_k")
    assert not hasattr(tokenized, "exploration_scale")


def test_time_correlated_noise_is_scored_exactly_and_prefixes_stay_exact():
    # Gaussian AR(1) noise along the chunk is a multivariate normal with covariance
    # s_i s_j rho^|i-j| per dimension: the per-step log-probs must sum to its density, and the
    # first k steps (what an execute-k query ran) to the density of that prefix.
    config = tiny_config(
        "regression", regression={"loss": "mse", "init_scale": 0.3, "gripper": "continuous", "noise_correlation": 0.8}
    )
    policy = build_policy(config).eval()
    obs = random_obs(config, batch=5)
    sample = policy.sample(obs, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(policy.log_prob(obs, sample.scored), sample.log_probs, rtol=1e-5, atol=1e-4)
    mean, scale = (t.detach() for t in policy.regression_params(policy.prepare(obs)))
    steps = torch.arange(config.chunk_size)
    rho_power = 0.8 ** (steps[:, None] - steps[None, :]).abs().float()  # [H, H]
    for k in (config.chunk_size, 2):
        x, mu, s = (t[:, :k].transpose(1, 2) for t in (sample.scored, mean, scale))  # [B, A, k]
        cov = s[..., :, None] * s[..., None, :] * rho_power[:k, :k]
        expected = torch.distributions.MultivariateNormal(mu, covariance_matrix=cov).log_prob(x).sum(-1)
        torch.testing.assert_close(sample.log_probs[:, :k].sum(-1), expected, rtol=1e-4, atol=1e-3)
    # The draws are correlated along the chunk, with the per-step spread of the uncorrelated noise.
    many = {key: value[:1].expand(4000, *value.shape[1:]) for key, value in obs.items()}
    z = ((policy.sample(many, generator=torch.Generator().manual_seed(1)).scored - mean[:1]) / scale[:1])[..., 0]
    assert abs(float(torch.corrcoef(z[:, :2].T)[0, 1]) - 0.8) < 0.03 and abs(float(z.std()) - 1.0) < 0.05
    policy.noise_correlation = 0.0
    assert not torch.allclose(policy.log_prob(obs, sample.scored), sample.log_probs)


def test_noise_runs_on_across_queries_and_a_whole_trial_is_scored_exactly():
    # With correlate_across_queries, one trial's executed noise is one AR(1) process: the per-query
    # log-probs of the recorded trial must sum to the multivariate normal density of every executed
    # step (covariance s_i s_j rho^|i-j| over the trial's steps, each step's mu and s from its query).
    from ript.core.recorder import ChunkRecorder

    rho, execute = 0.8, 3
    config = tiny_config(
        "regression",
        regression={
            "loss": "mse",
            "init_scale": 0.3,
            "gripper": "continuous",
            "noise_correlation": rho,
            "correlate_across_queries": True,
        },
    )
    policy = build_policy(config).eval()
    assert policy.links_queries
    recorder = ChunkRecorder(execute, config.chunk_size, policy.scores_per_step)
    generator = torch.Generator().manual_seed(0)
    means, scales = [], []
    for q in range(3):
        row = {key: value[0] for key, value in random_obs(config, batch=1, seed=q).items()}
        inputs = recorder.with_previous_query(row, config.action_dim)
        batch = {key: torch.as_tensor(value)[None] for key, value in inputs.items()}
        sample = policy.sample(batch, generator)
        mean, scale = (t.detach()[0, :execute] for t in policy.regression_params(policy.prepare(batch)))
        means.append(mean), scales.append(scale)
        recorder.add_chunk(inputs, sample.actions[0], sample.scored[0], sample.log_probs[0])
        for _ in range(execute):
            recorder.next_action()
    trajectory = recorder.trajectory()
    assert trajectory.obs["previous_query/continues"].tolist() == [False, True, True]
    rescored = policy.log_prob(trajectory.obs, trajectory.scored)
    torch.testing.assert_close(rescored, trajectory.log_probs, rtol=1e-5, atol=1e-4)
    steps = torch.arange(3 * execute)
    rho_power = rho ** (steps[:, None] - steps[None, :]).abs().float()
    x = trajectory.scored[:, :execute].reshape(-1, config.action_dim).T  # [A, steps]
    mu, s = (torch.cat(parts).T for parts in (means, scales))
    cov = s[:, :, None] * s[:, None, :] * rho_power
    expected = torch.distributions.MultivariateNormal(mu, covariance_matrix=cov).log_prob(x).sum()
    assert float(trajectory.log_probs[trajectory.mask].sum()) == pytest.approx(float(expected), rel=1e-4, abs=1e-3)
    # The link is part of the scored distribution: scored as independent queries, the trial differs.
    policy.correlate_across_queries = False
    assert not torch.allclose(policy.log_prob(trajectory.obs, trajectory.scored), trajectory.log_probs)


def test_noise_across_queries_is_correlated_at_the_boundary_and_refuses_a_bad_link():
    config = tiny_config(
        "regression",
        regression={"init_scale": 0.3, "gripper": "continuous", "noise_correlation": 0.8},
    )
    policy = build_policy(config).eval()
    policy.correlate_across_queries = True
    obs = {key: value[:1].expand(4000, *value.shape[1:]) for key, value in random_obs(config, batch=1).items()}
    first = policy.sample(obs, torch.Generator().manual_seed(1))
    linked = {
        **obs,
        **{f"previous_query/obs/{key}": value for key, value in obs.items()},
        "previous_query/action": first.scored[:, 1],
        "previous_query/step": torch.full((4000,), 1),
        "previous_query/continues": torch.ones(4000, dtype=torch.bool),
    }
    second = policy.sample(linked, torch.Generator().manual_seed(2))
    mean, scale = (t.detach()[0] for t in policy.regression_params(policy.prepare(obs)))
    z_last = ((first.scored[:, 1] - mean[1]) / scale[1])[:, 0]
    z_next = ((second.scored[:, 0] - mean[0]) / scale[0])[:, 0]
    assert abs(float(torch.corrcoef(torch.stack([z_last, z_next]))[0, 1]) - 0.8) < 0.04
    assert abs(float(z_next.std() / z_last.std()) - 1.0) < 0.05  # each step's spread unchanged
    with pytest.raises(ValueError, match="previous_query/step"):
        policy.log_prob({**linked, "previous_query/step": torch.full((4000,), 7)}, second.scored)
    with pytest.raises(KeyError, match="lacks"):
        policy.log_prob({k: v for k, v in linked.items() if k != "previous_query/action"}, second.scored)
