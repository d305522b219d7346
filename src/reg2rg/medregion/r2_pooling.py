"""R² token pooling: D global tokens (one per slice) plus T region-representative tokens from s slices.

Global tokens: the mean of each slice's h x w visual tokens. Region-representative tokens: for each region, the
slice with the most mask pixels, its token grid pooled by spatial adaptive average pooling by a factor s (the
number of slices), so that s slices give s x (T / s) = T tokens. LITA's slow tokens (the ablation) take s
uniformly spaced slices instead. The paper's 256 x 256 x 32 input and a /14 ViT: D = 32, T = 18 x 18 = 324,
s = 6 regions of 54 tokens (a 9 x 6 grid) each; D + T = 356 vision tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SLICE_SAMPLINGS = ("region", "uniform")  # R² (the paper) or LITA


def global_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w, C) -> (B, D, C): each slice's mean visual token."""
    return tokens.mean(dim=(2, 3))


def representative_slices(masks: torch.Tensor) -> torch.Tensor:
    """(B, R, D, H, W) region masks -> (B, R) long: the slice with the most mask pixels (the first on ties), -1
    for a region without any mask pixel."""
    pixels = masks.flatten(3).sum(dim=3)  # (B, R, D)
    best = pixels.argmax(dim=2)
    return torch.where(pixels.amax(dim=2) > 0, best, torch.full_like(best, -1))


def uniform_slices(depth: int, count: int) -> torch.Tensor:
    """LITA: ``count`` slices spread evenly over ``depth``, the centre of each of ``count`` equal parts."""
    return ((torch.arange(count) + 0.5) * depth / count).long()


def pooled_grid(height: int, width: int, factor: int) -> tuple[int, int]:
    """The (h', w') grid a (height, width) token grid is pooled to so that h' x w' = height x width / factor:
    ``factor`` = a x b with a the largest divisor not above its square root; h' = height / a, w' = width / b."""
    a = max(d for d in range(1, math.isqrt(factor) + 1) if factor % d == 0)
    b = factor // a
    if height % a or width % b:
        raise ValueError(f"a {height} x {width} token grid cannot be pooled by {factor} ({a} x {b} cells)")
    return height // a, width // b


def pool_slices(grids: torch.Tensor, factor: int) -> torch.Tensor:
    """(N, h, w, C) token grids -> (N, h*w/factor, C) by spatial adaptive average pooling."""
    size = pooled_grid(grids.shape[1], grids.shape[2], factor)
    pooled = F.adaptive_avg_pool2d(grids.permute(0, 3, 1, 2), size)  # (N, C, h', w')
    return pooled.flatten(2).transpose(1, 2)


def take_slices(tokens: torch.Tensor, slices: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w, C) and (B, S) slice indices (>= 0) -> (B, S, h, w, C)."""
    index = slices[:, :, None, None, None].expand(-1, -1, *tokens.shape[2:])
    return tokens.gather(1, index)


def region_tokens(tokens: torch.Tensor, slices: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w, C) and (B, s) chosen slices (-1: a region without a mask) -> (B, s, T/s, C); a region
    without a mask gets zeros (its tokens are left out of the prompt)."""
    factor = slices.shape[1]
    chosen = take_slices(tokens, slices.clamp(min=0))
    pooled = pool_slices(chosen.flatten(0, 1), factor).unflatten(0, chosen.shape[:2])  # (B, s, T/s, C)
    return pooled * (slices >= 0)[:, :, None, None].to(pooled.dtype)


def r2_pool(grids: torch.Tensor, slices: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w, C) token grids and (B, s) chosen slices (-1: none) -> (B, D + T, C): the D global tokens, then
    the T region tokens (zeros for a slice of -1)."""
    return torch.cat([global_tokens(grids), region_tokens(grids, slices).flatten(1, 2)], dim=1)
