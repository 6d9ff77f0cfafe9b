"""Tokenized head (QueST-like): an autoregressive prior over FSQ action tokens.

The trunk reads [observation tokens ; BOS, t_1 .. t_{L-1}] with a prefix-LM mask, so position i
predicts t_{i+1} from the observation and the tokens before it. The sampling distribution is

    q(t_i | t_<i, c) = softmax(logits_i / T) restricted to the top-k logits, renormalised,

and log-probs are computed under exactly this q (temperature and top-k included), both when
sampling and when re-scoring for PPO. A token outside the current top-k has log-prob -inf.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


class TokenPrior(nn.Module):
    """Token embeddings in, next-token logits out. Id `vocab_size` is BOS."""

    def __init__(self, dim: int, vocab_size: int, num_tokens: int) -> None:
        super().__init__()
        self.vocab_size, self.num_tokens = vocab_size, num_tokens
        self.bos_id = vocab_size
        self.embed = nn.Embedding(vocab_size + 1, dim)
        self.pos = nn.Parameter(torch.randn(1, num_tokens, dim) * 0.02)
        self.out = nn.Linear(dim, vocab_size)

    def inputs(self, tokens: Tensor) -> Tensor:
        """Target tokens [B, L] -> shifted inputs [B, L] = [BOS, t_1 .. t_{L-1}]."""
        bos = torch.full_like(tokens[:, :1], self.bos_id)
        return torch.cat([bos, tokens[:, :-1]], dim=1)

    def embed_inputs(self, tokens_in: Tensor) -> Tensor:
        return self.embed(tokens_in) + self.pos


def token_log_softmax(logits: Tensor, temperature: float, top_k: int) -> Tensor:
    """log q over the vocabulary: [..., V] -> [..., V], -inf outside the top-k (top_k=0: none)."""
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.log_softmax(logits, dim=-1)


def token_log_prob(logits: Tensor, tokens: Tensor, temperature: float, top_k: int) -> Tensor:
    """Per-token log q(t_i | t_<i, c): logits [B, L, V], tokens [B, L] -> [B, L]."""
    return token_log_softmax(logits, temperature, top_k).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


StepLogits = Callable[[Tensor], Tensor]
"""tokens_in [B, L] -> logits [B, L, V] (causal: position i depends on tokens_in[:, :i + 1] only)."""


def sample_tokens(
    step_logits: StepLogits, tokens_like: Tensor, bos_id: int, temperature: float, top_k: int, uniforms: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Autoregressive sampling by inverse CDF from uniforms [B, L] (None: greedy argmax).

    tokens_like: any long tensor [B, L] on the right device (gives batch size and length).
    Returns ids [B, L] and their log-probs [B, L] under q. Explicit uniforms let a torch and an
    onnxruntime policy draw the same tokens.
    """
    tokens_in = torch.full_like(tokens_like, bos_id)
    ids = torch.zeros_like(tokens_like)
    log_probs = torch.zeros(tokens_like.shape, device=tokens_like.device)
    num_tokens = tokens_like.shape[1]
    for i in range(num_tokens):
        # Causal trunk: filling later positions with BOS does not change logits at position i.
        logq = token_log_softmax(step_logits(tokens_in)[:, i], temperature, top_k)  # [B, V]
        if uniforms is None:
            token = logq.argmax(dim=-1)
        else:
            cdf = logq.exp().cumsum(dim=-1)  # [B, V]
            u = (uniforms[:, i] * cdf[:, -1]).unsqueeze(-1)
            # First index with cdf > u: never a zero-probability (masked) token.
            token = torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp(max=cdf.shape[-1] - 1)
        ids[:, i] = token
        log_probs[:, i] = logq.gather(-1, token.unsqueeze(-1)).squeeze(-1)
        if i + 1 < num_tokens:
            tokens_in[:, i + 1] = token
    return ids, log_probs
