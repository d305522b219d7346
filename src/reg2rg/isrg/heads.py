"""The mask head (transformer layer, then upsampling to the crop) and the attribute head (residual block,
self-attention, one classifier per attribute)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .encoder import LayerNorm3d
from .token_encoder import MLP, Attention, TwoWayBlock


class MaskHead(nn.Module):
    """Mask features M (the mask token, then the image tokens) from the hybrid tokens; M -> mask logits."""

    def __init__(self, dim: int, heads: int, grid: int, upscale: int):
        super().__init__()
        self.grid = grid
        self.layer = TwoWayBlock(dim, heads)
        steps = int(math.log2(upscale))
        if 2**steps != upscale:
            raise ValueError(f"the mask head upsamples by powers of two; the patch size is {upscale}")
        channels = [dim] + [max(dim // 2 ** (i + 1), 8) for i in range(steps)]
        layers: list[nn.Module] = []
        for i in range(steps):
            layers += [nn.ConvTranspose3d(channels[i], channels[i + 1], 2, stride=2), LayerNorm3d(channels[i + 1])]
            layers.append(nn.GELU())
        self.upscaling = nn.Sequential(*layers)
        # full-resolution detail, added to the upscaled features: the patch grid alone blurs lesion edges
        # (patch_size voxels per token). Its input: the crop, the click maps (positive, negative) and the
        # previous mask probability (B, 4, S, S, S), so that a click corrects the voxels around it
        self.image_detail = nn.Sequential(
            nn.Conv3d(4, channels[-1], 3, padding=1), nn.GELU(), nn.Conv3d(channels[-1], channels[-1], 3, padding=1)
        )
        self.hypernetwork = MLP(dim, dim, channels[-1])
        # a per-voxel classifier of the same features next to the mask token's: from scratch it learns what a
        # lesion looks like in ~100 steps, where the mask token alone takes far longer (docs/isrg.md)
        self.voxel_classifier = nn.Conv3d(channels[-1], 1, 1)

    def features(
        self, tokens: torch.Tensor, image: torch.Tensor, token_pe: torch.Tensor, image_pe: torch.Tensor
    ) -> torch.Tensor:
        """Hybrid tokens (B, T, C) with the mask token at index 1, image tokens (B, N, C) -> M (B, 1 + N, C)."""
        tokens, image = self.layer(tokens, image, token_pe, image_pe)
        return torch.cat([tokens[:, 1:2], image], dim=1)

    def upscale(self, features: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
        """M's image tokens (B, 1 + N, C) -> per-voxel mask features (B, c', S, S, S), the crop's detail added."""
        b, n, c = features.shape
        image = features[:, 1:].transpose(1, 2).reshape(b, c, self.grid, self.grid, self.grid)
        return self.upscaling(image) + detail

    def logits(self, mask_token: torch.Tensor, upscaled: torch.Tensor) -> torch.Tensor:
        """Mask token (B, C), per-voxel features (B, c', S, S, S) -> mask logits (B, S, S, S):
        hypernetwork(mask token) . features + voxel_classifier(features)."""
        from_token = torch.einsum("bc,bcdhw->bdhw", self.hypernetwork(mask_token), upscaled)
        return from_token + self.voxel_classifier(upscaled)[:, 0]


class AttributeHead(nn.Module):
    """Attribute features A (one token per attribute) from the hybrid tokens; A -> one logit vector each."""

    def __init__(self, dim: int, heads: int, grid: int, num_classes: tuple[int, ...]):
        super().__init__()
        self.grid = grid
        self.residual = nn.Sequential(
            nn.Conv3d(dim, dim, 3, padding=1), LayerNorm3d(dim), nn.GELU(), nn.Conv3d(dim, dim, 3, padding=1)
        )
        self.queries = nn.Parameter(torch.randn(len(num_classes), dim) * 0.02)
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, 2 * dim)
        self.norm2 = nn.LayerNorm(dim)
        self.classifiers = nn.ModuleList(nn.Linear(dim, n) for n in num_classes)

    def features(self, tokens: torch.Tensor, image: torch.Tensor, image_pe: torch.Tensor) -> torch.Tensor:
        """Hybrid tokens (B, T, C), image tokens (B, N, C) -> A (B, attributes, C)."""
        b, n, c = image.shape
        grid = image.transpose(1, 2).reshape(b, c, self.grid, self.grid, self.grid)
        image = image + self.residual(grid).flatten(2).transpose(1, 2)
        queries = self.queries.expand(b, -1, -1)
        sequence = torch.cat([queries, tokens, image + image_pe], dim=1)
        attended = self.norm1(sequence + self.self_attn(sequence, sequence, sequence))
        attended = self.norm2(attended + self.mlp(attended))
        return attended[:, : len(self.classifiers)]

    def logits(self, features: torch.Tensor) -> list[torch.Tensor]:
        """A (B, attributes, C) -> [(B, classes) per attribute]."""
        return [classifier(features[:, i]) for i, classifier in enumerate(self.classifiers)]
