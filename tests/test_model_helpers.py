"""Tiny Reg2RG models and random samples shaped as the data side's contract (shared by test_model_*)."""

from __future__ import annotations

import copy
import functools
from typing import Any

import torch

from reg2rg.constants import REGIONS
from reg2rg.models import LLMConfig, Reg2RG
from reg2rg.text import PromptTemplate, train_tokenizer

VOLUME = (32, 32, 16)
TINY_LLAMA = dict(
    model_type="llama",
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=1024,
)
TINY_ENCODERS: dict[str, Any] = dict(
    vision_encoder=dict(
        image_size=32,
        frames=16,
        image_patch_size=8,
        frame_patch_size=4,
        dim=48,
        depth=2,
        heads=2,
        dim_head=16,
        mlp_dim=64,
    ),
    perceiver=dict(dim=48, depth=2, heads=2, dim_head=16, num_latents=32, ff_mult=2),
    mask_encoder=dict(
        image_size=32,
        frames=16,
        image_patch_size=16,
        frame_patch_size=8,
        dim=24,
        depth=1,
        heads=2,
        dim_head=8,
        mlp_dim=32,
    ),
)


def report(area: str, seed: int) -> str:
    return f"The {area} is {'normal' if seed % 2 else 'enlarged'} with {seed % 5} small nodules."


@functools.lru_cache(maxsize=1)
def _trained_tokenizer():
    template = PromptTemplate()
    corpus = [template.instruction, template.global_context]
    corpus += [template.target(REGIONS, [report(area, i) for area in REGIONS]) for i in range(5)]
    return train_tokenizer(corpus * 4, vocab_size=400)


def tiny_tokenizer():
    """A fresh copy each call (models add tokens to their tokenizer), trained once per session."""
    return copy.deepcopy(_trained_tokenizer())


def tiny_llm(**overrides: Any) -> LLMConfig:
    settings = dict(architecture=TINY_LLAMA, dtype="float32", tuning="lora", activation_checkpointing=False)
    return LLMConfig(**{**settings, **overrides})


def tiny_model(seed: int = 0, llm: LLMConfig | None = None, **config: Any) -> Reg2RG:
    torch.manual_seed(seed)
    return Reg2RG(llm=llm or tiny_llm(), tokenizer=tiny_tokenizer(), **{**TINY_ENCODERS, **config})


def random_sample(num_regions: int, seed: int = 0, regions: list[str] | None = None) -> dict[str, Any]:
    """A sample as the data side delivers it, with random volumes in [-1, 1] and masks in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    regions = regions or list(REGIONS[:num_regions])
    return {
        "study_id": f"study_{seed}",
        "image": torch.rand(1, *VOLUME, generator=generator) * 2 - 1,
        "texture": torch.rand(num_regions, 1, *VOLUME, generator=generator) * 2 - 1,
        "geometry": torch.rand(num_regions, 1, *VOLUME, generator=generator),
        "regions": regions,
        "region_reports": [report(area, seed + i) for i, area in enumerate(regions)],
    }
