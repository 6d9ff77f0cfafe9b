"""A plain pre-LayerNorm transformer trunk with an optional boolean attention mask.

Attention is written with matmul + softmax (no fused kernels) so the ONNX export is a small,
portable graph and torch and onnxruntime compute the same thing.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, bias: Tensor | None, past: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x [B, S, D]; past: cached keys/values [2, B, heads, P, head_dim] of P earlier tokens that
        x may attend to. Returns the output and this call's own keys/values [2, B, heads, S, head_dim]."""
        b, s, d = x.shape
        qkv = self.qkv(x).view(b, s, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, kv = qkv[0], qkv[1:]  # [B, heads, S, head_dim], [2, B, heads, S, head_dim]
        keys, values = (
            (kv[0], kv[1]) if past is None else (torch.cat([past[0], kv[0]], 2), torch.cat([past[1], kv[1]], 2))
        )
        scores = q @ keys.transpose(-2, -1) / math.sqrt(self.head_dim)  # [B, heads, S, P + S]
        if bias is not None:
            scores = scores + bias
        attn = self.dropout(scores.softmax(dim=-1))
        return self.out((attn @ values).transpose(1, 2).reshape(b, s, d)), kv


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor, bias: Tensor | None, past: Tensor | None = None) -> tuple[Tensor, Tensor]:
        attended, kv = self.attn(self.norm1(x), bias, past)
        x = x + attended
        return x + self.mlp(self.norm2(x)), kv


class Trunk(nn.Module):
    """[B, S, D] -> [B, S, D]. `allowed` [S, S] bool: row i may attend to column j."""

    def __init__(self, dim: int, num_layers: int, num_heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, allowed: Tensor | None = None) -> Tensor:
        return self.forward_cached(x, allowed)[0]

    def forward_cached(
        self, x: Tensor, allowed: Tensor | None = None, past: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Like forward, with x also attending to cached tokens `past` [layers, 2, B, heads, P, hd].

        Returns (output, this call's keys/values [layers, 2, B, heads, S, hd]). `allowed` is
        [S, P + S]. A prefix that only attends to itself is encoded once and reused by every
        autoregressive step (prefix-LM caching).
        """
        # Additive bias instead of -inf: every row keeps at least one column, and no NaN can appear.
        bias = (
            None
            if allowed is None
            else torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill(~allowed, -1e9)
        )
        cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, bias, None if past is None else past[i])
            cache.append(kv)
        return self.norm(x), torch.stack(cache)


def causal_mask(prefix_len: int, seq_len: int) -> Tensor:
    """[L, P + L]: token i sees every prefix token and tokens <= i."""
    allowed = torch.ones(seq_len, prefix_len + seq_len, dtype=torch.bool)
    allowed[:, prefix_len:] = torch.tril(torch.ones(seq_len, seq_len, dtype=torch.bool))
    return allowed
