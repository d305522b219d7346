"""The prompt encoder: random-Fourier embeddings of click coordinates plus label embeddings, and the
feature-space K-means point refinement (ISRG-CT Eqs. 1-2).

Point labels: 1 positive click, 0 negative click, 3 a point refined from a positive click, 2 from a negative one,
-1 padding. Refined points have labels of their own, so the model learns how far to trust them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

PAD, NEGATIVE, POSITIVE, REFINED_NEGATIVE, REFINED_POSITIVE = -1, 0, 1, 2, 3


class FourierPositions(nn.Module):
    """Coordinates in [0, 1]^3 -> sin / cos of random Gaussian projections (dim values)."""

    def __init__(self, dim: int, scale: float = 1.0):
        super().__init__()
        self.register_buffer("gaussian_matrix", scale * torch.randn(3, dim // 2))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        projected = 2 * math.pi * (2 * coords - 1) @ self.gaussian_matrix  # (..., dim/2)
        return torch.cat([projected.sin(), projected.cos()], dim=-1)

    def grid(self, size: int) -> torch.Tensor:
        """(dim, size, size, size): the embedding of every cell centre of a cubic grid."""
        centres = (torch.arange(size, dtype=torch.float32, device=self.gaussian_matrix.device) + 0.5) / size
        cells = torch.stack(torch.meshgrid(centres, centres, centres, indexing="ij"), dim=-1)
        return self(cells).permute(3, 0, 1, 2)


class PromptEncoder(nn.Module):
    """Points (B, P, 3) in voxels of the crop + labels (B, P) -> point tokens (B, P, dim)."""

    def __init__(self, dim: int, crop_size: int):
        super().__init__()
        self.crop_size = crop_size
        self.positions = FourierPositions(dim)
        self.label_embeddings = nn.Embedding(4, dim)  # NEGATIVE, POSITIVE, REFINED_NEGATIVE, REFINED_POSITIVE
        self.padding_embedding = nn.Parameter(torch.zeros(dim))

    def forward(self, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        tokens = self.positions((points.float() + 0.5) / self.crop_size) + self.label_embeddings(labels.clamp(min=0))
        return torch.where((labels == PAD)[..., None], self.padding_embedding, tokens)


def kmeans(
    features: torch.Tensor, valid: torch.Tensor, k: int, seed: int, iterations: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's K-means in W windows at once: features (W, n, C), valid (W, n) -> (assignment (W, n), centroids
    (W, k, C)). The first centroids are k valid features in an order drawn once from ``seed`` and shared by
    every window, so a window's clusters depend on nothing but its own features. An empty cluster keeps its
    centroid."""
    n = features.shape[1]
    order = torch.rand(n, generator=torch.Generator().manual_seed(seed)).to(features.device)
    rank = torch.where(valid, order, torch.full_like(order, float("inf"))).argsort(dim=1)[:, :k]  # (W, k)
    centroids = features.gather(1, rank[..., None].expand(-1, -1, features.shape[2]))
    for _ in range(iterations):
        assignment = torch.cdist(features, centroids).argmin(dim=2)  # (W, n)
        members = nn.functional.one_hot(assignment, k).float() * valid[..., None]  # (W, n, k)
        counts = members.sum(1)[..., None]  # (W, k, 1)
        means = members.transpose(1, 2) @ features / counts.clamp(min=1)
        centroids = torch.where(counts > 0, means, centroids)
    assignment = torch.cdist(features, centroids).argmin(dim=2)
    return assignment, centroids


def refine_points(
    embeddings: torch.Tensor,
    points: torch.Tensor,
    labels: torch.Tensor,
    stride: int,
    window: int,
    clusters: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every click, the cells nearest the K-means centroids of its ``window``^3 cells of image features.

    embeddings (B, C, g, g, g) image features, one cell per ``stride``^3 voxels; points (B, P, 3) voxels; labels
    (B, P). Returns (B, P * clusters, 3) voxel points (cell centres) and their labels (REFINED_*; PAD for
    padding clicks and empty clusters). A window at the grid's edge is cut to the grid."""
    b, c, g = embeddings.shape[:3]
    p, radius = points.shape[1], window // 2
    with torch.no_grad():
        padded = nn.functional.pad(embeddings, (radius,) * 6)
        inside = nn.functional.pad(torch.ones_like(embeddings[:, 0], dtype=torch.bool), (radius,) * 6)
        span = torch.arange(window, device=points.device)
        offsets = torch.stack(torch.meshgrid(span, span, span, indexing="ij"), -1).reshape(-1, 3)  # (n, 3)
        cells = (points // stride).clamp(0, g - 1).reshape(b * p, 1, 3) + offsets  # padded grid: (W, n, 3)
        sample = torch.arange(b, device=points.device).repeat_interleave(p)[:, None]  # (W, 1)
        features = padded.permute(0, 2, 3, 4, 1)[sample, cells[..., 0], cells[..., 1], cells[..., 2]]  # (W, n, C)
        valid = inside[sample, cells[..., 0], cells[..., 1], cells[..., 2]]
        assignment, centroids = kmeans(features.float(), valid, clusters, seed)
        distance = (features[:, :, None] - centroids[:, None]).norm(dim=-1)  # (W, n, k)
        member = (assignment[..., None] == torch.arange(clusters, device=points.device)) & valid[..., None]
        nearest = distance.masked_fill(~member, float("inf")).argmin(dim=1)  # (W, k)
        chosen = cells.gather(1, nearest[..., None].expand(-1, -1, 3)) - radius  # (W, k, 3) grid cells
        refined = (chosen * stride + stride // 2).reshape(b, p * clusters, 3)
        kind = torch.where(labels == POSITIVE, REFINED_POSITIVE, REFINED_NEGATIVE)  # (B, P)
        empty = ~member.any(dim=1).reshape(b, p * clusters)
        refined_labels = kind.repeat_interleave(clusters, dim=1).masked_fill(empty, PAD)
        refined_labels = refined_labels.masked_fill((labels == PAD).repeat_interleave(clusters, dim=1), PAD)
    return refined, refined_labels


def click_maps(points: torch.Tensor, labels: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Clicks (B, P >= 1, 3) voxels with labels (B, P) -> (B, 2, S, S, S): the positive, then the negative clicks, each
    a Gaussian exp(-d^2 / 2 sigma^2) around its voxel; where clicks overlap, the larger value."""
    axis = torch.arange(size, device=points.device, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)  # (S, S, S, 3)
    squared = ((grid[None, None] - points[:, :, None, None, None].float()) ** 2).sum(-1)  # (B, P, S, S, S)
    heat = torch.exp(-squared / (2 * sigma**2))
    maps = []
    for label in (POSITIVE, NEGATIVE):
        chosen = (labels == label)[:, :, None, None, None]
        maps.append(torch.where(chosen, heat, torch.zeros_like(heat)).amax(1))
    return torch.stack(maps, dim=1)
