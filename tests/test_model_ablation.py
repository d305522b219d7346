"""Every ablation switch changes the token layout as specified (paper Tables VI and VII)."""

from __future__ import annotations

import pytest
import torch
from test_model_helpers import random_sample, tiny_model

from reg2rg.constants import IGNORE_INDEX
from reg2rg.text.prompt import IMAGE_OPEN, REGION_OPEN

REGIONS = 3


@pytest.mark.parametrize(
    "switches, global_tokens, region_tokens",
    [
        ({}, 32, 33),
        ({"use_geometry": False}, 32, 32),
        ({"use_texture": False}, 32, 1),
        ({"use_global": False}, 0, 33),
        ({"use_texture": False, "use_geometry": False}, 32, 0),
    ],
)
def test_switches_set_the_visual_tokens_and_placeholders(switches, global_tokens, region_tokens):
    model = tiny_model(**switches)
    assert (model.layout.global_tokens, model.layout.region_tokens) == (global_tokens, region_tokens)
    collator = model.collator()
    prompt = collator.tokenizer.decode(collator.prompt_ids(REGIONS))
    assert prompt.count(REGION_OPEN) == REGIONS and "The region 2 is " in prompt
    assert (IMAGE_OPEN in prompt) == bool(global_tokens)
    assert ("The global information" in prompt) == bool(global_tokens)

    batch = collator([random_sample(REGIONS)])
    placeholders = int((batch["input_ids"] == model.splicer.placeholder_id).sum())
    assert placeholders == global_tokens + REGIONS * region_tokens
    visual = model.visual(batch["region_counts"], batch.get("image"), batch.get("texture"), batch.get("geometry"))
    assert visual.shape == (placeholders, 64)
    assert torch.isfinite(model(**batch).loss)


def test_switched_off_encoders_are_not_built():
    assert tiny_model(use_geometry=False).visual.mask_encoder is None
    no_volume = tiny_model(use_global=False, use_texture=False).visual
    assert no_volume.vision_encoder is None and no_volume.perceiver is None
    with pytest.raises(ValueError, match="all off"):
        tiny_model(use_global=False, use_texture=False, use_geometry=False)


def test_rra_off_learns_the_plain_reports_and_keeps_region_numbers_in_the_prompt():
    sample = random_sample(REGIONS)
    for rra in (True, False):
        collator = tiny_model(rra=rra).collator()
        ids, labels = collator.encode(sample)
        target = collator.tokenizer.decode([t for t in labels if t != IGNORE_INDEX], skip_special_tokens=True)
        prompt = collator.tokenizer.decode(collator.prompt_ids(REGIONS))
        assert "The region 0 is <region>" in prompt
        if rra:
            assert target.startswith(f"The region 0 is {sample['regions'][0]}: {sample['region_reports'][0]}")
        else:
            assert target == " ".join(sample["region_reports"])
            assert collator.template.parse(target) == []
