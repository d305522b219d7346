"""The training loss: Dice over the crop + lambda * cross-entropy of the attributes (ISRG-CT Eqs. 5-6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """1 - soft Dice of sigmoid(logits) (B, D, H, W) against bool targets, averaged over the batch."""
    probabilities = logits.sigmoid().flatten(1)
    target = target.flatten(1).float()
    overlap = (probabilities * target).sum(1)
    return (1 - 2 * overlap / (probabilities.sum(1) + target.sum(1) + eps)).mean()


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice loss + voxel-wise binary cross-entropy (B, D, H, W)."""
    return dice_loss(logits, target) + F.binary_cross_entropy_with_logits(logits, target.float())


def attribute_loss(logits: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each attribute's logits (B, classes) against labels (B, attributes), averaged."""
    return torch.stack([F.cross_entropy(x, labels[:, i]) for i, x in enumerate(logits)]).mean()
