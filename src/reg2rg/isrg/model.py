"""ISRG-CT: the encoder, the prompt encoder with point refinement, the hybrid token encoder, the mask and
attribute heads and their synergy, trained with simulated clicks.

Ablations (ISRG-CT Tables 2-3): ``point_refinement`` and ``feature_synergy`` both false is Vanilla; one of them
true is "+ Point refinement" or "+ Feature synergy"; both true is Full.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attributes import NUM_CLASSES
from .encoder import ImageEncoder3D, LayerNorm3d, load_sam_med3d_encoder
from .heads import AttributeHead, MaskHead
from .interactive import ClickTrainedModel, constructor_config
from .prompts import PromptEncoder, click_maps, refine_points
from .synergy import FeatureSynergy
from .token_encoder import HybridTokenEncoder


@dataclass
class ImageFeatures:
    """A crop's encoding, computed once for all its clicks: ``embeddings`` (B, C, g, g, g) from the encoder,
    and the crop itself (B, 1, S, S, S) for the mask head's full-resolution detail."""

    embeddings: torch.Tensor
    image: torch.Tensor


class ISRGModel(ClickTrainedModel):
    kind = "isrg"

    def __init__(
        self,
        crop_size: int = 32,
        patch_size: int = 4,
        dim: int = 64,
        encoder_dim: int = 64,
        encoder_depth: int = 4,
        encoder_heads: int = 4,
        encoder_mlp_ratio: float = 2.0,
        window_size: int = 4,
        global_attn_indexes: tuple[int, ...] = (1, 3),
        use_rel_pos: bool = False,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        point_refinement: bool = True,
        refinement_window: int = 3,
        refinement_clusters: int = 3,
        refinement_seed: int = 0,
        feature_synergy: bool = True,
        attribute_weight: float = 1.0,
        train_clicks: int = 3,
        click_sigma: float = 2.0,
    ):
        super().__init__()
        self.arguments = constructor_config(locals())
        if crop_size % patch_size:
            raise ValueError(f"crop_size {crop_size} is not a multiple of patch_size {patch_size}")
        self.crop_size, self.patch_size, self.grid = crop_size, patch_size, crop_size // patch_size
        self.point_refinement = point_refinement
        self.refinement = (refinement_window, refinement_clusters, refinement_seed)
        self.attribute_weight = attribute_weight
        self.train_clicks, self.click_sigma = train_clicks, click_sigma
        self.encoder = ImageEncoder3D(
            crop_size,
            patch_size,
            1,
            encoder_dim,
            encoder_depth,
            encoder_heads,
            encoder_mlp_ratio,
            dim,
            window_size,
            tuple(global_attn_indexes),
            use_rel_pos,
        )
        self.prompt_encoder = PromptEncoder(dim, crop_size)
        # previous mask logits (B, 1, S, S, S) -> a dense prompt on the feature grid (B, dim, g, g, g)
        self.mask_downscaling = nn.Sequential(
            nn.Conv3d(1, dim // 4, patch_size // 2, stride=patch_size // 2),
            LayerNorm3d(dim // 4),
            nn.GELU(),
            nn.Conv3d(dim // 4, dim, 2, stride=2),
        )
        self.no_mask_embedding = nn.Parameter(torch.zeros(dim))
        self.iou_token = nn.Parameter(torch.randn(dim) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(dim) * 0.02)
        self.token_encoder = HybridTokenEncoder(dim, decoder_depth, decoder_heads)
        self.mask_head = MaskHead(dim, decoder_heads, self.grid, patch_size)
        self.attribute_head = AttributeHead(dim, decoder_heads, self.grid, NUM_CLASSES)
        voxel_channels = self.mask_head.hypernetwork[-1].out_features
        self.synergy = FeatureSynergy(dim, decoder_heads, voxel_channels) if feature_synergy else None

    @property
    def method(self) -> str:
        """The ablation's name in the paper's Tables 2-3."""
        refinement, synergy = self.point_refinement, self.synergy is not None
        names = {(False, False): "Vanilla", (True, False): "+ Point refinement", (False, True): "+ Feature synergy"}
        return f"ISRG-CT ({names.get((refinement, synergy), 'Full')})"

    def encode(self, image: torch.Tensor) -> ImageFeatures:
        """A normalised crop (B, 1, S, S, S) -> its features for ``decode``."""
        return ImageFeatures(self.encoder(image), image)

    def decode(
        self,
        features: ImageFeatures,
        points: torch.Tensor,
        labels: torch.Tensor,
        previous_logits: torch.Tensor | None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The crop's features, clicks (B, P, 3) voxels with labels (B, P), the previous mask logits (B, S, S, S)
        or None -> (mask logits (B, S, S, S), [attribute logits (B, classes)])."""
        embeddings = features.embeddings
        previous = torch.zeros_like(features.image) if previous_logits is None else previous_logits.sigmoid()[:, None]
        clicks = click_maps(points, labels, self.crop_size, self.click_sigma)  # (B, 2, S, S, S)
        detail = self.mask_head.image_detail(torch.cat([features.image, clicks, previous], 1))  # (B, c', S, S, S)
        if self.point_refinement:
            refined, refined_labels = refine_points(embeddings, points, labels, self.patch_size, *self.refinement)
            points, labels = torch.cat([points, refined], 1), torch.cat([labels, refined_labels], 1)
        b, c = embeddings.shape[:2]
        prompts = self.prompt_encoder(points, labels)  # (B, P, C)
        fixed = torch.stack([self.iou_token, self.mask_token]).expand(b, -1, -1)
        tokens = torch.cat([fixed, prompts], dim=1)  # (B, 2 + P, C)
        if previous_logits is None:
            dense = self.no_mask_embedding.view(1, c, 1, 1, 1)
        else:
            dense = self.mask_downscaling(previous_logits[:, None])
        image = (embeddings + dense).flatten(2).transpose(1, 2)  # (B, N, C)
        image_pe = self.prompt_encoder.positions.grid(self.grid).flatten(1).T[None]  # (1, N, C)
        tokens, image = self.token_encoder(tokens, image, tokens, image_pe)
        mask_features = self.mask_head.features(tokens, image, tokens, image_pe)  # (B, 1 + N, C)
        voxels = self.mask_head.upscale(mask_features, detail)  # (B, c', S, S, S)
        mask_token = mask_features[:, 0]
        attribute_features = self.attribute_head.features(tokens, image, image_pe)
        if self.synergy is not None:
            before = self.mask_head.logits(mask_token, voxels)
            mask_token, attribute_features = self.synergy(
                mask_features, attribute_features, voxels, before, features.image
            )
        return self.mask_head.logits(mask_token, voxels), self.attribute_head.logits(attribute_features)


def build_model(trust_remote_code: bool = False, sam_med3d_checkpoint: str | None = None, **config) -> ISRGModel:
    """``configs/model/isrg.yaml``'s target: a new model, its encoder loaded from ``sam_med3d_checkpoint`` when
    given (``encoder.load_sam_med3d_encoder``; the model's checkpoints then hold those weights). The shared
    trainer passes ``trust_remote_code`` to every family; ISRG-CT runs no code from files, so it is unused."""
    model = ISRGModel(**config)
    if sam_med3d_checkpoint:
        load_sam_med3d_encoder(model.encoder, sam_med3d_checkpoint)
    return model
