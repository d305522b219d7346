"""Does a model read its images? Teacher-forced loss with each study's own images against another study's.

A model that writes findings from the image pays for a swap: its loss on the true reports rises. A
model that only learnt which area each region is (and writes the same report whatever the study)
does not: both losses agree to several decimals (docs/training.md, "Why the demo's phantom is narrow").
Each study's image, texture crops and geometry masks are swapped with those of the next study that
has the same regions in the same order, so region identity stays intact and only the study changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from accelerate.utils import send_to_device

VISUAL_KEYS = ("image", "texture", "geometry")  # the sample fields a model sees of the study


def image_swap_losses(model: Any, samples: Sequence[Mapping[str, Any]], batch_size: int = 4) -> dict[str, float]:
    """Mean teacher-forced loss of ``samples`` (canonical region order) with their own and with swapped images.

    Returns ``own``, ``swapped`` (means over the studies that found a partner) and ``studies`` (how many).
    """
    pairs = []
    for i, sample in enumerate(samples):
        partner = next((samples[(i + k) % len(samples)] for k in range(1, len(samples))
                        if samples[(i + k) % len(samples)]["regions"] == sample["regions"]), None)
        if partner is not None:
            pairs.append((sample, {**sample, **{key: partner[key] for key in VISUAL_KEYS}}))
    if not pairs:
        raise ValueError("image_swap_losses needs at least two studies with the same regions")
    own, swapped = zip(*pairs)
    return {"own": _mean_loss(model, own, batch_size), "swapped": _mean_loss(model, swapped, batch_size),
            "studies": len(pairs)}


@torch.no_grad()
def _mean_loss(model: Any, samples: Sequence[Mapping[str, Any]], batch_size: int) -> float:
    """Mean over samples of the model's loss on batches of ``batch_size`` (each batch weighted by its size)."""
    collate, device = model.collator(), next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for start in range(0, len(samples), batch_size):
            chunk = list(samples[start:start + batch_size])
            total += float(model(**send_to_device(collate(chunk), device)).loss) * len(chunk)
    finally:
        model.train(was_training)
    return total / len(samples)
