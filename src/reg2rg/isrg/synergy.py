"""Inter-task feature synergy (ISRG-CT Eq. 3): the mask features attend to the projected attribute features and
the attribute features to the projected mask features, both from the features before the exchange.

The mask features M are the mask token, the image tokens of the mask head and one lesion token: the mean and
standard deviation of the per-voxel mask features under the mask predicted before the exchange (texture and
edges at full resolution, which the attribute tokens cannot see on the patch grid). The mask side updates the
mask token, whose hypernetwork weights then draw the mask.
"""

from __future__ import annotations

import torch
from torch import nn

from .token_encoder import Attention


class FeatureSynergy(nn.Module):
    def __init__(self, dim: int, heads: int, voxel_channels: int):
        super().__init__()
        self.describe_lesion = nn.Linear(2 * voxel_channels, dim)
        self.project_mask = nn.Linear(dim, dim)
        self.project_attributes = nn.Linear(dim, dim)
        self.mask_from_attributes = Attention(dim, heads)
        self.attributes_from_mask = Attention(dim, heads)
        self.mask_norm = nn.LayerNorm(dim)
        self.attribute_norm = nn.LayerNorm(dim)

    def forward(
        self, mask: torch.Tensor, attributes: torch.Tensor, voxels: torch.Tensor, mask_logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """M (B, 1 + N, C) with the mask token first, A (B, attributes, C), per-voxel mask features (B, c', S, S, S)
        and the mask logits before the exchange (B, S, S, S) -> (Z_seg: the mask token (B, C), Z_attr like A)."""
        weights = mask_logits.sigmoid().flatten(1)  # (B, V)
        weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-6)
        values = voxels.flatten(2)  # (B, c', V)
        mean = torch.einsum("bv,bcv->bc", weights, values)
        spread = torch.einsum("bv,bcv->bc", weights, (values - mean[..., None]) ** 2).clamp(min=1e-6).sqrt()
        lesion = self.describe_lesion(torch.cat([mean, spread], dim=1))[:, None]  # (B, 1, C)
        projected_mask = self.project_mask(torch.cat([mask, lesion], dim=1))
        projected_attributes = self.project_attributes(attributes)
        token = mask[:, :1]
        z_seg = self.mask_norm(token + self.mask_from_attributes(token, projected_attributes, projected_attributes))
        z_attr = self.attribute_norm(attributes + self.attributes_from_mask(attributes, projected_mask, projected_mask))
        return z_seg[:, 0], z_attr
