"""The mask-driven visual extractor (MAIRA-SEG / Osprey style, taken to 3D through R² pooling): two tokens per mask.

Each region mask is tokenized like the image: its share of every token cell, averaged per slice (D values, as
the global tokens) and on the chosen slices pooled by s (T values, as the region tokens), N = D + T weights that
line up with the R²-pooled visual tokens of every feature layer. Mask token: per layer, the weighted mean of the
visual tokens (mask pooling); the layers concatenated and projected. Spatial token: the N weights projected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reg2rg.medregion.r2_pooling import r2_pool


def mask_weights(masks: torch.Tensor, slices: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, R, D, H, W) masks in {0, 1}, (B, s) chosen slices (-1: none) and the (h, w) token grid -> (B, R, D + T):
    the masks tokenized by R² pooling (each value the mask's share of its tokens' pixels)."""
    batch, regions, depth, height, width = masks.shape
    cells = F.adaptive_avg_pool2d(masks.float().reshape(-1, height, width), grid)  # (B*R*D, h, w)
    cells = cells.reshape(batch, regions, depth, *grid).transpose(1, 2)  # (B, D, h, w) per region: (B, D, h, w, R)
    pooled = r2_pool(cells.permute(0, 1, 3, 4, 2), slices)  # (B, D + T, R)
    return pooled.transpose(1, 2)


class MaskDrivenExtractor(nn.Module):
    """(B, L, N, C) R²-pooled multi-level tokens and (B, R, N) mask weights -> (B, R, 2, dim)."""

    def __init__(self, levels: int, channels: int, positions: int, dim: int):
        super().__init__()
        self.mask_projection = nn.Sequential(nn.Linear(levels * channels, dim), nn.GELU(), nn.Linear(dim, dim))
        self.spatial_projection = nn.Sequential(nn.Linear(positions, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, level_tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        share = weights / weights.sum(dim=2, keepdim=True).clamp(min=1e-6)  # (B, R, N); an empty mask: zeros
        pooled = torch.einsum("brn,blnc->brlc", share, level_tokens).flatten(2)  # (B, R, L*C)
        mask_token = self.mask_projection(pooled)
        spatial_token = self.spatial_projection(weights)
        return torch.stack([mask_token, spatial_token], dim=2)
