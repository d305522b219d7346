"""Inter-task feature synergy (ISRG-CT Eq. 3): the mask features attend to the projected attribute features and
the attribute features to the projected mask features, both from the features before the exchange."""

from __future__ import annotations

import torch
from torch import nn

from .token_encoder import Attention


class FeatureSynergy(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.project_mask = nn.Linear(dim, dim)
        self.project_attributes = nn.Linear(dim, dim)
        self.mask_from_attributes = Attention(dim, heads)
        self.attributes_from_mask = Attention(dim, heads)
        self.mask_norm = nn.LayerNorm(dim)
        self.attribute_norm = nn.LayerNorm(dim)

    def forward(self, mask: torch.Tensor, attributes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """M (B, 1 + N, C), A (B, attributes, C) -> (Z_seg, Z_attr) of the same shapes."""
        projected_attributes = self.project_attributes(attributes)
        projected_mask = self.project_mask(mask)
        z_seg = self.mask_norm(mask + self.mask_from_attributes(mask, projected_attributes, projected_attributes))
        z_attr = self.attribute_norm(attributes + self.attributes_from_mask(attributes, projected_mask, projected_mask))
        return z_seg, z_attr
