"""The hybrid token encoder: IoU, mask and point tokens attend to each other (self-attention) and, both ways,
to the image tokens (two-way cross-attention, as in SAM's mask decoder)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention of queries (B, Nq, C) over keys / values (B, Nk, C)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        def split(x: torch.Tensor) -> torch.Tensor:  # (B, N, C) -> (B, heads, N, C / heads)
            return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q_proj(q)), split(self.k_proj(k)), split(self.v_proj(v)))
        return self.out_proj(out.transpose(1, 2).flatten(2))


class MLP(nn.Sequential):
    def __init__(self, dim: int, hidden: int, out: int | None = None):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out or dim))


class TwoWayBlock(nn.Module):
    """Tokens: self-attention, cross-attention to the image, MLP; then the image attends to the tokens.
    Positional encodings are added to queries and keys, never to values."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.cross_token_to_image = Attention(dim, heads)
        self.mlp = MLP(dim, 2 * dim)
        self.cross_image_to_token = Attention(dim, heads)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(4))

    def forward(
        self, tokens: torch.Tensor, image: torch.Tensor, token_pe: torch.Tensor, image_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q = tokens + token_pe
        tokens = self.norms[0](tokens + self.self_attn(q, q, tokens))
        tokens = self.norms[1](tokens + self.cross_token_to_image(tokens + token_pe, image + image_pe, image))
        tokens = self.norms[2](tokens + self.mlp(tokens))
        image = self.norms[3](image + self.cross_image_to_token(image + image_pe, tokens + token_pe, tokens))
        return tokens, image


class HybridTokenEncoder(nn.Module):
    """(tokens (B, T, C), image (B, N, C), their positional encodings) -> hybrid tokens Z: (tokens, image)."""

    def __init__(self, dim: int, depth: int, heads: int):
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads) for _ in range(depth))
        self.final_attn = Attention(dim, heads)
        self.final_norm = nn.LayerNorm(dim)

    def forward(
        self, tokens: torch.Tensor, image: torch.Tensor, token_pe: torch.Tensor, image_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.layers:
            tokens, image = layer(tokens, image, token_pe, image_pe)
        tokens = self.final_norm(tokens + self.final_attn(tokens + token_pe, image + image_pe, image))
        return tokens, image
