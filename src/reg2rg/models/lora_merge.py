"""LoRA folded into the base weights for inference, and the base weights restored bit for bit afterwards.

Unmerged, every LoRA layer adds a dropout, two small matmuls and a scaled add per token: many small
kernels that leave the GPU waiting on Python at batch 1. Merged, a LoRA layer is one matmul, as in
the pretrained LLM. The adapter's own weights (``lora_A``, ``lora_B``: what a checkpoint saves) are
never changed; the base layers' weights (and biases) are copied to the CPU first and written back on exit, so a model
that goes on training or is saved afterwards is exactly the model it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def lora_layers(model: nn.Module) -> list[nn.Module]:
    """The peft LoRA layers of ``model`` (empty for a model without LoRA)."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # peft absent: no model here can hold LoRA layers
        return []
    return [module for module in model.modules() if isinstance(module, LoraLayer)]


@contextmanager
def merged_lora(model: nn.Module) -> Iterator[int]:
    """LoRA merged into ``model``'s base weights inside the block (yields the number of merged layers).

    For inference only: while merged, a backward pass would not reach the adapter.
    """
    layers = lora_layers(model)
    saved = [[p.detach().to("cpu", copy=True) for p in layer.get_base_layer().parameters()] for layer in layers]
    try:
        with torch.no_grad():
            for layer in layers:
                layer.merge()
        yield len(layers)
    finally:
        with torch.no_grad():
            for layer, originals in zip(layers, saved):
                if layer.merged:  # peft's bookkeeping; its subtraction is not exact in bf16, hence the copies
                    layer.unmerge()
                for parameter, original in zip(layer.get_base_layer().parameters(), originals):
                    parameter.copy_(original)
