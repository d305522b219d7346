"""ISRG-CT lesion metrics against MONAI's."""

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance
from scipy import ndimage

from reg2rg.isrg.metrics import accuracy, dice, hd95


def _blobs(seed: int, shape=(20, 24, 28)):
    rng = np.random.default_rng(seed)
    return [ndimage.gaussian_filter(rng.random(shape), 2) > t for t in (0.52, 0.51)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.8, 0.8)])
def test_hd95_and_dice_equal_monai(seed, spacing):
    prediction, target = _blobs(seed)
    as_tensor = [torch.from_numpy(m)[None, None] for m in (prediction, target)]
    expected = compute_hausdorff_distance(*as_tensor, include_background=True, percentile=95, spacing=spacing)
    assert hd95(prediction, target, spacing) == pytest.approx(expected.item(), rel=1e-5)
    assert dice(prediction, target) == pytest.approx(compute_dice(*as_tensor, include_background=True).item())


def test_a_mask_touching_the_border_matches_monai_and_identical_masks_score_perfectly():
    target = np.zeros((12, 12, 12), bool)
    target[0:6, 3:9, 5:12] = True
    prediction = np.roll(target, 2, axis=1)
    expected = compute_hausdorff_distance(
        torch.from_numpy(prediction)[None, None], torch.from_numpy(target)[None, None], percentile=95
    )
    assert hd95(prediction, target) == pytest.approx(expected.item(), rel=1e-5)
    assert hd95(target, target) == 0.0 and dice(target, target) == 1.0


def test_an_empty_prediction_has_no_finite_hd95_and_zero_dice():
    _, target = _blobs(0)
    assert hd95(np.zeros_like(target), target) == float("inf")
    assert dice(np.zeros_like(target), target) == 0.0


def test_accuracy_per_attribute():
    predicted = np.array([[0, 1, 2, 0, 1], [1, 1, 2, 1, 1]])
    labels = np.array([[0, 0, 2, 1, 1], [1, 1, 0, 1, 0]])
    assert accuracy(predicted, labels).tolist() == [1.0, 0.5, 0.5, 0.5, 0.5]
