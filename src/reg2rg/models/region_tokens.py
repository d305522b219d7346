"""Visual tokens of one batch, in the order their placeholders appear in the prompts.

Per sample: the global segment (``num_latents`` tokens: ViT -> Perceiver -> fc), then for each
region its texture tokens (``num_latents``: the same ViT -> Perceiver -> fc on the region's LFD
crop) followed by its geometry token (1: mask ViT -> mean over tokens -> mask_fc).
The ablation switches remove segments: ``use_global``, ``use_texture``, ``use_geometry``
(Table VI of the paper); LFD on/off changes what the data side puts in ``texture``, not the layout.

The frozen ViT runs under ``torch.no_grad`` and, by default, in eval mode (no dropout): a frozen
feature extractor gives the same features for the same volume. ``frozen_encoder_dropout=True``
restores the official behaviour (train-mode dropout 0.1 inside the frozen encoder).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..text.prompt import TokenLayout
from .perceiver import PerceiverResampler
from .pretrained import load_pretrained
from .vit3d import MASK_ENCODER, ViT3D


class VisualTokenEncoder(nn.Module):
    """Global volume, texture crops and geometry masks -> visual embeddings of width ``llm_dim``."""

    def __init__(
        self,
        llm_dim: int,
        vision_encoder: Mapping[str, Any] | None = None,
        vit_checkpoint: str | None = None,
        perceiver: Mapping[str, Any] | None = None,
        perceiver_checkpoint: str | None = None,
        mask_encoder: Mapping[str, Any] | None = None,
        use_global: bool = True,
        use_texture: bool = True,
        use_geometry: bool = True,
        freeze_vision_encoder: bool = True,
        frozen_encoder_dropout: bool = False,
        freeze_perceiver: bool = False,
    ):
        super().__init__()
        if not (use_global or use_texture or use_geometry):
            raise ValueError("use_global, use_texture and use_geometry are all off: the model would see no image")
        self.use_global = use_global
        self.use_texture = use_texture
        self.use_geometry = use_geometry
        self.freeze_vision_encoder = freeze_vision_encoder
        self.frozen_encoder_dropout = frozen_encoder_dropout
        self.vision_encoder: ViT3D | None = None
        self.perceiver: PerceiverResampler | None = None
        self.mask_encoder: ViT3D | None = None
        num_latents = 0
        if use_global or use_texture:
            self.vision_encoder = ViT3D(**(vision_encoder or {}))
            self.perceiver = PerceiverResampler(**(perceiver or {}))
            self.fc = nn.Linear(self.vision_encoder.dim, llm_dim)
            num_latents = self.perceiver.num_latents
            if vit_checkpoint:
                load_pretrained(self.vision_encoder, vit_checkpoint)
            if perceiver_checkpoint:  # RadFM_perceiver_fc.pth holds the resampler under "perceiver"
                load_pretrained(self.perceiver, perceiver_checkpoint, entry="perceiver")
            self.vision_encoder.requires_grad_(not freeze_vision_encoder)
            self.perceiver.requires_grad_(not freeze_perceiver)
        if use_geometry:
            self.mask_encoder = ViT3D(**{**MASK_ENCODER, **(mask_encoder or {})})
            self.mask_fc = nn.Linear(self.mask_encoder.dim, llm_dim)
        self.layout = TokenLayout(
            global_tokens=num_latents if use_global else 0,
            texture_tokens=num_latents if use_texture else 0,
            geometry_tokens=int(use_geometry),
        )

    def train(self, mode: bool = True) -> VisualTokenEncoder:
        super().train(mode)
        if self.vision_encoder is not None and self.freeze_vision_encoder and not self.frozen_encoder_dropout:
            self.vision_encoder.eval()
        return self

    def forward(
        self,
        region_counts: torch.Tensor | Sequence[int],
        image: torch.Tensor | None = None,
        texture: torch.Tensor | None = None,
        geometry: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``image`` (B, 1, X, Y, Z); ``texture``/``geometry`` (sum R, 1, X, Y, Z) -> (T, llm_dim).

        Inputs of switched-off segments may be None. T = sum over samples of ``layout.total(R_b)``.
        """
        counts = [int(c) for c in region_counts]
        self._check_inputs(counts, image, texture, geometry)
        regional = []  # (sum R, n, D) pieces of each region's segment
        global_tokens = None
        if self.vision_encoder is not None:
            volumes = [v for v, on in ((image, self.use_global), (texture, self.use_texture)) if on]
            latents = self.fc(self.perceiver(self._encode_volumes(torch.cat(volumes))))  # (B + sum R, K, D)
            if self.use_global:
                global_tokens, latents = latents[: len(counts)], latents[len(counts) :]  # (B, K, D)
            if self.use_texture:
                regional.append(latents)  # (sum R, K, D)
        if self.mask_encoder is not None:
            masks = self.mask_encoder(geometry.to(self.mask_fc.weight.dtype)).mean(dim=1)  # (sum R, C)
            regional.append(self.mask_fc(masks)[:, None])  # (sum R, 1, D)
        if global_tokens is None:
            global_tokens = self._no_tokens(len(counts))
        per_region = torch.cat(regional, dim=1) if regional else self._no_tokens(sum(counts))  # (sum R, n, D)
        return torch.cat(
            [torch.cat([g, r.flatten(0, 1)]) for g, r in zip(global_tokens, per_region.split(counts))]
        )  # (T, D)

    def _no_tokens(self, rows: int) -> torch.Tensor:
        """An empty segment (rows, 0, D) for a switched-off part of the layout."""
        weight = (self.fc if self.vision_encoder is not None else self.mask_fc).weight  # (D, C)
        return weight.new_empty(rows, 0, weight.shape[0])

    def _check_inputs(
        self, counts: list[int], image: torch.Tensor | None, texture: torch.Tensor | None, geometry: torch.Tensor | None
    ) -> None:
        expected = (
            ("image", image, self.use_global, len(counts)),
            ("texture", texture, self.use_texture, sum(counts)),
            ("geometry", geometry, self.use_geometry, sum(counts)),
        )
        for name, tensor, used, rows in expected:
            if not used:
                continue
            if tensor is None:
                raise ValueError(f"the layout uses {name} but the batch has none")
            if tensor.ndim != 5 or tensor.shape[:2] != (rows, 1):
                raise ValueError(
                    f"{name} must be ({rows}, 1, X, Y, Z) for region counts {counts}, got {tuple(tensor.shape)}"
                )

    def _encode_volumes(self, volumes: torch.Tensor) -> torch.Tensor:
        """(N, 1, X, Y, Z) -> ViT tokens (N, n, C); the single channel is repeated without a copy."""
        encoder = self.vision_encoder
        volumes = volumes.to(self.fc.weight.dtype).expand(-1, encoder.channels, -1, -1, -1)
        with torch.no_grad() if self.freeze_vision_encoder else contextlib.nullcontext():
            return encoder(volumes)
