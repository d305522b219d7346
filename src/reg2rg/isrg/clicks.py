"""Simulated expert clicks from the error maps of the previous prediction (ISRG-CT Eq. 4).

Training draws a random voxel of the errors (a missed voxel gives a positive click, a false one a negative
click); evaluation clicks the error voxel farthest from the error's edge, so its runs are repeatable.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage


def error_maps(prediction, target):
    """(false negatives, false positives) of bool arrays or tensors: M_gt & ~M_pred, ~M_gt & M_pred."""
    return target & ~prediction, ~target & prediction


def random_clicks(
    prediction: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One click per sample: a uniform draw from its error voxels. prediction, target: bool (B, D, H, W).

    Returns points (B, 3) voxel indices and positive (B,) bool. A sample without errors clicks its lesion
    (positive), and one without lesion or errors the crop's centre (negative)."""
    false_negative, false_positive = error_maps(prediction, target)
    errors = (false_negative | false_positive).flatten(1)
    fallback = torch.where(target.flatten(1).any(1, keepdim=True), target.flatten(1), torch.ones_like(errors))
    choices = torch.where(errors.any(1, keepdim=True), errors, fallback).float()
    index = torch.multinomial(choices, 1, generator=generator).squeeze(1)  # (B,)
    points = torch.stack(torch.unravel_index(index, target.shape[1:]), dim=1)
    positive = target.flatten(1).gather(1, index[:, None]).squeeze(1)
    return points, positive


def centre_click(prediction: np.ndarray, target: np.ndarray) -> tuple[tuple[int, int, int], bool]:
    """The error voxel deepest inside its error region (the largest distance to a correct voxel or to the
    crop's border) and whether it is a missed voxel (a positive click). prediction, target: bool (D, H, W).
    Without errors: the deepest lesion voxel, positive (or the centre, negative, without a lesion)."""
    false_negative, false_positive = error_maps(prediction, target)
    if not (false_negative.any() or false_positive.any()):
        if not target.any():
            return tuple(n // 2 for n in target.shape), False
        false_negative = target
    depth_fn, depth_fp = _depth(false_negative), _depth(false_positive)
    depth = np.maximum(depth_fn, depth_fp)
    point = tuple(int(i) for i in np.unravel_index(np.argmax(depth), depth.shape))
    return point, bool(depth_fn[point] >= depth_fp[point] and false_negative[point])


def _depth(region: np.ndarray) -> np.ndarray:
    """Distance of each voxel of ``region`` to the nearest voxel outside it, the crop's border counting as outside."""
    padded = np.pad(region, 1)
    return ndimage.distance_transform_edt(padded)[1:-1, 1:-1, 1:-1]


def lesion_at_clicks(predicted: np.ndarray, positive_points) -> np.ndarray:
    """The connected parts of a predicted mask (bool (D, H, W)) that hold a positive click: what a user is shown.
    Empty when no positive click is on the prediction."""
    components, _ = ndimage.label(predicted)
    keep = {int(components[tuple(p)]) for p in positive_points} - {0}
    return np.isin(components, sorted(keep)) if keep else np.zeros_like(predicted)
