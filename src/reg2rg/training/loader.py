"""The training data order: which samples each process reads at each optimizer step, resumable at any step.

An epoch's order is a permutation of the split drawn from (seed, epoch), cut to whole optimizer
steps (the few samples left over differ every epoch). Step ``s`` takes the block
``order[s*E : (s+1)*E]`` (E: the effective batch); inside it, micro-batch ``m`` of rank ``r`` is the
slice ``[(m*W + r)*B : (m*W + r + 1)*B]`` (W processes, B per device). A step therefore sees the same
samples on any number of GPUs, and resuming at step ``k`` skips indices without reading them.
Region orders come from the dataset's own (seed, epoch, index) draw: ``set_epoch`` before each epoch.

Grouped by length (``trainer.group_by_length``), the permutation is cut into mega-batches of
``GROUP_STEPS`` steps; each is sorted by sequence length (longest first) and cut into its steps, and
the steps of the epoch are shuffled (the same generator, drawn after the permutation). A step's
samples, and so each micro-batch's, are then of similar length, and a micro-batch pads little. The
order stays a function of (seed, epoch) and the lengths: resuming continues it exactly.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from reg2rg.data.dataset import CachedRegionDataset
from reg2rg.text.collate import Reg2RGCollator

from .batching import Batching
from .preemption import shield_from_signals

log = logging.getLogger(__name__)

OVERLENGTH = ("truncate", "skip")
GROUP_STEPS = 50  # steps per mega-batch sorted by length: long enough to find similar lengths, short enough to mix


def studies_digest(data: CachedRegionDataset) -> str:
    """SHA-256 of the split's study ids in index order: what the epoch permutations are permutations of."""
    return hashlib.sha256("\n".join(entry["study_id"] for entry in data.entries).encode("utf-8")).hexdigest()


def limit_lengths(data: CachedRegionDataset, collate: Reg2RGCollator, policy: str, report: bool) -> dict[str, int]:
    """Studies whose training sequence is longer than ``collate.max_length`` tokens, with their lengths.

    ``policy`` truncate: the collate cuts them (their report's end is lost); skip: they leave ``data``.
    ``report``: log each with its study id, and the count. Lengths are measured in the canonical region
    order; a shuffled order may differ by a token or two, which the collate's cut absorbs.
    """
    if policy not in OVERLENGTH:
        raise ValueError(f"trainer.overlength must be one of {OVERLENGTH}, got {policy!r}")
    if collate.max_length is None:
        return {}
    samples = [data.text_sample(index) for index in range(len(data))]
    lengths = collate.training_lengths(samples)
    over = {s["study_id"]: n for s, n in zip(samples, lengths) if n > collate.max_length}
    if report and over:
        action = "its report is cut there" if policy == "truncate" else "left out of training"
        for study, length in over.items():
            log.warning("study %s: %d tokens exceed max_length=%d; %s", study, length, collate.max_length, action)
        log.warning(
            "%d of %d training studies exceed max_length=%d tokens (trainer.overlength=%s)",
            len(over),
            len(samples),
            collate.max_length,
            policy,
        )
    if policy == "skip" and over:
        data.leave_out(set(over))
    return over


def sequence_lengths(data: CachedRegionDataset, collate: Reg2RGCollator) -> np.ndarray:
    """Tokens of each sample's training sequence after the cut to ``collate.max_length``, in index order: (N,).
    Measured in the canonical region order (a shuffled order may differ by a token or two)."""
    lengths = np.array(collate.training_lengths([data.text_sample(index) for index in range(len(data))]))
    return lengths if collate.max_length is None else np.minimum(lengths, collate.max_length)


def steps_per_epoch(size: int, batching: Batching) -> int:
    """Whole optimizer steps in an epoch of ``size`` samples; refuses a split smaller than one step."""
    steps = size // batching.effective
    if steps == 0:
        raise ValueError(f"the training split has {size} studies, less than one effective batch ({batching.effective})")
    return steps


def epoch_order(size: int, step_size: int, seed: int, epoch: int, lengths: np.ndarray | None = None) -> np.ndarray:
    """The sample indices of an epoch's whole steps, step after step: (steps x ``step_size``,).

    ``lengths`` (``size``,): group the steps by length (module docstring); None: the plain permutation.
    """
    generator = np.random.default_rng([seed, epoch])
    order = generator.permutation(size)[: size // step_size * step_size]
    if lengths is None:
        return order
    steps = []
    for start in range(0, len(order), GROUP_STEPS * step_size):
        mega = order[start : start + GROUP_STEPS * step_size]
        mega = mega[np.argsort(-lengths[mega], kind="stable")]  # longest first
        steps += np.split(mega, len(mega) // step_size)
    return np.concatenate([steps[i] for i in generator.permutation(len(steps))])


def padding_fraction(lengths: np.ndarray, order: np.ndarray, per_device: int) -> float:
    """The share of padding among the tokens of ``order``'s micro-batches (its consecutive runs of
    ``per_device`` samples, as ``StepSampler`` deals them out), each padded to its longest sample."""
    batches = lengths[order].reshape(-1, per_device)  # (micro-batches, B)
    return float(1 - batches.sum() / (batches.max(axis=1).sum() * per_device))


class StepSampler(Sampler[int]):
    """This process's sample indices for one epoch, from optimizer step ``start_step`` on (module docstring).

    ``lengths``: each sample's sequence length, to group steps by length; None: no grouping.
    """

    def __init__(
        self,
        size: int,
        batching: Batching,
        rank: int,
        seed: int,
        epoch: int,
        start_step: int = 0,
        lengths: np.ndarray | None = None,
    ):
        if lengths is not None and len(lengths) != size:
            raise ValueError(f"{len(lengths)} sequence lengths for a split of {size} samples")
        self.size = size
        self.lengths = lengths
        self.batching = batching
        self.rank = rank
        self.seed = seed
        self.epoch = epoch
        self.steps = steps_per_epoch(size, batching)
        if not 0 <= start_step <= self.steps:
            raise ValueError(f"start step {start_step} is outside an epoch of {self.steps} steps")
        self.start_step = start_step

    def __iter__(self) -> Iterator[int]:
        order = epoch_order(self.size, self.batching.effective, self.seed, self.epoch, self.lengths)
        b, world, step_size = self.batching.per_device, self.batching.world_size, self.batching.effective
        for step in range(self.start_step, self.steps):
            block = order[step * step_size : (step + 1) * step_size]
            for micro in range(self.batching.accumulation):
                first = (micro * world + self.rank) * b
                yield from block[first : first + b].tolist()

    def __len__(self) -> int:
        return (self.steps - self.start_step) * self.batching.accumulation * self.batching.per_device


class MarkedSubstitutes(Dataset):
    """Marks each sample that stands in for an unreadable study (CachedRegionDataset reads the next one instead).

    The mark travels with the sample, so the main process can count unreadable studies even when
    DataLoader workers, each with its own copy of the dataset, did the reading.
    """

    def __init__(self, dataset: CachedRegionDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.dataset[index]
        requested = self.dataset.entries[index]["study_id"]
        return {**sample, "unreadable": requested if sample["study_id"] != requested else None}


class CollateWithUnreadable:
    """Collate marked samples: (the model's batch, the study ids that could not be read)."""

    def __init__(self, collate: Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]]):
        self.collate = collate

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], list[str]]:
        return self.collate(samples), [s["unreadable"] for s in samples if s["unreadable"]]


def epoch_loader(
    dataset: CachedRegionDataset,
    collate: Callable,
    batching: Batching,
    rank: int,
    seed: int,
    epoch: int,
    start_step: int = 0,
    num_workers: int = 0,
    lengths: np.ndarray | None = None,
) -> DataLoader:
    """The loader of one epoch: batches of ``(batch, unreadable study ids)`` in the order of ``StepSampler``
    (grouped by ``lengths`` when given).

    Its generator is seeded from (seed, epoch), so creating it draws nothing from the global RNG
    and resuming mid-epoch leaves the model's random state (dropout) exactly where it was.
    """
    dataset.set_epoch(epoch)
    sampler = StepSampler(len(dataset), batching, rank, seed, epoch, start_step, lengths)
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    return DataLoader(
        MarkedSubstitutes(dataset),
        batch_size=batching.per_device,
        sampler=sampler,
        collate_fn=CollateWithUnreadable(collate),
        num_workers=num_workers,
        worker_init_fn=shield_from_signals if num_workers else None,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
    )
