"""What every click-driven lesion model here shares (ISRG-CT and its baselines): training on simulated clicks,
the batch collator, and what a checkpoint keeps. A subclass defines ``encode`` and ``decode``:

    features = model.encode(image)                                   # image (B, 1, S, S, S), once per crop
    mask_logits, attribute_logits = model.decode(features, points, labels, previous_logits)

points (B, P, 3) voxel indices of the crop, labels (B, P) (``prompts.POSITIVE`` / ``NEGATIVE``), previous mask
logits (B, S, S, S) or None; mask logits (B, S, S, S) and [attribute logits (B, classes)] per attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .clicks import random_clicks
from .data import LesionCollator
from .losses import attribute_loss, mask_loss


@dataclass
class ClickOutput:
    """``loss`` (training), and the last click's ``mask_logits`` (B, S, S, S) and ``attribute_logits``."""

    loss: torch.Tensor | None
    mask_logits: torch.Tensor
    attribute_logits: list[torch.Tensor]


def constructor_config(arguments: dict[str, Any]) -> dict[str, Any]:
    """A constructor's ``locals()`` -> the config a checkpoint stores (tuples as lists, no ``self``)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in arguments.items() if k not in ("self", "__class__")}


class ClickTrainedModel(nn.Module):
    """Subclasses set ``crop_size``, ``train_clicks``, ``attribute_weight``, ``arguments`` (their constructor's)
    and the names ``kind`` (which class a checkpoint holds) and ``method`` (its name in evaluation tables)."""

    kind: str
    max_positions = None  # no token sequence: the trainer's length limits do not apply

    @property
    def config(self) -> dict[str, Any]:
        """What a checkpoint's config.json stores: the kind and the constructor's arguments."""
        return {"kind": self.kind, **self.arguments}

    def collator(self, max_length: int | None = None) -> LesionCollator:
        return LesionCollator()

    def persistent_parameters(self) -> dict[str, torch.Tensor]:
        """Everything a checkpoint keeps: all parameters and buffers."""
        return dict(self.state_dict())

    def encode(self, image: torch.Tensor) -> Any:
        raise NotImplementedError

    def decode(
        self, features: Any, points: torch.Tensor, labels: torch.Tensor, previous_logits: torch.Tensor | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward(self, image: torch.Tensor, mask: torch.Tensor, attributes: torch.Tensor | None = None) -> ClickOutput:
        """Train on ``train_clicks`` simulated clicks: the first on the lesion, each next one on an error of the
        previous prediction. image (B, 1, S, S, S) normalised, mask (B, S, S, S), attributes (B, 5) class
        indices. The loss is the mean over clicks of Dice + BCE + attribute_weight * cross-entropy."""
        target = mask.bool()
        features = self.encode(image)
        points = torch.zeros(len(image), 0, 3, dtype=torch.long, device=image.device)
        labels = torch.zeros(len(image), 0, dtype=torch.long, device=image.device)
        prediction, previous, losses = torch.zeros_like(target), None, []
        for _ in range(self.train_clicks):
            click, positive = random_clicks(prediction.cpu(), target.cpu())
            points = torch.cat([points, click[:, None].to(image.device)], 1)
            labels = torch.cat([labels, positive[:, None].long().to(image.device)], 1)
            logits, attribute_logits = self.decode(features, points, labels, previous)
            loss = mask_loss(logits, target)
            if attributes is not None:
                loss = loss + self.attribute_weight * attribute_loss(attribute_logits, attributes)
            losses.append(loss)
            previous = logits.detach()
            prediction = previous > 0
        return ClickOutput(torch.stack(losses).mean(), logits, attribute_logits)
