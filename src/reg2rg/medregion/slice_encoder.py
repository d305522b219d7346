"""The 2D slice encoder: a frozen DINOv2 ViT in the microsoft/rad-dino layout, run slice by slice.

A Rad-DINO folder (as published on the Hugging Face hub) holds ``config.json`` (``Dinov2Model``, ViT-B/14),
``model.safetensors`` and ``preprocessor_config.json`` (``image_mean``, ``image_std``). It loads strictly: every
weight of the architecture from the file and no weight left over, else an error naming the folder. A volume is
resized to 256 x 256 x 32 and min-max normalised (the paper), and each of its 32 axial slices is one image.
At 256 x 256 the patch grid of a /14 ViT is 18 x 18: T = 324 visual tokens per slice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Dinov2Config, Dinov2Model

VOLUME_SHAPE = (256, 256, 32)  # (X, Y, Z) the encoder's input, as in the paper
PATCH_SIZE = 14  # Rad-DINO's ViT-B/14, and the tiny random ViT's
WEIGHTS = "model.safetensors"


class RadDinoLoadError(ValueError):
    """A slice-encoder folder that is not a complete Rad-DINO layout."""


def load_rad_dino(folder: str | Path) -> Dinov2Model:
    """A frozen ``Dinov2Model`` from a local Rad-DINO folder (safetensors only, every weight accounted for)."""
    folder = Path(folder)
    for name in ("config.json", WEIGHTS):
        if not (folder / name).is_file():
            raise RadDinoLoadError(f"{folder}: no {name}; a Rad-DINO folder holds config.json and {WEIGHTS}")
    model, info = Dinov2Model.from_pretrained(
        folder, local_files_only=True, use_safetensors=True, output_loading_info=True
    )
    problems = {key: info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(key)}
    if problems:
        raise RadDinoLoadError(f"{folder}: {WEIGHTS} does not match config.json: {problems}")
    return freeze(model)


def tiny_dinov2(
    hidden_size: int = 32, layers: int = 2, heads: int = 2, seed: int = 0, image_size: int = 256
) -> Dinov2Model:
    """A random, frozen DINOv2 ViT/14 of ``layers`` x ``hidden_size`` for CPU runs (weights from ``seed``), its
    position embeddings made for ``image_size`` pixels (no interpolation at that size)."""
    config = Dinov2Config(
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=PATCH_SIZE,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return freeze(Dinov2Model(config))


def freeze(model: nn.Module) -> nn.Module:
    model.requires_grad_(False)
    return model.eval()


def image_normalisation(folder: str | Path | None) -> tuple[float, float]:
    """(mean, std) of a Rad-DINO folder's ``preprocessor_config.json`` (first channel); (0, 1) without one."""
    path = Path(folder) / "preprocessor_config.json" if folder else None
    if path is None or not path.is_file():
        return 0.0, 1.0
    spec = json.loads(path.read_text(encoding="utf-8"))
    return float(spec["image_mean"][0]), float(spec["image_std"][0])


def prepare_volume(volume: torch.Tensor, shape: tuple[int, int, int] = VOLUME_SHAPE) -> torch.Tensor:
    """(X, Y, Z) intensities -> (Z', X', Y') float32 slices: trilinear resize to ``shape``, min-max to [0, 1]."""
    resized = F.interpolate(volume.float()[None, None], size=shape, mode="trilinear", align_corners=False)[0, 0]
    low, high = resized.min(), resized.max()
    scaled = (resized - low) / (high - low) if high > low else torch.zeros_like(resized)
    return scaled.permute(2, 0, 1).contiguous()  # (D, H, W): one axial slice per row


@dataclass
class SliceFeatures:
    """The encoder's output for a batch of volumes, patch tokens only (no CLS)."""

    tokens: torch.Tensor  # (B, D, h, w, C) last layer
    levels: torch.Tensor  # (B, L, D, h, w, C) the hidden states of ``feature_layers``, for mask pooling


class SliceEncoder(nn.Module):
    """Runs a frozen 2D ViT over every slice of (B, D, H, W) volumes in [0, 1]."""

    def __init__(self, backbone: Dinov2Model, feature_layers: tuple[int, ...], mean: float = 0.0, std: float = 1.0):
        super().__init__()
        depth = backbone.config.num_hidden_layers
        if not feature_layers or not all(1 <= layer <= depth for layer in feature_layers):
            raise ValueError(f"feature_layers must be layers 1..{depth} of the encoder, got {feature_layers}")
        self.backbone = freeze(backbone)
        self.feature_layers = tuple(feature_layers)
        self.mean, self.std = mean, std

    @property
    def dim(self) -> int:
        return self.backbone.config.hidden_size

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """The patch grid (h, w) of a height x width slice."""
        patch = self.backbone.config.patch_size
        return height // patch, width // patch

    def train(self, mode: bool = True) -> SliceEncoder:
        super().train(mode)
        self.backbone.eval()  # frozen: no dropout, whatever the model's mode
        return self

    @torch.no_grad()
    def forward(self, slices: torch.Tensor) -> SliceFeatures:
        """``slices`` (B, D, H, W) in [0, 1] -> ``SliceFeatures``."""
        batch, depth, height, width = slices.shape
        h, w = self.grid(height, width)
        images = ((slices.reshape(batch * depth, 1, height, width) - self.mean) / self.std).expand(-1, 3, -1, -1)
        out = self.backbone(pixel_values=images, output_hidden_states=True)
        skip = out.last_hidden_state.shape[1] - h * w  # the CLS token (and register tokens, if any)

        def grid_of(hidden: torch.Tensor) -> torch.Tensor:  # (B*D, 1 + h*w, C) -> (B, D, h, w, C)
            return hidden[:, skip:].reshape(batch, depth, h, w, -1)

        levels = torch.stack([grid_of(out.hidden_states[layer]) for layer in self.feature_layers], dim=1)
        return SliceFeatures(tokens=grid_of(out.last_hidden_state), levels=levels)
