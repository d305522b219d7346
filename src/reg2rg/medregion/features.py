"""A study's visual features, computed once by the frozen slice encoder (so they can be cached with the study).

Per study: the R² vision tokens (D global + T region-slice tokens), LITA's (D global + T uniform-slice tokens),
the R²-pooled tokens of every feature layer and the R²-pooled region masks (the mask extractor's input), and
which of the six regions have a mask.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from reg2rg.medregion.mask_extractor import mask_weights
from reg2rg.medregion.r2_pooling import pooled_grid, r2_pool, representative_slices, uniform_slices
from reg2rg.medregion.regions import REGIONS
from reg2rg.medregion.slice_encoder import (
    PATCH_SIZE,
    VOLUME_SHAPE,
    SliceEncoder,
    image_normalisation,
    load_rad_dino,
    prepare_volume,
    tiny_dinov2,
)


@dataclass(frozen=True)
class EncoderSettings:
    """The slice encoder: a Rad-DINO folder (``rad_dino``), or a tiny random DINOv2 of the given size."""

    rad_dino: str | None = None
    hidden_size: int = 32
    layers: int = 2
    heads: int = 2
    seed: int = 0
    feature_layers: tuple[int, ...] = (1, 2)  # the hidden states the mask extractor pools
    volume_shape: tuple[int, int, int] = VOLUME_SHAPE

    def __post_init__(self):
        object.__setattr__(self, "feature_layers", tuple(int(x) for x in self.feature_layers))
        object.__setattr__(self, "volume_shape", tuple(int(x) for x in self.volume_shape))
        grid = (self.volume_shape[0] // PATCH_SIZE, self.volume_shape[1] // PATCH_SIZE)
        try:
            pooled_grid(*grid, len(REGIONS))
        except ValueError as error:
            raise ValueError(
                f"slice_encoder.volume_shape {list(self.volume_shape)}: {error}; the {PATCH_SIZE}-pixel patch grid "
                f"must split into {len(REGIONS)} equal blocks (e.g. 256 -> 18 x 18, 168 -> 12 x 12)"
            ) from error

    def record(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def build(self) -> SliceEncoder:
        if self.rad_dino:
            backbone = load_rad_dino(self.rad_dino)
            if backbone.config.hidden_size != self.hidden_size:
                raise ValueError(
                    f"{self.rad_dino}: hidden size {backbone.config.hidden_size}, but the config says "
                    f"hidden_size={self.hidden_size} (Rad-DINO's ViT-B: 768)"
                )
            mean, std = image_normalisation(self.rad_dino)
            return SliceEncoder(backbone, self.feature_layers, mean, std)
        backbone = tiny_dinov2(self.hidden_size, self.layers, self.heads, self.seed, self.volume_shape[0])
        return SliceEncoder(backbone, self.feature_layers)


@dataclass
class StudyFeatures:
    vision_region: torch.Tensor  # (D + T, C) R²: global, then the region slices' tokens (zeros: no mask)
    vision_uniform: torch.Tensor  # (D + T, C) LITA: global, then uniformly sampled slices' tokens
    levels: torch.Tensor  # (L, D + T, C) R²-pooled tokens of each feature layer
    weights: torch.Tensor  # (R, D + T) R²-pooled region masks
    present: torch.Tensor  # (R,) bool: the region has mask voxels

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "vision_region": self.vision_region,
            "vision_uniform": self.vision_uniform,
            "levels": self.levels,
            "weights": self.weights,
            "present": self.present,
        }


def resize_masks(masks: list[np.ndarray | None], reference: tuple[int, int, int], shape: tuple[int, int, int]):
    """Region masks (X, Y, Z), None where a region has none -> (R, D, H, W) float32 on the encoder's slices
    (nearest neighbour, the same axes as ``prepare_volume``)."""
    stacked = np.stack([m if m is not None else np.zeros(reference, dtype=bool) for m in masks]).astype(np.float32)
    resized = F.interpolate(torch.from_numpy(stacked)[:, None], size=shape, mode="nearest")[:, 0]  # (R, X', Y', Z')
    return resized.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def study_features(
    encoder: SliceEncoder, volume: np.ndarray, masks: list[np.ndarray | None], shape: tuple[int, int, int]
) -> StudyFeatures:
    """Features of one study: ``volume`` (X, Y, Z) HU, ``masks`` one per region (None: no mask)."""
    slices = prepare_volume(torch.from_numpy(np.asarray(volume, dtype=np.float32)), shape)  # (D, H, W)
    region_masks = resize_masks(masks, volume.shape, shape)[None]  # (1, R, D, H, W)
    features = encoder(slices[None])
    grid = features.tokens.shape[2:4]
    chosen = representative_slices(region_masks)  # (1, R)
    uniform = uniform_slices(slices.shape[0], len(masks))[None]
    levels = torch.stack([r2_pool(features.levels[:, i], chosen) for i in range(features.levels.shape[1])], dim=1)
    return StudyFeatures(
        vision_region=r2_pool(features.tokens, chosen)[0],
        vision_uniform=r2_pool(features.tokens, uniform)[0],
        levels=levels[0],
        weights=mask_weights(region_masks, chosen, tuple(grid))[0],
        present=(chosen >= 0)[0],
    )
