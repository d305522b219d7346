"""Batch geometry on any number of GPUs, steps grouped by sequence length, and DeepSpeed only where it partitions."""

from __future__ import annotations

import numpy as np
import pytest

from reg2rg.training.batching import Batching, resolve_batching
from reg2rg.training.deepspeed_config import deepspeed_for
from reg2rg.training.loader import GROUP_STEPS, StepSampler, epoch_order, padding_fraction

SEED = 11


def report_lengths(size: int, seed: int = 0) -> np.ndarray:
    """Sequence lengths as a chest-CT split has them: a prompt of ~490 tokens and reports of 50-1,000 tokens."""
    generator = np.random.default_rng(seed)
    return 490 + np.clip(generator.lognormal(np.log(300), 0.6, size), 50, 1000).astype(int)


def micro_batches(size: int, batching: Batching, epoch: int, lengths=None, start_step: int = 0) -> list[list[int]]:
    """Every micro-batch of the epoch, all ranks, as the samplers deal them out."""
    batches = []
    for rank in range(batching.world_size):
        indices = list(StepSampler(size, batching, rank, SEED, epoch, start_step, lengths))
        batches += [indices[i : i + batching.per_device] for i in range(0, len(indices), batching.per_device)]
    return batches


def padding_share(lengths: np.ndarray, batches: list[list[int]]) -> float:
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    return 1 - sum(lengths[i] for batch in batches for i in batch) / padded


def test_the_micro_batch_shrinks_where_more_gpus_would_overshoot_the_effective_batch():
    geometry = {w: resolve_batching(4, None, 16, w) for w in (1, 2, 4, 8, 16)}
    assert {w: (b.per_device, b.accumulation) for w, b in geometry.items()} == {
        1: (4, 4),
        2: (4, 2),
        4: (4, 1),
        8: (2, 1),
        16: (1, 1),
    }
    assert all(b.effective == 16 for b in geometry.values())
    with pytest.raises(ValueError, match="not a multiple"):
        resolve_batching(4, None, 16, 3)  # 16 cannot be split over 3 GPUs
    with pytest.raises(ValueError, match="= 32, but trainer.effective_batch_size=16"):
        resolve_batching(4, 1, 16, 8)  # a fixed accumulation is never changed


def test_grouping_by_length_cuts_the_padding():
    size, batching = 2000, Batching(per_device=4, accumulation=4, world_size=1)
    lengths = report_lengths(size)
    plain = padding_share(lengths, micro_batches(size, batching, epoch=0))
    grouped = padding_share(lengths, micro_batches(size, batching, epoch=0, lengths=lengths))
    assert plain > 0.15 and grouped < plain / 5, (plain, grouped)
    order = epoch_order(size, batching.effective, SEED, 0, lengths)
    assert padding_fraction(lengths, order, batching.per_device) == pytest.approx(grouped)


def test_grouped_epochs_hold_each_sample_once_and_the_plain_epochs_samples():
    size, batching = 1000, Batching(per_device=4, accumulation=2, world_size=2)
    lengths = report_lengths(size, seed=1)
    for epoch in (0, 1):
        grouped = [i for batch in micro_batches(size, batching, epoch, lengths) for i in batch]
        plain = [i for batch in micro_batches(size, batching, epoch) for i in batch]
        assert len(grouped) == len(set(grouped)) == size // 16 * 16  # whole steps: the 8 left over wait
        assert set(grouped) == set(plain)  # grouping reorders the epoch; the samples left over are the same


def test_the_grouped_order_is_fixed_by_seed_and_epoch_and_resumes_exactly():
    size, batching = 1000, Batching(per_device=4, accumulation=2, world_size=2)
    lengths = report_lengths(size, seed=2)
    first = micro_batches(size, batching, 3, lengths)
    assert first == micro_batches(size, batching, 3, lengths)
    assert first != micro_batches(size, batching, 4, lengths)
    per_rank = len(first) // batching.world_size  # micro-batches of each rank, rank after rank
    resumed = micro_batches(size, batching, 3, lengths, start_step=5)
    assert resumed == [batch for r in range(2) for batch in first[r * per_rank + 5 * 2 : (r + 1) * per_rank]]
    with pytest.raises(ValueError, match="999 sequence lengths for a split of 1000"):
        StepSampler(size, batching, 0, SEED, 0, lengths=lengths[:-1])


def test_grouped_steps_see_the_same_samples_on_any_number_of_gpus():
    size, lengths = 700, report_lengths(700, seed=3)
    geometries = [resolve_batching(4, None, 16, w) for w in (1, 2, 8)]

    def steps(batching: Batching) -> list[set[int]]:
        order = epoch_order(size, batching.effective, SEED, 0, lengths)
        return [set(order[s : s + 16].tolist()) for s in range(0, len(order), 16)]

    assert steps(geometries[0]) == steps(geometries[1]) == steps(geometries[2])
    one_gpu, two_gpus = (micro_batches(size, b, 0, lengths) for b in geometries[:2])
    assert sorted(one_gpu) == sorted(two_gpus)  # micro-batch 4 on both: the same micro-batches over 1 or 2 ranks


def test_steps_are_shuffled_across_mega_batches():
    size, step_size = 16 * GROUP_STEPS * 4, 16
    lengths = report_lengths(size, seed=4)
    order = epoch_order(size, step_size, SEED, 0, lengths).reshape(-1, step_size)  # (steps, E)
    longest = lengths[order].max(axis=1)
    assert not np.all(np.diff(longest) <= 0)  # not one sorted run: steps of all lengths follow each other
    spans = lengths[order].max(axis=1) - lengths[order].min(axis=1)
    assert np.median(spans) < 0.1 * (lengths.max() - lengths.min())  # but each step is narrow


def test_deepspeed_is_used_from_its_minimum_of_processes():
    zero2 = {"zero_optimization": {"stage": 2}}
    multi = {**zero2, "min_processes": 2}
    assert deepspeed_for(None, 8) is None
    assert deepspeed_for(zero2, 1) == zero2  # deepspeed=zero2: asked for, so used on one process too
    assert deepspeed_for(multi, 1) is None
    assert deepspeed_for(multi, 2) == zero2  # reg2rg's key does not reach DeepSpeed
    assert multi["min_processes"] == 2  # the config given is left as it was
