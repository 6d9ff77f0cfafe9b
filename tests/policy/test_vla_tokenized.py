"""Tokenized head: FSQ codes, and sampling under exactly the temperature/top-k distribution it scores."""

from __future__ import annotations

import pytest
import torch
from vla_helpers import random_obs, tiny_config

from ript.policies.heads.tokenized import sample_tokens, token_log_prob, token_log_softmax
from ript.policies.tokenizer import FSQ
from ript.policies.vla import build_policy


def test_fsq_ids_round_trip():
    fsq = FSQ((8, 5, 3))
    ids = torch.arange(8 * 5 * 3)
    codes = fsq.ids_to_codes(ids)
    assert float(codes.min()) == -1.0 and float(codes.max()) == 1.0
    # Codes are exact grid points; quantising their pre-image gives the same ids back.
    z = torch.atanh(codes.clamp(-0.999999, 0.999999))
    _, digits = fsq.quantize(z)
    assert torch.equal(fsq.digits_to_ids(digits), ids)


def test_fsq_straight_through_gradient():
    fsq = FSQ((5, 5))
    z = torch.randn(10, 2, requires_grad=True)
    codes, _ = fsq.quantize(z)
    codes.sum().backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0


VOCAB, LENGTH = 6, 2
TABLE = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, 0.3], [0.1, 1.5, -0.5, 1.0, 0.0, 2.0]])


def toy_step_logits(tokens_in: torch.Tensor) -> torch.Tensor:
    """A causal toy prior: position 0 fixed logits, position 1 depends on token 0."""
    batch = tokens_in.shape[0]
    first = TABLE[0].expand(batch, VOCAB)
    prev = tokens_in[:, 1].clamp(max=VOCAB - 1).float().unsqueeze(-1)
    second = TABLE[1] + 0.7 * prev * torch.linspace(-1, 1, VOCAB)
    return torch.stack([first, second], dim=1)  # [B, 2, V]


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.7, 3), (1.5, 2)])
def test_token_samples_follow_the_scored_distribution(temperature, top_k):
    n = 40_000
    like = torch.zeros(n, LENGTH, dtype=torch.long)
    uniforms = torch.rand(n, LENGTH, generator=torch.Generator().manual_seed(0))
    ids, logp = sample_tokens(toy_step_logits, like, VOCAB, temperature, top_k, uniforms)

    # Returned log-probs equal a teacher-forced re-score under the same temperature/top-k.
    tokens_in = torch.cat([torch.full_like(ids[:, :1], VOCAB), ids[:, :-1]], dim=1)
    torch.testing.assert_close(logp, token_log_prob(toy_step_logits(tokens_in), ids, temperature, top_k))
    assert torch.isfinite(logp).all(), "a token outside the top-k was sampled"

    # Empirical joint frequencies match exp(sum of per-token log-probs) (sequence = sum of steps).
    joint = ids[:, 0] * VOCAB + ids[:, 1]
    freq = torch.bincount(joint, minlength=VOCAB * VOCAB).float() / n
    grid = torch.cartesian_prod(torch.arange(VOCAB), torch.arange(VOCAB))
    grid_in = torch.cat([torch.full_like(grid[:, :1], VOCAB), grid[:, :1]], dim=1)
    prob = token_log_prob(toy_step_logits(grid_in), grid, temperature, top_k).sum(-1).exp()
    assert abs(float(prob.sum()) - 1.0) < 1e-5
    assert float((freq - prob).abs().max()) < 0.01
    assert bool((freq[prob == 0] == 0).all())
    if top_k:
        assert int((prob > 0).sum()) <= top_k * top_k


def test_top_k_masks_the_rest_to_minus_infinity():
    logq = token_log_softmax(TABLE, 1.0, 2)
    assert int(torch.isfinite(logq).sum(-1)[0]) == 2
    torch.testing.assert_close(logq.exp().sum(-1), torch.ones(2))


def test_policy_sample_rescore_gradient_and_greedy_act():
    config = tiny_config(
        "tokenized",
        tokenized={
            "fsq_levels": (5, 4),
            "tokens_per_chunk": 2,
            "tokenizer_hidden_dim": 64,
            "temperature": 0.8,
            "top_k": 5,
        },
    )
    policy = build_policy(config).eval()
    obs = random_obs(config, batch=5)
    sample = policy.sample(obs, generator=torch.Generator().manual_seed(0))
    assert sample.scored.dtype == torch.long and sample.scored.shape == (5, 2)
    assert sample.log_probs.shape == (5, 2) and sample.actions.shape == (5, 4, 7)
    logp = policy.log_prob(obs, sample.scored)
    torch.testing.assert_close(logp, sample.log_probs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(policy.chunk_log_prob(obs, sample.scored), sample.log_probs.sum(1), rtol=1e-5, atol=1e-5)
    logp.sum().backward()
    assert float(policy.prior.out.weight.grad.abs().sum()) > 0
    assert float(policy.trunk.blocks[0].attn.qkv.weight.grad.abs().sum()) > 0
    # Temperature is part of the scored distribution.
    policy.temperature = 1.0
    assert not torch.allclose(policy.log_prob(obs, sample.scored), sample.log_probs)
    # Greedy act decodes the argmax tokens.
    greedy_ids, _ = policy.head_distribution.tokens(policy.prepare(obs), None)
    torch.testing.assert_close(policy.act(obs), policy.decode_tokens(greedy_ids).clamp(-1, 1))
