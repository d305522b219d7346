"""A DeepSpeed config (``configs/deepspeed/*.yaml``) with its ``"auto"`` values filled from the trainer config.

Filled keys: ``train_micro_batch_size_per_gpu``, ``gradient_accumulation_steps``, ``train_batch_size``
(the resolved batching), ``gradient_clipping`` (``trainer.max_grad_norm``) and ``bf16.enabled`` /
``fp16.enabled`` (``trainer.mixed_precision``). Any other ``"auto"`` is an error that names its key,
rather than a value guessed from a model config that Reg2RG (a plain ``nn.Module``) does not have.

``min_processes`` (reg2rg's key, not DeepSpeed's; ``configs/deepspeed/zero2_multi_gpu.yaml``): a run with
fewer processes trains without DeepSpeed (``deepspeed_for``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .batching import Batching

AUTO = "auto"
MIN_PROCESSES = "min_processes"


def deepspeed_for(selected: Mapping[str, Any] | None, processes: int) -> dict | None:
    """The DeepSpeed config a run of ``processes`` processes uses, without reg2rg's ``min_processes`` key;
    None (plain Accelerate) when none is selected or the run has fewer processes than ``min_processes``."""
    if selected is None:
        return None
    config = dict(selected)
    minimum = config.pop(MIN_PROCESSES, 1)
    return config if processes >= minimum else None


def fill_auto(template: Mapping[str, Any], batching: Batching, max_grad_norm: float, mixed_precision: str) -> dict:
    """A copy of ``template`` with every ``"auto"`` replaced (module docstring)."""
    values = {
        "train_micro_batch_size_per_gpu": batching.per_device,
        "gradient_accumulation_steps": batching.accumulation,
        "train_batch_size": batching.effective,
        "gradient_clipping": max_grad_norm,
        "bf16.enabled": mixed_precision == "bf16",
        "fp16.enabled": mixed_precision == "fp16",
    }
    config = copy.deepcopy(dict(template))
    for dotted, value in values.items():
        *parents, key = dotted.split(".")
        section = config
        for parent in parents:
            section = section.get(parent) or {}
        if section.get(key) == AUTO:
            section[key] = value
    left = sorted(_auto_keys(config))
    if left:
        raise ValueError(f"the DeepSpeed config has 'auto' values that reg2rg cannot fill: {left}; give numbers")
    return config


def _auto_keys(config: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            keys += _auto_keys(value, f"{prefix}{key}.")
        elif value == AUTO:
            keys.append(prefix + key)
    return keys
