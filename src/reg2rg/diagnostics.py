"""Does a model read its images, and what do its visual tokens hold?

``image_swap_losses``: teacher-forced loss with each study's own images against another study's.

A model that writes findings from the image pays for a swap: its loss on the true reports rises. A
model that only learnt which area each region is (and writes the same report whatever the study)
does not: both losses agree to several decimals (docs/training.md, "Why the demo's phantom is narrow").
Each study's image, texture crops and geometry masks are swapped with those of the next study that
has the same regions in the same order, so region identity stays intact and only the study changes.

``region_token_features`` + ``linear_probe``: whether a finding can be read off the tokens a region
(or the global image) hands the LLM, by logistic regression fitted on training studies and scored on
held-out ones (docs/mechanism.md: the demo's lung tokens hold no consolidation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
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


@torch.no_grad()
def region_token_features(model: Any, samples: Sequence[Mapping[str, Any]], region: str) -> np.ndarray:
    """(N, tokens * D) float32: the visual tokens of ``region`` (its texture and geometry tokens, as the
    model's switches give them) or of the global image (``region="global"``) in each sample, flattened."""
    visual = model.visual
    layout = visual.layout
    was_training = visual.training
    visual.eval()
    rows = []
    try:
        for sample in samples:
            inputs = {key: sample[key][None] if key == "image" else sample[key] for key in VISUAL_KEYS}
            tokens = visual([len(sample["regions"])], **inputs)  # (global + R * per-region, D)
            if region == "global":
                start, count = 0, layout.global_tokens
            elif region in sample["regions"]:
                count = layout.region_tokens
                start = layout.global_tokens + sample["regions"].index(region) * count
            else:
                raise ValueError(f"study {sample.get('study_id')!r} has no region {region!r}")
            if count == 0:
                raise ValueError(f"the model hands the LLM no {region} tokens (its switches turn them off)")
            rows.append(tokens[start:start + count].flatten().float().numpy())
    finally:
        visual.train(was_training)
    return np.stack(rows)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 l2: float = 1e-2) -> dict[str, float]:
    """Accuracy of an L2-regularised logistic regression (standardised features, L-BFGS) fitted on
    ``train_x`` (N, F) -> ``train_y`` (N,) in {0, 1}: on its own data and on ``test_x``/``test_y``,
    with the majority-class accuracy of the test labels to compare against."""
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    x, x_test = (torch.from_numpy((a - mean) / std).float() for a in (train_x, test_x))
    y = torch.as_tensor(train_y, dtype=torch.float32)
    weight = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=500)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, y) + l2 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        fit = ((x @ weight + bias > 0).float() == y).float().mean()
        test = ((x_test @ weight + bias > 0).numpy() == np.asarray(test_y)).mean()
    rate = float(np.mean(test_y))
    return {"train": float(fit), "test": float(test), "majority": max(rate, 1 - rate)}


def probe_run(run_dir: str, region: str, finding: str, n_train: int = 300, checkpoint: str | None = None) -> dict[str, float]:
    """``linear_probe`` of ``finding`` (a CT-RATE label) on the ``region`` tokens of a finished run: fitted on
    its first ``n_train`` training studies, scored on its whole validation split (newest checkpoint unless
    ``checkpoint`` is given)."""
    from pathlib import Path

    from omegaconf import OmegaConf

    from reg2rg.data.dataset import CachedRegionDataset
    from reg2rg.data.prepare import preprocessing_config
    from reg2rg.models import from_pretrained
    from reg2rg.training.checkpointing import find_checkpoint

    run = Path(run_dir)
    cfg = OmegaConf.load(run / "config.yaml")
    found = Path(checkpoint) if checkpoint else find_checkpoint(str(run), run / "checkpoints")
    model = from_pretrained(str(found))
    splits = {}
    for split, count in (("train", n_train), ("valid", None)):
        data = CachedRegionDataset(cfg.data.cache_dir, split, preprocessing_config(cfg.data), shuffle_regions=False)
        samples = [data[i] for i in range(min(count or len(data), len(data)))]
        if finding not in samples[0]["labels"]:
            raise ValueError(f"unknown finding {finding!r}; the labels are {list(samples[0]['labels'])}")
        splits[split] = (region_token_features(model, samples, region), np.array([s["labels"][finding] for s in samples]))
    return {**linear_probe(*splits["train"], *splits["valid"]), "checkpoint": str(found)}
