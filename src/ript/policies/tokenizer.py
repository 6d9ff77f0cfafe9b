"""FSQ action tokenizer (finite scalar quantisation, Mentzer et al. 2023), as QueST uses it.

An MLP autoencoder maps an action chunk [H, A] to L latent codes of len(levels) dims each; every
code dim is squashed to [0, levels_i - 1] and rounded (straight-through gradient), so a code is
a mixed-radix integer in [0, prod(levels)): one token. There is no codebook to collapse.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class FSQ(nn.Module):
    """Continuous [..., d] <-> digits [..., d] <-> token ids [...]; d = len(levels)."""

    def __init__(self, levels: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.long))
        radix = torch.cumprod(torch.tensor((1,) + tuple(levels[:-1]), dtype=torch.long), dim=0)
        self.register_buffer("radix", radix)  # id = sum(digit_i * radix_i)

    def quantize(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z [..., d] -> (normalised codes in [-1, 1] with straight-through gradient, digits long)."""
        top = (self.levels - 1).to(z.dtype)
        y = (torch.tanh(z) + 1.0) * 0.5 * top  # in [0, levels - 1]
        digits = torch.round(y)
        y_q = y + (digits - y).detach()  # straight-through estimator
        return y_q / top * 2.0 - 1.0, digits.long()

    def digits_to_ids(self, digits: Tensor) -> Tensor:
        return (digits * self.radix).sum(dim=-1)

    def ids_to_codes(self, ids: Tensor) -> Tensor:
        """ids [...] -> normalised codes [..., d] in [-1, 1]."""
        digits = torch.div(ids.unsqueeze(-1), self.radix, rounding_mode="floor") % self.levels
        return digits.float() / (self.levels - 1).float() * 2.0 - 1.0


class ActionTokenizer(nn.Module):
    """Action chunk [B, H, A] <-> token ids [B, L]."""

    def __init__(
        self, chunk_size: int, action_dim: int, num_tokens: int, levels: tuple[int, ...], hidden_dim: int
    ) -> None:
        super().__init__()
        self.chunk_size, self.action_dim, self.num_tokens = chunk_size, action_dim, num_tokens
        self.code_dim = len(levels)
        self.fsq = FSQ(levels)
        self.encoder = nn.Sequential(
            nn.Linear(chunk_size * action_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, num_tokens * self.code_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(num_tokens * self.code_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, chunk_size * action_dim),
        )

    def encode(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """actions [B, H, A] -> (codes [B, L, d] with straight-through gradient, ids [B, L])."""
        z = self.encoder(actions.flatten(1)).view(-1, self.num_tokens, self.code_dim)
        codes, digits = self.fsq.quantize(z)
        return codes, self.fsq.digits_to_ids(digits)

    def decode_codes(self, codes: Tensor) -> Tensor:
        return self.decoder(codes.flatten(1)).view(-1, self.chunk_size, self.action_dim)

    def decode(self, ids: Tensor) -> Tensor:
        """ids [B, L] -> actions [B, H, A]."""
        return self.decode_codes(self.fsq.ids_to_codes(ids))

    def reconstruction_loss(self, actions: Tensor) -> Tensor:
        codes, _ = self.encode(actions)
        return (self.decode_codes(codes) - actions).abs().mean()
