"""Compact samples: integer bin sums from the worker, float32 made on the device equal to the float path."""

from __future__ import annotations

import functools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from test_model_helpers import VOLUME, tiny_model

from reg2rg.data.build import build_cache
from reg2rg.data.compact import expand_volumes, volume_bytes
from reg2rg.data.dataset import CachedRegionDataset
from reg2rg.data.preprocessing import PreprocessConfig
from reg2rg.data.records import MaskFolder, StudyRecord
from reg2rg.training.batching import Batching
from reg2rg.training.distributed import accelerator_session
from reg2rg.training.preemption import PreemptionFlag
from reg2rg.training.trainer import Trainer, TrainerConfig

CFG = PreprocessConfig(target_size=VOLUME)  # the tiny model's input size, (32, 32, 16)
# Source shapes: smaller than the target on some axes, larger on others. The image bins of the second hold
# up to 48 voxels (sums down to -48,000: int32 in the cache, centred on the window into int16), those of the
# third up to 75 (+-45,000 even when centred: int32).
SHAPES = [(50, 20, 30), (100, 88, 40), (128, 128, 40)]


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    return path


def _record(root: Path, index: int, shape: tuple[int, int, int]) -> StudyRecord:
    """A body ellipse of noisy tissue (well past both window ends) in -1024 HU air, with three regions."""
    rng = np.random.default_rng(index)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    body = (x / 0.9) ** 2 + (y / 0.8) ** 2 < 1
    volume = np.where(body, rng.normal(-300, 600, shape), -1024).astype(np.int16)
    masks = {"lung": body & (x < -0.1), "heart": body & (x**2 + y**2 < 0.2), "bone": body & (y > 0.4) & (z > -0.5)}
    study = f"s{index}"
    vol = _write(root / f"{study}.nii.gz", volume)
    files = {r: _write(root / f"seg_{study}" / f"{r}.nii.gz", m.astype(np.uint8)) for r, m in masks.items()}
    reports = {r: f"The {r} of study {index} is normal." for r in masks}
    return StudyRecord(study, "train", vol, MaskFolder(vol.parent / f"seg_{study}", files), reports, "")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("compact")
    records = [_record(root / "src", i, SHAPES[i % len(SHAPES)]) for i in range(4)]
    build_cache(records, root / "cache", "train", CFG, workers=1)
    return root / "cache"


def _pair(cache: Path, **options) -> tuple[CachedRegionDataset, CachedRegionDataset]:
    compact = CachedRegionDataset(cache, "train", CFG, seed=5, compact=True, **options)
    float_ = CachedRegionDataset(cache, "train", CFG, seed=5, **options)
    assert compact.compact and not float_.compact
    return compact, float_


@pytest.mark.parametrize("lfd", [True, False])
def test_a_compact_sample_is_smaller_and_expands_to_the_float_sample_bit_for_bit(cache, lfd):
    compact, float_ = _pair(cache, lfd=lfd)
    images = set()
    for index in range(len(compact)):
        small, full = compact[index], float_[index]
        assert small["regions"] == full["regions"]  # the same shuffled order
        images.add((small["image"].dtype, int(small["image_bins"][0, 3])))
        assert small["image"].dtype in (torch.int16, torch.int32) and small["image"].shape == full["image"].shape
        assert small["geometry"].dtype == torch.uint8 and small["geometry"].shape == full["geometry"].shape
        assert small["image_bins"].shape == (1, 4) and small["geometry_bins"].shape == (len(small["regions"]), 4)
        if lfd:
            assert small["texture"].dtype in (torch.int16, torch.int32)
        else:  # no precomputed sums for the masked volumes: float32 as before
            assert small["texture"].dtype == torch.float32 and "texture_bins" not in small
        assert volume_bytes(small) < 0.7 * volume_bytes(full)  # int32 sums: 4 of the float32's 4 bytes
        if lfd and small["image"].dtype == small["texture"].dtype == torch.int16:
            assert volume_bytes(small) < volume_bytes(full) / 2.5  # 2, 2 and 1 bytes of 4
        expanded = expand_volumes(small, CFG)
        assert not {"image_bins", "texture_bins", "geometry_bins"} & expanded.keys()
        for name in ("image", "texture", "geometry"):
            assert expanded[name].dtype == torch.float32
            assert torch.equal(expanded[name], full[name]), (index, name)
    # int16 sums as stored, int32 ones centred on the window into int16, and ones too large for that
    assert images == {(torch.int16, 0), (torch.int16, -400), (torch.int32, -400)}


def test_a_batch_expands_to_the_float_batch_and_gives_the_same_loss(cache):
    compact, float_ = _pair(cache)
    model = tiny_model().eval()
    collate = model.collator()
    indices = [0, 2, 1]  # int16 and int32 images in one batch, offsets 0 and -400
    small = collate([compact[i] for i in indices])
    full = collate([float_[i] for i in indices])
    assert small["image"].dtype == torch.int32 and small["geometry"].dtype == torch.uint8
    assert small["texture_bins"].shape == (small["texture"].shape[0], 4)
    assert volume_bytes(small) < volume_bytes(full) / 2
    expanded = expand_volumes(small, CFG)
    for name in ("image", "texture", "geometry"):
        assert torch.equal(expanded[name], full[name])
    with torch.no_grad():
        assert torch.equal(model(**expanded).loss, model(**full).loss)
    mixed = [compact[0], float_[1]]
    with pytest.raises(ValueError, match="s1 are float samples in a batch of compact ones"):
        collate(mixed)


def test_a_training_step_on_compact_samples_gives_the_float_loss(cache, tmp_path):
    """The trainer's path (loader, collate, transfer, expansion on the device): same loss, same update."""
    results = []
    for compact in (True, False):
        batching = Batching(per_device=2, accumulation=1, world_size=1)
        optimizer = functools.partial(torch.optim.AdamW, lr=1e-3)
        config = TrainerConfig(
            optimizer=optimizer,
            max_steps=1,
            per_device_batch_size=2,
            mixed_precision="no",
            num_workers=0,
            progress_bar=False,
            warmup_steps=0,
            keep_last=1,
        )
        data = CachedRegionDataset(cache, "train", CFG, seed=5, compact=compact)
        with accelerator_session(batching, "no", 1.0, None) as accelerator:
            trainer = Trainer(config, accelerator, tiny_model(), data, batching, 0, tmp_path / str(compact), None)
            trainer.fit(PreemptionFlag())
            weights = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
            results.append((trainer.last_metrics["loss"], weights))
    (compact_loss, compact_weights), (float_loss, float_weights) = results
    assert compact_loss == pytest.approx(float_loss, rel=1e-6, abs=0)
    for name, value in float_weights.items():
        torch.testing.assert_close(compact_weights[name], value, rtol=1e-6, atol=1e-7)
