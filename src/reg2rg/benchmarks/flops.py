"""Training FLOPs per sample at the paper's geometry: our design vs the reference design, same run.

Counted with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (shapes only, no
weights, no memory): one forward + backward of a full Reg2RG model with LLaMA2-7B shapes, RadFM
encoders, 10 regions, LoRA r 8 and activation checkpointing (so the backward recomputes each
decoder layer's forward, as in training).

- ours: the sequence is as long as the sample (prompt with 362 visual tokens + report + EOS) and
  visual tokens are spliced by index (no FLOPs);
- reference (official code): every sample padded to 2048 tokens and spliced by a one-hot
  (L x (32000 + 4 + 362)) product with the vocabulary + marker + visual table, forward and
  backward (the table holds trainable rows, so its gradient is computed).

The encoders (frozen ViT forward on 11 volumes, trainable Perceiver / fc / mask encoder forward
and backward) are identical in both designs and counted in both. Attention is counted at full
L x L for both (the counter does not discount causal masking).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from reg2rg.models import Reg2RG
from reg2rg.models.splice import one_hot_splice

from .geometry import PAPER, build_model, reference_loss

TERA = 1e12


def paper_model() -> Reg2RG:
    """Reg2RG at paper geometry on the meta device (shapes only)."""
    with torch.device("meta"):
        model = build_model(PAPER)
    # the chunked loss gathers the labelled positions by value, which meta tensors lack: count the plain loss
    model.loss_chunk_size = None
    return model


def _count(step) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops() / TERA


def _inputs(length: int) -> dict[str, torch.Tensor]:
    meta = dict(device="meta")
    volumes = torch.zeros(PAPER.regions, 1, *PAPER.volume, **meta)
    return dict(
        input_ids=torch.zeros(1, length, dtype=torch.long, **meta),
        # a 4-D causal mask: transformers inspects the values of a 2-D mask, which meta tensors lack
        attention_mask=torch.ones(length, length, dtype=torch.bool, **meta).tril()[None, None],
        region_counts=[PAPER.regions],
        image=torch.zeros(1, 1, *PAPER.volume, **meta),
        texture=volumes,
        geometry=volumes,
        labels=torch.zeros(1, length, dtype=torch.long, **meta),
    )


def ours_step(model: Reg2RG, length: int) -> None:
    model(**_inputs(length)).loss.backward()


def reference_step(model: Reg2RG) -> None:
    reference_loss(model, _inputs(PAPER.reference_length)).backward()


def one_hot_step(model: Reg2RG, length: int = PAPER.reference_length) -> None:
    """The reference splice alone (forward + the gradient of its table)."""
    vocabulary = model.llm.get_input_embeddings().weight
    visual = torch.zeros(1, model.layout.total(PAPER.regions), vocabulary.shape[1], device="meta", requires_grad=True)
    one_hot_splice(_inputs(length)["input_ids"], vocabulary, model.splicer, visual).sum().backward()


def encoders_step(model: Reg2RG) -> None:
    batch = _inputs(1)
    model.visual(batch["region_counts"], batch["image"], batch["texture"], batch["geometry"]).float().sum().backward()


def trainable_by_part(model: Reg2RG) -> dict[str, int]:
    parts: dict[str, int] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            part = "lora" if "lora_" in name else ".".join(name.split(".")[:2])
            parts[part] = parts.get(part, 0) + p.numel()
    return parts


def run(json_path: str | None = None) -> dict:
    """Count both designs; writes ``json_path`` when given and returns the figures."""
    start = time.perf_counter()
    model = paper_model()
    length = PAPER.sample_tokens
    ours = _count(lambda: ours_step(model, length))
    reference = _count(lambda: reference_step(model))
    encoders = _count(lambda: encoders_step(model))
    one_hot = _count(lambda: one_hot_step(model))
    parts = trainable_by_part(model)
    params = dict(model.named_parameters())
    # A 7B run re-loads the frozen LLM and ViT from their paths: its checkpoint holds what trains.
    checkpoint_bytes = sum(p.numel() * p.element_size() for p in params.values() if p.requires_grad)
    full_bytes = sum(p.numel() * p.element_size() for p in params.values())
    figures = {
        "reference_tflop_per_sample": round(reference, 2),
        "ours_tflop_per_sample": round(ours, 2),
        "ratio": round(reference / ours, 2),
        "encoders_tflop_per_sample": round(encoders, 2),
        "one_hot_splice_tflop_per_sample": round(one_hot, 2),
        "tokens_per_sample": {
            "ours": length,
            "reference": PAPER.reference_length,
            "visual": model.layout.total(PAPER.regions),
        },
        "trainable_parameters": sum(parts.values()),
        "trainable_by_part": parts,
        "checkpoint_mb": round(checkpoint_bytes / 2**20, 1),
        "full_state_dict_mb": round(full_bytes / 2**20, 1),
        "seconds": round(time.perf_counter() - start, 1),
    }
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures
