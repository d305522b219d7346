"""Training steps of a random-weight model on this machine: our design vs the reference design, same run.

Both designs train the same model (``geometry.PAPER``: LLaMA2-7B shapes, RadFM encoders, 10 regions)
through the training path: an Accelerator with DeepSpeed ZeRO-2 (``configs/deepspeed/zero2.yaml``)
when a config is given, bf16 on a GPU, activation checkpointing, AdamW on the trainable parameters,
one sample per step. The sample is a real prompt (its visual placeholders and markers) and random
report tokens:

- ours: the sample as long as it is (871 tokens at paper geometry), visual tokens spliced by index;
- reference (official code): the sample padded to 2,048 tokens, visual tokens spliced by the one-hot
  product with the vocabulary + marker + visual table.

Per design: seconds per step (median of ``steps`` timed steps after ``warmup``), samples/s, tokens/s
(the sample's tokens; the reference also processes its padding) and, on a GPU, the peak memory
allocated since the design's first step (model, optimizer states and activations).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate.utils import send_to_device

from reg2rg.models import Reg2RG
from reg2rg.models.llm import activation_checkpointing
from reg2rg.training.batching import Batching
from reg2rg.training.distributed import accelerator_session

from .geometry import GEOMETRIES, Geometry, build_model, reference_loss

IGNORE_INDEX = -100


def training_sample(model: Reg2RG, geometry: Geometry, generator: torch.Generator) -> dict[str, Any]:
    """A batch of one sample of ``geometry.sample_tokens`` tokens: the prompt, random report tokens, EOS."""
    collator = model.collator()
    prompt = collator.prompt_ids(geometry.regions)
    report_tokens = geometry.sample_tokens - len(prompt) - 1
    if report_tokens < 1:
        raise ValueError(
            f"a prompt of {len(prompt)} tokens leaves no report in a {geometry.sample_tokens}-token sample"
        )
    special = set(model.tokenizer.all_special_ids)
    ordinary = torch.tensor([i for i in range(model.tokenizer.vocab_size) if i not in special])
    report = ordinary[torch.randint(len(ordinary), (report_tokens,), generator=generator)].tolist()
    ids = prompt + report + [collator.ids.eos]
    volume = (1, *geometry.volume)
    return {
        "input_ids": torch.tensor([ids]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "labels": torch.tensor([[IGNORE_INDEX] * len(prompt) + ids[len(prompt) :]]),
        "region_counts": torch.tensor([geometry.regions]),
        "image": torch.rand(1, *volume, generator=generator),
        "texture": torch.rand(geometry.regions, *volume, generator=generator),
        "geometry": (torch.rand(geometry.regions, *volume, generator=generator) > 0.5).float(),
    }


def stacked(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batches of one sample (``training_sample``, all equally long) as one batch: every tensor concatenated."""
    return {key: torch.cat([sample[key] for sample in samples]) for key in samples[0]}


def padded(batch: Mapping[str, Any], length: int, pad_id: int) -> dict[str, Any]:
    """``batch`` right-padded to ``length`` tokens, as the official code pads every sample."""
    extra = length - batch["input_ids"].shape[1]
    if extra < 0:
        raise ValueError(f"a {batch['input_ids'].shape[1]}-token sample does not fit in {length} tokens")
    fill = {"input_ids": pad_id, "attention_mask": 0, "labels": IGNORE_INDEX}
    return {
        **batch,
        **{key: torch.nn.functional.pad(batch[key], (0, extra), value=value) for key, value in fill.items()},
    }


def time_steps(step: Callable[[], None], steps: int, warmup: int, device: torch.device) -> list[float]:
    """Seconds of each of ``steps`` steps after ``warmup`` untimed ones."""
    seconds = []
    for index in range(warmup + steps):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index >= warmup:
            seconds.append(time.perf_counter() - start)
    return seconds


def device_and_precision() -> tuple[torch.device, str]:
    """The GPU with bf16 where there is one (Accelerate's mixed-precision name), else the CPU in float32."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return device, "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "no"


def design_loss(accelerator, prepared: torch.nn.Module, design: str, batch: dict[str, Any]) -> torch.Tensor:
    """The training loss of ``batch`` in ``design`` ("ours" or "reference")."""
    if design == "ours":
        return prepared(**batch).loss
    with accelerator.autocast():  # Accelerate autocasts inside the prepared model's forward only
        return reference_loss(accelerator.unwrap_model(prepared), batch)


def run(
    geometry: str = "paper",
    steps: int = 10,
    warmup: int = 3,
    deepspeed_config: str | None = None,
    json_path: str | None = None,
) -> dict:
    """Time both designs; writes ``json_path`` when given and returns the figures."""
    shapes = GEOMETRIES[geometry]
    device, mixed_precision = device_and_precision()
    deepspeed = yaml.safe_load(Path(deepspeed_config).read_text(encoding="utf-8")) if deepspeed_config else None
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.device(device):  # 7B random weights are initialised on the GPU, not copied there
        model = build_model(shapes, dtype="bfloat16" if mixed_precision == "bf16" else "float32")
    build_seconds = time.perf_counter() - start
    sample = training_sample(model, shapes, torch.Generator().manual_seed(0))
    batches = {"ours": sample, "reference": padded(sample, shapes.reference_length, model.special_ids.pad)}
    figures: dict[str, Any] = {
        "geometry": geometry,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "mixed_precision": mixed_precision,
        "zero_stage": (deepspeed or {}).get("zero_optimization", {}).get("stage"),
        "activation_checkpointing": activation_checkpointing(model.llm),
        "steps": steps,
        "warmup": warmup,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "build_seconds": round(build_seconds, 1),
    }
    with accelerator_session(Batching(1, 1, 1), mixed_precision, 1.0, deepspeed) as accelerator:
        trainable = [p for p in model.parameters() if p.requires_grad]
        prepared, optimizer = accelerator.prepare(model, torch.optim.AdamW(trainable, lr=5e-5))

        def loss_of(name: str, batch: dict[str, Any]) -> torch.Tensor:
            return design_loss(accelerator, prepared, name, batch)

        for name, batch in batches.items():
            batch = send_to_device(batch, device)
            loss = partial(loss_of, name, batch)

            def step(loss=loss) -> None:
                accelerator.backward(loss())
                optimizer.step()
                optimizer.zero_grad()

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = statistics.median(time_steps(step, steps, warmup, device))
            tokens = int(batch["attention_mask"].sum())
            figures[name] = {
                "tokens_per_sample": tokens,
                "padded_tokens_per_sample": batch["input_ids"].shape[1],
                "seconds_per_step": round(seconds, 4),
                "samples_per_s": round(1 / seconds, 3),
                "tokens_per_s": round(tokens / seconds, 1),
                "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                if device.type == "cuda"
                else None,
                "gradient_norm": _gradient_norm(accelerator, prepared, trainable, loss),
            }
            if not figures[name]["gradient_norm"] > 0:
                raise RuntimeError(
                    f"no gradient reached the trainable parameters in the {name} design: "
                    "its steps would not be training steps"
                )
    figures["speedup"] = round(figures["reference"]["seconds_per_step"] / figures["ours"]["seconds_per_step"], 2)
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures


def _gradient_norm(
    accelerator, prepared: torch.nn.Module, trainable: list[torch.nn.Parameter], loss: Callable[[], torch.Tensor]
) -> float:
    """The gradient norm of one more (untimed) step: a check that the design really trains."""
    accelerator.backward(loss())
    if hasattr(prepared, "get_global_grad_norm"):  # DeepSpeed reduces the gradients and steps inside backward
        return float(prepared.get_global_grad_norm() or 0.0)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.float().norm() for p in trainable if p.grad is not None]))
    for p in trainable:
        p.grad = None
    return float(norm)
