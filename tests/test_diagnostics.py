"""The image-swap check: a model that reads its images pays for another study's; one that does not, does not."""

from __future__ import annotations

import pytest
from test_model_helpers import random_sample, tiny_model

from reg2rg.diagnostics import VISUAL_KEYS, image_swap_losses


def test_a_model_reading_images_pays_for_a_swap():
    model = tiny_model()
    samples = [random_sample(3, seed=seed) for seed in range(4)]
    losses = image_swap_losses(model.train(), samples, batch_size=3)
    assert losses["studies"] == 4 and losses["own"] != pytest.approx(losses["swapped"], abs=1e-6)
    assert model.training  # its mode is restored


def test_studies_with_the_same_images_lose_nothing_in_a_swap():
    samples = [random_sample(3, seed=seed) for seed in range(3)]
    same = [{**s, **{key: samples[0][key] for key in VISUAL_KEYS}} for s in samples]
    losses = image_swap_losses(tiny_model(), same)
    assert losses["own"] == pytest.approx(losses["swapped"], rel=1e-6)


def test_only_studies_with_the_same_regions_are_swapped():
    samples = [random_sample(3, seed=0), random_sample(2, seed=1), random_sample(3, seed=2)]
    assert image_swap_losses(tiny_model(), samples)["studies"] == 2
    with pytest.raises(ValueError, match="same regions"):
        image_swap_losses(tiny_model(), samples[:2])
