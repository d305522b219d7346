"""Batch geometry: per-device batch x gradient accumulation x world size = the effective batch of one step."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Batching:
    """How many samples one optimizer step sees, and how they are split over devices and micro-batches."""

    per_device: int  # samples in one forward pass on one device
    accumulation: int  # micro-batches per optimizer step on each device
    world_size: int  # data-parallel processes

    @property
    def effective(self) -> int:
        return self.per_device * self.accumulation * self.world_size


def resolve_batching(per_device: int, accumulation: int | None, effective: int | None, world_size: int) -> Batching:
    """Fill in the accumulation (None: ``effective / (per_device x world_size)``), or check it against ``effective``.

    The paper's effective batch is 16; giving ``effective`` and leaving ``accumulation`` None keeps
    it at 16 on any number of GPUs. ``per_device`` is then the largest micro-batch: where
    ``per_device x world_size`` exceeds ``effective``, each device takes ``effective / world_size``
    samples. Micro-batch 4: 1 GPU accumulates 4 micro-batches, 2 GPUs 2, 4 GPUs 1; 8 GPUs take
    micro-batches of 2, 16 GPUs of 1.
    """
    if per_device < 1 or world_size < 1:
        raise ValueError(f"per-device batch and world size must be >= 1, got {per_device} and {world_size}")
    if accumulation is None:
        if effective is None:
            raise ValueError("set trainer.effective_batch_size or trainer.gradient_accumulation_steps")
        if per_device * world_size > effective and effective % world_size == 0:
            per_device = effective // world_size  # more devices than the micro-batch needs: smaller micro-batches
        per_pass = per_device * world_size
        if effective % per_pass:
            raise ValueError(
                f"trainer.effective_batch_size={effective} is not a multiple of per_device_batch_size={per_device} "
                f"x {world_size} processes; change one of them or set trainer.gradient_accumulation_steps"
            )
        accumulation = effective // per_pass
    batching = Batching(per_device, accumulation, world_size)
    if accumulation < 1:
        raise ValueError(f"trainer.gradient_accumulation_steps must be >= 1, got {accumulation}")
    if effective is not None and batching.effective != effective:
        raise ValueError(
            f"per_device_batch_size={per_device} x gradient_accumulation_steps={accumulation} x {world_size} "
            f"processes = {batching.effective}, but trainer.effective_batch_size={effective}; set one to null"
        )
    return batching
