"""Lesion metrics: Dice (DSC) and the 95th-percentile Hausdorff distance (HD95), computed as MONAI's
``compute_dice`` and ``compute_hausdorff_distance(percentile=95)`` compute them (tests check both), on
one lesion's bool masks, and attribute accuracy."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def dice(prediction: np.ndarray, target: np.ndarray) -> float:
    """2 |P & T| / (|P| + |T|); 1.0 when both are empty (nothing to find, nothing found)."""
    total = prediction.sum() + target.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(prediction, target).sum() / total)


def hd95(prediction: np.ndarray, target: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> float:
    """The symmetric 95th-percentile distance (mm) between the surfaces of two bool masks (z, y, x).

    A surface is the mask minus its erosion; each surface voxel's distance to the other surface is exact
    (Euclidean distance transform with the voxel spacing). inf when either mask is empty."""
    if not prediction.any() or not target.any():
        return float("inf")
    edges_pred = prediction ^ ndimage.binary_erosion(prediction)
    edges_true = target ^ ndimage.binary_erosion(target)
    to_true = ndimage.distance_transform_edt(~edges_true, sampling=spacing)[edges_pred]
    to_pred = ndimage.distance_transform_edt(~edges_pred, sampling=spacing)[edges_true]
    return float(max(np.percentile(to_true, 95), np.percentile(to_pred, 95)))


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-attribute accuracy (attributes,) of predicted against true class indices, both (studies, attributes)."""
    return (np.asarray(predicted) == np.asarray(labels)).mean(axis=0)


def majority_classes(labels: np.ndarray) -> np.ndarray:
    """The most frequent class of each attribute (attributes,) in labels (studies, attributes)."""
    return np.array([np.bincount(column).argmax() for column in np.asarray(labels).T])
