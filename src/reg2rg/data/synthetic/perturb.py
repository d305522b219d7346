"""Simulated segmentation errors on written masks: dilate, erode, shift or drop a region."""

from __future__ import annotations

import numpy as np

from reg2rg.constants import REGIONS
from reg2rg.data.synthetic.geometry import dilate, erode, shift


def perturb_masks(
    masks: dict[str, np.ndarray], spec: dict[str, float], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Copies of ``masks`` (region -> bool (X, Y, Z)) with errors drawn per region from ``spec``
    (``SyntheticConfig.perturbation``). The same draws happen whatever the outcome, so one region's
    error never changes another's."""
    out = {}
    for region in REGIONS:
        mask = masks[region]
        p_dilate, p_erode, p_shift, p_drop = rng.random(4)
        axis, direction = int(rng.integers(3)), int(rng.choice((-1, 1)))
        if p_drop < spec["drop_p"]:
            out[region] = np.zeros_like(mask)
            continue
        if p_dilate < spec["dilate_p"]:
            mask = dilate(mask, int(spec["dilate_k"]))
        if p_erode < spec["erode_p"]:
            mask = erode(mask, int(spec["erode_k"]))
        if p_shift < spec["shift_p"]:
            mask = shift(mask, axis, direction * int(spec["shift_k"]))
        out[region] = mask
    return out
