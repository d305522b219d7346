"""Training throughput and peak memory over micro-batch sizes, with and without activation checkpointing.

The training step of ``step`` (the same random-weight model, samples and two designs: ours at the
sample's length, the reference padded to 2,048 tokens and spliced by the one-hot product), one
micro-batch per optimizer step, through plain Accelerate (bf16 on a GPU; DeepSpeed ZeRO-2 partitions
over processes, on one GPU it only adds its own overhead). For every micro-batch size, with activation
checkpointing on and then off, each design: seconds per step (median of ``steps`` after ``warmup``),
samples/s, tokens/s and the peak GPU memory allocated. Ours runs once per ``loss_chunk_sizes`` value
(``Reg2RG.loss_chunk_size``: the chunked LM-head cross-entropy over that many positions; None: the LLM's
own loss over the whole batch's logits); the reference computes the LLM's own loss. A configuration that
runs out of GPU memory is recorded as "OOM" and the larger micro-batches of that design and setting are
not tried. The figures are written to ``json_path`` after every configuration, so a sweep cut short
keeps what it measured.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from typing import Any

import torch
from accelerate.utils import send_to_device

from reg2rg.files import atomic_write_bytes
from reg2rg.models.llm import set_activation_checkpointing
from reg2rg.training.batching import Batching
from reg2rg.training.distributed import accelerator_session

from . import step
from .geometry import GEOMETRIES, Geometry, build_model


def run(
    geometry: str = "paper",
    micro_batches: tuple[int, ...] = (1, 4, 8, 16),
    steps: int = 3,
    warmup: int = 1,
    json_path: str | None = None,
    loss_chunk_sizes: tuple[int | None, ...] = (None,),
) -> dict:
    """Sweep both designs over ``micro_batches`` x activation checkpointing on/off (ours also over
    ``loss_chunk_sizes``); returns the figures."""
    shapes = GEOMETRIES[geometry]
    device, mixed_precision = step.device_and_precision()
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.device(device):
        model = build_model(shapes, dtype="bfloat16" if mixed_precision == "bf16" else "float32")
    figures: dict[str, Any] = {
        "geometry": geometry,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "mixed_precision": mixed_precision,
        "steps": steps,
        "warmup": warmup,
        "loss_chunk_sizes": list(loss_chunk_sizes),
        "build_seconds": round(time.perf_counter() - start, 1),
        "configurations": [],
    }
    generator = torch.Generator().manual_seed(0)
    samples = [step.training_sample(model, shapes, generator) for _ in range(max(micro_batches))]
    with accelerator_session(Batching(1, 1, 1), mixed_precision, 1.0, None) as accelerator:
        prepared, optimizer = accelerator.prepare(
            model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5)
        )
        for checkpointing in (True, False):
            set_activation_checkpointing(model.llm, checkpointing)
            for design, chunk in [("ours", chunk) for chunk in loss_chunk_sizes] + [("reference", None)]:
                model.loss_chunk_size = chunk
                out_of_memory_at = None
                for size in sorted(micro_batches):
                    row = {
                        "design": design,
                        "loss_chunk_size": chunk,
                        "micro_batch": size,
                        "activation_checkpointing": checkpointing,
                    }
                    if out_of_memory_at is not None:
                        row["outcome"] = f"not tried (OOM at micro-batch {out_of_memory_at})"
                    else:
                        batch = step.stacked(samples[:size])
                        row.update(_measure(accelerator, prepared, optimizer, design, batch, shapes, steps, warmup))
                        if row["outcome"] == "OOM":
                            out_of_memory_at = size
                    figures["configurations"].append(row)
                    if json_path:
                        atomic_write_bytes(json_path, (json.dumps(figures, indent=2) + "\n").encode())
    figures["ours_vs_reference"] = _ratios(figures["configurations"])
    if json_path:
        atomic_write_bytes(json_path, (json.dumps(figures, indent=2) + "\n").encode())
    return figures


def _measure(
    accelerator,
    prepared: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    design: str,
    batch: dict[str, Any],
    shapes: Geometry,
    steps: int,
    warmup: int,
) -> dict[str, Any]:
    """One configuration's figures, or ``{"outcome": "OOM"}`` with the GPU memory given back."""
    device = next(prepared.parameters()).device
    if design == "reference":
        batch = step.padded(batch, shapes.reference_length, accelerator.unwrap_model(prepared).special_ids.pad)
    batch = send_to_device(batch, device)

    def train_step() -> None:
        accelerator.backward(step.design_loss(accelerator, prepared, design, batch))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        seconds = statistics.median(step.time_steps(train_step, steps, warmup, device))
    except torch.cuda.OutOfMemoryError:
        seconds = None  # handled below, once the exception (and the activations it holds) is gone
    if seconds is None:
        del batch
        optimizer.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()
        return {"outcome": "OOM"}
    samples, tokens = batch["input_ids"].shape[0], int(batch["attention_mask"].sum())
    return {
        "outcome": "ok",
        "seconds_per_step": round(seconds, 4),
        "samples_per_s": round(samples / seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
    }


def _ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours' samples/s (each loss chunk size) over the reference's, where both ran."""
    reference = {
        (r["micro_batch"], r["activation_checkpointing"]): r.get("samples_per_s")
        for r in rows
        if r["design"] == "reference"
    }
    ratios = []
    for r in rows:
        theirs = reference.get((r["micro_batch"], r["activation_checkpointing"]))
        if r["design"] == "ours" and r.get("samples_per_s") and theirs:
            ratios.append(
                {
                    "micro_batch": r["micro_batch"],
                    "activation_checkpointing": r["activation_checkpointing"],
                    "loss_chunk_size": r["loss_chunk_size"],
                    "speedup": round(r["samples_per_s"] / theirs, 2),
                }
            )
    return ratios
