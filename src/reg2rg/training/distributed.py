"""The Accelerator of one training run: one device, DDP (torchrun) or DeepSpeed ZeRO (``deepspeed=zero2``).

Accelerate keeps its state in process-wide singletons and environment variables; the session
clears them at the end, so that the next run in the same process (a Hydra multirun, a notebook)
starts from a clean slate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import DeepSpeedPlugin, broadcast_object_list

from reg2rg.files import atomic_write_bytes

from .batching import Batching
from .deepspeed_config import fill_auto
from .ranks import single_process_environment

DEEPSPEED_FLAG = "ACCELERATE_USE_DEEPSPEED"  # set by Accelerate when given a DeepSpeed plugin, read by the next one


def world_size() -> int:
    """Processes of this run, as the launcher (torchrun, deepspeed, SLURM via torchrun) announced them."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@contextmanager
def accelerator_session(
    batching: Batching, mixed_precision: str, max_grad_norm: float, deepspeed: Mapping[str, Any] | None
) -> Iterator[Accelerator]:
    """An Accelerator for ``batching``; with a ``deepspeed`` config (its "auto" values filled) a DeepSpeed one."""
    plugin = None
    if deepspeed is not None:
        single_process_environment()
        plugin = DeepSpeedPlugin(hf_ds_config=fill_auto(deepspeed, batching, max_grad_norm, mixed_precision))
    flag = os.environ.get(DEEPSPEED_FLAG)
    # Accelerate only runs DDP over CPUs (gloo) when told to stay on the CPU: processes without a GPU.
    ddp_on_cpus = plugin is None and batching.world_size > 1 and not torch.cuda.is_available()
    try:
        yield Accelerator(
            gradient_accumulation_steps=batching.accumulation,
            mixed_precision=mixed_precision,
            deepspeed_plugin=plugin,
            cpu=ddp_on_cpus,
        )
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        if flag is None:
            os.environ.pop(DEEPSPEED_FLAG, None)


def from_main_process(accelerator: Accelerator, value: Any) -> Any:
    """The main process's ``value`` (picklable) on every process."""
    chosen = [value]
    if accelerator.num_processes > 1:
        broadcast_object_list(chosen, from_process=0)
    return chosen[0]


def shared_path(accelerator: Accelerator, path: str | Path) -> Path:
    """The main process's ``path`` on every process (each process's Hydra may have stamped its own run folder)."""
    return Path(from_main_process(accelerator, str(path)))


def write_deepspeed_config(accelerator: Accelerator, path: Path) -> None:
    """The DeepSpeed config this run used, "auto" values filled, for the record."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:
        atomic_write_bytes(path, (json.dumps(plugin.deepspeed_config, indent=2) + "\n").encode("utf-8"))
