"""ISRG-CT click simulation from the error maps of the previous prediction."""

import numpy as np
import torch

from reg2rg.isrg.clicks import centre_click, error_maps, random_clicks


def _case():
    target = np.zeros((16, 16, 16), bool)
    target[4:12, 4:12, 4:12] = True
    prediction = np.zeros_like(target)
    prediction[4:12, 4:12, 4:7] = True  # misses x 7-11
    prediction[0:3, 0:3, 0:3] = True  # a false positive corner
    return prediction, target


def test_a_random_click_lands_in_an_error_with_the_right_sign():
    prediction, target = _case()
    missed, false = error_maps(prediction, target)
    batch = torch.from_numpy(np.stack([prediction] * 64)), torch.from_numpy(np.stack([target] * 64))
    points, positive = random_clicks(*batch, generator=torch.Generator().manual_seed(0))
    for (z, y, x), is_positive in zip(points.tolist(), positive.tolist()):
        assert (missed if is_positive else false)[z, y, x]
    assert positive.any() and not positive.all()  # both kinds drawn


def test_the_evaluation_click_is_inside_the_missed_region():
    prediction, target = _case()
    (z, y, x), positive = centre_click(prediction, target)
    assert positive and target[z, y, x] and not prediction[z, y, x]
    assert x == 9  # the middle of the missed slab, deeper than the false corner (depth 2)
    assert 6 <= z <= 9 and 6 <= y <= 9


def test_a_false_positive_gives_a_negative_click_and_the_first_click_is_inside_the_lesion():
    target = np.zeros((16, 16, 16), bool)
    target[2:5, 2:5, 2:5] = True
    prediction = target.copy()
    prediction[8:15, 8:15, 8:15] = True
    (z, y, x), positive = centre_click(prediction, target)
    assert not positive and prediction[z, y, x] and not target[z, y, x]
    (z, y, x), positive = centre_click(np.zeros_like(target), target)
    assert positive and (z, y, x) == (3, 3, 3)
