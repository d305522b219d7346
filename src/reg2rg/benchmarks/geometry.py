"""Model geometries the model benchmarks build, and the reference design's training loss.

``PAPER``: LLaMA2-7B shapes, the RadFM encoders (defaults of ``Reg2RG``), 10 regions of
256 x 256 x 64 and a typical RadGenome sample of 871 tokens; the official code pads every sample
to 2,048. ``TINY``: the same pipeline small enough for a CPU test. Weights are random: the
benchmarks measure compute and memory, which do not depend on their values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from reg2rg.models import LLMConfig, Reg2RG
from reg2rg.models.splice import one_hot_splice
from reg2rg.text import PromptTemplate, TokenLayout, train_tokenizer

LLAMA2_7B = dict(
    model_type="llama",
    hidden_size=4096,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    intermediate_size=11008,
    vocab_size=32000,
    max_position_embeddings=4096,
)


@dataclass(frozen=True)
class Geometry:
    """The shapes of one benchmark model and of its training sample."""

    llm: Mapping[str, Any]  # the LLM's architecture (transformers config keys)
    volume: tuple[int, int, int]  # every image, crop and mask
    regions: int
    sample_tokens: int  # a typical training sample: prompt (visual tokens, markers, words), report, EOS
    reference_length: int  # every sample padded to this many tokens by the reference design
    encoders: Mapping[str, Any] = field(default_factory=dict)  # Reg2RG keyword arguments (empty: the paper's)
    tokenizer_size: int = 2000  # trained on the prompt: its words tokenize about as LLaMA's do


# A typical RadGenome sample: a prompt of 490 tokens (362 visual: 32 global + 10 x 33; 22 markers;
# ~106 words), a report of ~380 tokens, EOS.
PAPER = Geometry(llm=LLAMA2_7B, volume=(256, 256, 64), regions=10, sample_tokens=490 + 380 + 1, reference_length=2048)

_TINY_VIT = dict(
    image_size=32, frames=16, image_patch_size=16, frame_patch_size=8, dim=48, depth=1, heads=2, dim_head=24, mlp_dim=96
)
TINY = Geometry(
    llm=dict(
        model_type="llama",
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=512,
        max_position_embeddings=1024,
    ),
    volume=(32, 32, 16),
    regions=3,
    sample_tokens=240,
    reference_length=512,
    encoders=dict(
        vision_encoder=_TINY_VIT,
        mask_encoder=_TINY_VIT,
        perceiver=dict(dim=48, depth=1, heads=2, dim_head=24, num_latents=4, ff_mult=2),
    ),
    tokenizer_size=400,
)

GEOMETRIES = {"paper": PAPER, "tiny": TINY}


def build_model(geometry: Geometry, dtype: str = "bfloat16") -> Reg2RG:
    """Reg2RG of ``geometry`` in training mode, on the current default device (``with torch.device(...)``)."""
    prompt = PromptTemplate().prompt(geometry.regions, TokenLayout(1, 1, 1))
    tokenizer = train_tokenizer([prompt], geometry.tokenizer_size)
    model = Reg2RG(
        llm=LLMConfig(architecture=dict(geometry.llm), dtype=dtype), tokenizer=tokenizer, **geometry.encoders
    )
    return model.train()


def reference_embeds(model: Reg2RG, batch: Mapping[str, Any]) -> torch.Tensor:
    """The official code's input embeddings of a (padded) batch (B, L, D): visual tokens spliced by a one-hot product.

    ``one_hot(ids') @ cat(vocabulary, markers, visual_b)``: (B, L, V + M + T) x (B, V + M + T, D). Every
    sample of the batch has the same number of regions, so each has T of the batch's visual tokens.
    """
    counts = torch.as_tensor(batch["region_counts"]).tolist()
    if len(set(counts)) != 1:
        raise ValueError(f"the reference splice takes samples of one region count, got {counts}")
    visual = model.visual(batch["region_counts"], batch["image"], batch["texture"], batch["geometry"])  # (B * T, D)
    vocabulary = model.llm.get_input_embeddings().weight
    per_sample = visual.reshape(len(counts), -1, visual.shape[-1]).to(vocabulary.dtype)  # (B, T, D)
    return one_hot_splice(batch["input_ids"], vocabulary, model.splicer, per_sample)


def reference_loss(model: Reg2RG, batch: Mapping[str, Any]) -> torch.Tensor:
    """The official code's loss of a (padded) batch, forward and backward through ``reference_embeds`` (the
    table holds trainable rows, so its gradient is computed)."""
    embeds = reference_embeds(model, batch)
    return model.llm(inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
