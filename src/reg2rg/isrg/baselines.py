"""The baselines of ISRG-CT's tables, trained on the same crops, clicks and loss: a MONAI UNet segments the
lesion from the crop, the clicks and the previous mask (DeepGrow-style click maps); a 3D CNN classifies the
five attributes from the crop and the UNet's mask.

    python scripts/train.py experiment=isrg_demo model=isrg_baseline
"""

from __future__ import annotations

import torch
from monai.networks.nets import UNet
from torch import nn

from .attributes import NUM_CLASSES
from .interactive import ClickTrainedModel, constructor_config
from .prompts import click_maps


class UNetBaselines(ClickTrainedModel):
    kind = "unet_baseline"
    method = "Baselines (MONAI UNet, 3D CNN classifier)"

    def __init__(
        self,
        crop_size: int = 32,
        unet_channels: tuple[int, ...] = (16, 32, 64, 128),
        residual_units: int = 2,
        classifier_channels: tuple[int, ...] = (16, 32, 64),
        click_sigma: float = 2.0,
        attribute_weight: float = 1.0,
        train_clicks: int = 2,
    ):
        super().__init__()
        self.arguments = constructor_config(locals())
        if crop_size % 2 ** (len(unet_channels) - 1):
            raise ValueError(f"crop_size {crop_size} does not halve {len(unet_channels) - 1} times")
        self.crop_size, self.click_sigma = crop_size, click_sigma
        self.attribute_weight, self.train_clicks = attribute_weight, train_clicks
        # crop, positive clicks, negative clicks, previous mask probability -> mask logits
        self.unet = UNet(
            spatial_dims=3,
            in_channels=4,
            out_channels=1,
            channels=tuple(unet_channels),
            strides=(2,) * (len(unet_channels) - 1),
            num_res_units=residual_units,
            norm="instance",
        )
        layers: list[nn.Module] = []
        channels = 2  # crop, mask probability
        for width in classifier_channels:
            layers += [nn.Conv3d(channels, width, 3, padding=1), nn.InstanceNorm3d(width, affine=True), nn.GELU()]
            layers.append(nn.MaxPool3d(2))
            channels = width
        self.classifier = nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.attribute_heads = nn.ModuleList(nn.Linear(channels, n) for n in NUM_CLASSES)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """The crop itself (B, 1, S, S, S): both networks read it anew with every click."""
        return image

    def decode(
        self, image: torch.Tensor, points: torch.Tensor, labels: torch.Tensor, previous_logits: torch.Tensor | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        clicks = click_maps(points, labels, self.crop_size, self.click_sigma)  # (B, 2, S, S, S)
        if previous_logits is None:
            previous = torch.zeros_like(image)
        else:
            previous = previous_logits.sigmoid()[:, None]
        logits = self.unet(torch.cat([image, clicks, previous], 1))[:, 0]  # (B, S, S, S)
        # the classifier reads the UNet's mask; its loss does not train the UNet
        features = self.classifier(torch.cat([image, logits.detach().sigmoid()[:, None]], 1))  # (B, C)
        return logits, [head(features) for head in self.attribute_heads]


def build_baselines(trust_remote_code: bool = False, **config) -> UNetBaselines:
    """``configs/model/isrg_baseline.yaml``'s target. The shared trainer passes ``trust_remote_code`` to every
    family; the baselines run no code from files, so it is unused."""
    return UNetBaselines(**config)
