"""Reusable pieces: positional encodings, attention with padding masks, MLPs and an encoder block.

Masks follow the data contract: a bool tensor with True for a real token. Attention never sees a padded key.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_positions(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed sine/cosine encodings `(length, dim)`; defined for any length, so no maximum sequence length."""
    half = (dim + 1) // 2
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(half, device=device, dtype=torch.float32) * (-math.log(10000.0) / half))
    angle = position * frequency[None, :]
    table = torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)[:, :dim]
    return table.to(dtype)


def pack_real_tokens(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's real tokens to the front and cut the columns no row needs.

    Exact for attention without positional bias (positions must already be added to the tokens): attention
    is invariant to the order of keys, and the padded ones are masked anyway. This makes the cost depend on
    the real token count rather than on the stored padding.
    """
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices
    keep = max(int(mask.sum(dim=1).max().item()), 1)
    order = order[:, :keep]
    packed = torch.gather(tokens, 1, order[..., None].expand(-1, -1, tokens.shape[-1]))
    return packed, torch.gather(mask, 1, order)


class FeedForward(nn.Module):
    """Two linear layers with GELU between: the MLP of a transformer block."""

    def __init__(self, width: int, hidden: int, dropout: float = 0.0, out_dim: int | None = None, bias=True):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, out_dim or width, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.gelu(self.fc1(x))))


class InputProjection(nn.Module):
    """The MLP that aligns frozen features of any size to the model width.

    A LayerNorm comes first because frozen CLIP features arrive L2-normalised (tiny per-dimension values).
    """

    def __init__(self, in_dim: int, width: int, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.mlp = FeedForward(in_dim, width, dropout, out_dim=width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(x))


class MultiHeadAttention(nn.Module):
    """Multi-head attention over `F.scaled_dot_product_attention`; self-attention when `context` is None.

    No dropout on the attention weights: on CPU it costs a random draw per (head, query, key), a quarter of
    a training step here; blocks apply dropout to their residual branches instead.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.query = nn.Linear(width, width)
        # A key bias adds the same score to every key of a query; softmax cancels it, so it would never learn.
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x `(B, L, W)` queries; context `(B, M, W)` keys/values (x when None); key_mask `(B, M)` True=real."""
        context = x if context is None else context
        query, key, value = self._split(self.query(x)), self._split(self.key(context)), self._split(self.value(context))
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)
        batch, _, length, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(batch, length, -1))


class EncoderBlock(nn.Module):
    """Pre-LayerNorm transformer block (self-attention, MLP), used by the VLE and OFE stacks."""

    def __init__(self, width: int, heads: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = MultiHeadAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = FeedForward(width, hidden, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.norm1(x), key_mask=key_mask))
        return x + self.dropout(self.mlp(self.norm2(x)))
