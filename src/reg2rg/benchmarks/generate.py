"""Greedy generation of a random-weight model: our generation path vs the plain transformers path, same run.

Both decode the same embedded prompts (one study of the geometry's regions per row, each with its own
random volumes; the visual tokens are computed once, untimed) to a forced length (EOS held back:
``min_new_tokens = max_new_tokens``):

- reference: peft's LLM with LoRA unmerged, ``generate`` on ``inputs_embeds`` with transformers'
  dynamic KV cache;
- ours: the same call with LoRA merged into the weights (``merged_lora``) and, with ``compile_decode``,
  a static KV cache and the decoding step compiled (``Reg2RG.generation_config``). Every prompt has
  the same length here, so the sorting by prompt length that ``generate_predictions`` does for a
  split changes nothing.

The LoRA B matrices are drawn from N(0, 0.01^2) instead of peft's zeros, so that merging changes the
weights as a trained adapter's would. Per batch size and path: the warm-up call's seconds (as long as
the timed call when compiling, to compile the shapes it times; else 8 tokens), the timed call's
seconds, ms per decoding step, generated tokens/s; the speed-up (reference seconds / ours), and the
generated tokens where the two greedy outputs differ (merged and unmerged weights round apart in
bf16, and one different token sends greedy decoding on another path).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from transformers import GenerationConfig

from reg2rg.files import atomic_write_bytes
from reg2rg.models import Reg2RG
from reg2rg.models.lora_merge import merged_lora

from .geometry import GEOMETRIES, Geometry, build_model
from .step import device_and_precision

WARMUP_TOKENS = 8


def run(
    geometry: str = "paper",
    batch_sizes: tuple[int, ...] = (1, 32),
    new_tokens: int = 128,
    compile_decode: bool = False,
    json_path: str | None = None,
) -> dict:
    """Time both paths at every batch size; writes ``json_path`` after each measurement and returns the figures."""
    shapes = GEOMETRIES[geometry]
    device, precision = device_and_precision()
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.device(device):
        model = build_model(shapes, dtype="bfloat16" if precision == "bf16" else "float32").eval()
    _draw_lora_b(model, torch.Generator(device).manual_seed(0))
    figures: dict[str, Any] = {
        "geometry": geometry,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(model.llm.dtype).removeprefix("torch."),
        "new_tokens": new_tokens,
        "compile_decode": compile_decode,
        "build_seconds": round(time.perf_counter() - start, 1),
        "batches": {},
    }

    def save() -> None:
        if json_path:
            atomic_write_bytes(json_path, (json.dumps(figures, indent=2) + "\n").encode())

    prompts = {size: _prompts(model, shapes, size, torch.Generator(device).manual_seed(size)) for size in batch_sizes}
    ids: dict[int, dict[str, torch.Tensor]] = {size: {} for size in batch_sizes}
    for size, (embeds, mask) in prompts.items():
        reference = partial(_reference, model, embeds, mask)
        ids[size]["reference"], timing = _measure(reference, new_tokens, WARMUP_TOKENS, device)
        figures["batches"][str(size)] = {"reference": timing}
        save()
    start = time.perf_counter()
    with merged_lora(model):
        figures["merge_seconds"] = round(time.perf_counter() - start, 2)
        for size, (embeds, mask) in prompts.items():
            ours = partial(_ours, model, embeds, mask, compile_decode)
            warmup = new_tokens if compile_decode else WARMUP_TOKENS  # compile the very shapes that are timed
            ids[size]["ours"], figures["batches"][str(size)]["ours"] = _measure(ours, new_tokens, warmup, device)
            figures["batches"][str(size)].update(_comparison(ids[size], figures["batches"][str(size)]))
            save()
    return figures


def _reference(model: Reg2RG, embeds: torch.Tensor, mask: torch.Tensor, tokens: int) -> torch.Tensor:
    """The plain transformers path: peft's LLM as it is, greedy, dynamic KV cache; ids (B, tokens)."""
    settings = GenerationConfig(
        max_new_tokens=tokens,
        min_new_tokens=tokens,
        do_sample=False,
        eos_token_id=model.special_ids.eos,
        pad_token_id=model.special_ids.pad,
    )
    return model.llm.generate(inputs_embeds=embeds, attention_mask=mask, generation_config=settings)


def _ours(model: Reg2RG, embeds: torch.Tensor, mask: torch.Tensor, compile_decode: bool, tokens: int) -> torch.Tensor:
    """``Reg2RG.generate``'s call (run inside ``merged_lora``); ids (B, tokens)."""
    settings = model.generation_config(max_new_tokens=tokens, min_new_tokens=tokens, compile_decode=compile_decode)
    return model.llm.generate(inputs_embeds=embeds, attention_mask=mask, generation_config=settings)


def _draw_lora_b(model: Reg2RG, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator, device=parameter.device) * 0.01)


def _prompts(
    model: Reg2RG, shapes: Geometry, size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embedded prompts (B, L, D) of ``size`` studies of ``shapes.regions`` regions each, and their mask (B, L)."""
    device = generator.device
    ids = torch.tensor([model.collator().prompt_ids(shapes.regions)], device=device)  # (1, L)
    rows = []
    with torch.inference_mode():
        for _ in range(size):  # one study at a time: the encoders never see 11 x B volumes at once
            image = torch.rand(1, 1, *shapes.volume, generator=generator, device=device)
            texture = torch.rand(shapes.regions, 1, *shapes.volume, generator=generator, device=device)
            masks = (torch.rand(shapes.regions, 1, *shapes.volume, generator=generator, device=device) > 0.5).float()
            rows.append(model.embed(ids, [shapes.regions], image, texture, masks))  # (1, L, D)
    embeds = torch.cat(rows)
    return embeds, torch.ones(embeds.shape[:2], dtype=torch.long, device=device)


def _measure(
    generate: Callable[[int], torch.Tensor], new_tokens: int, warmup_tokens: int, device: torch.device
) -> tuple[torch.Tensor, dict[str, float]]:
    """The ids (B, new_tokens) of a timed ``generate(new_tokens)`` after an untimed ``generate(warmup_tokens)``."""
    seconds = []
    for tokens in (warmup_tokens, new_tokens):
        start = time.perf_counter()
        with torch.inference_mode():
            ids = generate(tokens)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    if ids.shape[1] != new_tokens:
        raise RuntimeError(f"generate returned {ids.shape[1]} tokens, not the {new_tokens} forced")
    warmup, timed = seconds
    return ids, {
        "warmup_seconds": round(warmup, 2),
        "seconds": round(timed, 3),
        "ms_per_step": round(1000 * timed / new_tokens, 2),
        "tokens_per_s": round(ids.numel() / timed, 1),
    }


def _comparison(ids: dict[str, torch.Tensor], figures: dict[str, Any]) -> dict[str, Any]:
    """Speed-up of ours and where the two greedy outputs (B, T) differ."""
    same = ids["ours"] == ids["reference"]
    return {
        "speedup": round(figures["reference"]["seconds"] / figures["ours"]["seconds"], 2),
        "generated_tokens": same.numel(),
        "differing_tokens": int((~same).sum()),
        "identical_sequences": int(same.all(dim=1).sum()),
    }
