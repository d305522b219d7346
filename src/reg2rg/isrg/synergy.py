"""Inter-task feature synergy (ISRG-CT Eq. 3): the mask features attend to the projected attribute features and
the attribute features to the projected mask features, both from the features before the exchange.

The mask features M are the mask token, the image tokens of the mask head and one lesion token. The lesion
token describes, at full resolution, what the attribute tokens cannot see on the patch grid: the mean and
standard deviation of the per-voxel mask features, the crop's intensity and its gradient magnitude, inside the
mask predicted before the exchange and on its edge (texture: heterogeneity; contrast: density; edge
sharpness: surface). It is also added to each attribute token. The mask side updates the mask token, whose
hypernetwork weights then draw the mask.
"""

from __future__ import annotations

import torch
from torch import nn

from .token_encoder import Attention


class FeatureSynergy(nn.Module):
    def __init__(self, dim: int, heads: int, voxel_channels: int):
        super().__init__()
        # (mean, std) of (voxel features, intensity, gradient magnitude), inside and on the edge
        self.describe_lesion = nn.Linear(4 * (voxel_channels + 2), dim)
        self.project_mask = nn.Linear(dim, dim)
        self.project_attributes = nn.Linear(dim, dim)
        self.mask_from_attributes = Attention(dim, heads)
        self.attributes_from_mask = Attention(dim, heads)
        self.mask_norm = nn.LayerNorm(dim)
        self.attribute_norm = nn.LayerNorm(dim)

    def forward(
        self,
        mask: torch.Tensor,
        attributes: torch.Tensor,
        voxels: torch.Tensor,
        mask_logits: torch.Tensor,
        image: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """M (B, 1 + N, C) with the mask token first, A (B, attributes, C), per-voxel mask features (B, c', S, S, S),
        the mask logits before the exchange (B, S, S, S) and the crop (B, 1, S, S, S) -> (Z_seg: the mask token
        (B, C), Z_attr like A)."""
        gradient = torch.stack(torch.gradient(image[:, 0], dim=(1, 2, 3))).square().sum(0).sqrt()[:, None]
        values = torch.cat([voxels, image, gradient], dim=1).flatten(2)  # (B, c' + 2, V)
        inside = mask_logits.sigmoid().flatten(1)  # (B, V)
        edge = 4 * inside * (1 - inside)  # 1 where the mask is undecided, 0 far inside or outside
        summary = [_weighted_moments(values, weights) for weights in (inside, edge)]
        lesion = self.describe_lesion(torch.cat([m for moments in summary for m in moments], dim=1))[:, None]
        projected_mask = self.project_mask(torch.cat([mask, lesion], dim=1))
        projected_attributes = self.project_attributes(attributes)
        token = mask[:, :1]
        z_seg = self.mask_norm(token + self.mask_from_attributes(token, projected_attributes, projected_attributes))
        # the lesion token also goes to each attribute token directly: among the 1 + N + 1 keys, attention would
        # give it about 1 / (N + 2) of the weight at the start, and its gradient as little
        exchanged = self.attributes_from_mask(attributes, projected_mask, projected_mask)
        z_attr = self.attribute_norm(attributes + exchanged + lesion)
        return z_seg[:, 0], z_attr


def _weighted_moments(values: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """values (B, c, V), weights (B, V) >= 0 -> the weighted mean and standard deviation, each (B, c)."""
    weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-6)
    mean = torch.einsum("bv,bcv->bc", weights, values)
    spread = torch.einsum("bv,bcv->bc", weights, (values - mean[..., None]) ** 2).clamp(min=1e-6).sqrt()
    return mean, spread
