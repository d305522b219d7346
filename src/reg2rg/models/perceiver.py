"""Flamingo-style Perceiver resampler with RadFM's layout (loads ``RadFM_perceiver_fc.pth["perceiver"]``).

Defaults are RadFM's as Reg2RG uses them (dim 768, 32 latents, depth 6, heads 8 x 64, ff_mult 4):
69 tensors, 37,802,496 parameters. No biases except LayerNorms; keys and values attend over
``cat(media, latents)``; the output is ``LayerNorm(latents)``.

``latent_init_std`` only matters without RadFM's weights: RadFM draws the latents from N(0, 1), and at that
scale a random resampler's output is the latents themselves whatever the image (the 8 demo tokens of a region
move by 2-4% of their norm between studies); at 0.02 (BLIP-2's query init) they move by 18-23%.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class PerceiverAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_kv = nn.Linear(dim, 2 * heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        media = self.norm_media(media)  # (B, N, D)
        latents = self.norm_latents(latents)  # (B, K, D)
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([media, latents], dim=1)).chunk(2, dim=-1)
        q, k, v = (rearrange(t, "b n (h e) -> b h n e", h=self.heads) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, K, E)
        return self.to_out(rearrange(out, "b h n e -> b n (h e)"))  # (B, K, D)


def perceiver_feed_forward(dim: int, mult: int) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(), nn.Linear(dim * mult, dim, bias=False)
    )


class PerceiverResampler(nn.Module):
    """Media tokens (B, N, dim) -> ``num_latents`` tokens (B, num_latents, dim)."""

    def __init__(
        self,
        dim: int = 768,
        depth: int = 6,
        heads: int = 8,
        dim_head: int = 64,
        num_latents: int = 32,
        ff_mult: int = 4,
        latent_init_std: float = 1.0,
    ):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * latent_init_std)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, heads, dim_head), perceiver_feed_forward(dim, ff_mult)])
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    @property
    def num_latents(self) -> int:
        return self.latents.shape[0]

    def forward(self, media: torch.Tensor) -> torch.Tensor:
        latents = self.latents.expand(media.shape[0], -1, -1)  # (B, K, D)
        for attention, feed_forward in self.layers:
            latents = latents + attention(media, latents)
            latents = latents + feed_forward(latents)
        return self.norm(latents)  # (B, K, D)
