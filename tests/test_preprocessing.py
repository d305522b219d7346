"""The cached fast path gives what the official MONAI pipeline gives, and the cache behaves."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from reg2rg.data.build import build_cache, read_index, study_file
from reg2rg.data.cache import CachedStudy, build_study
from reg2rg.data.dataset import CachedRegionDataset
from reg2rg.data.errors import SkipLog
from reg2rg.data.preprocessing import PreprocessConfig, foreground_box
from reg2rg.data.records import MaskFolder, StudyRecord
from reg2rg.data.reference import reference_sample

AFFINE = np.diag([0.8, 0.8, 2.0, 1.0])


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, AFFINE), str(path))
    return path


def _phantom(rng: np.random.Generator, shape=(45, 38, 23)) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A small CT-like volume: -1024 outside a body ellipse, tissue and air-like lungs inside."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    body = (x / 0.8) ** 2 + (y / 0.7) ** 2 < 1
    volume = np.where(body, rng.normal(40, 30, shape), -1024).astype(np.int16)
    lung = body & ((np.abs(x) - 0.4) ** 2 / 0.09 + y**2 / 0.3 + z**2 / 0.8 < 1)
    volume[lung] = rng.normal(-850, 60, lung.sum()).astype(np.int16)
    bone = body & ((x**2 + (y - 0.5) ** 2) < 0.02)
    volume[bone] = rng.normal(700, 200, bone.sum()).astype(np.int16)
    masks = {
        "lung": lung,
        "bone": bone,
        "heart": body & (x**2 / 0.04 + (y + 0.3) ** 2 / 0.04 + (z - 0.1) ** 2 / 0.1 < 1),
        "thyroid": np.zeros(shape, bool),  # empty: the official pipeline drops it
        "abdomen": body & (z < -0.6),
    }
    return volume, masks


@pytest.fixture
def study(tmp_path, request):
    rng = np.random.default_rng(getattr(request, "param", 0))
    volume, masks = _phantom(rng)
    vol_path = _write(tmp_path / "src" / "vol.nii.gz", volume)
    files = {r: _write(tmp_path / "src" / "seg_vol" / f"{r}.nii.gz", m.astype(np.uint8)) for r, m in masks.items()}
    record = StudyRecord(
        "vol",
        "train",
        vol_path,
        MaskFolder(vol_path.parent / "seg_vol", files),
        {r: f"{r} report." for r in masks},
        "whole",
    )
    return record, volume, masks


@pytest.mark.parametrize("size", [(16, 16, 8), (64, 48, 32), (45, 38, 23)])
def test_cached_sample_equals_monai_reference(study, tmp_path, size):
    record, _, _ = study
    cfg = PreprocessConfig(target_size=size)
    build_study(record, tmp_path / "cache" / "vol.npz", cfg)
    reference = reference_sample(record.volume, record.masks.files, cfg)
    with CachedStudy(tmp_path / "cache" / "vol.npz") as cached:
        assert cached.regions == ["abdomen", "bone", "heart", "lung"]  # canonical order, empty thyroid dropped
        assert cached.meta["dropped"] == {"thyroid": "empty mask"}
        torch.testing.assert_close(cached.global_image(cfg), reference["image"], atol=1e-6, rtol=0)
        for region in cached.regions:
            torch.testing.assert_close(cached.texture(region, cfg), reference["texture"][region], atol=1e-6, rtol=0)
            torch.testing.assert_close(cached.geometry(region, cfg), reference["geometry"][region], atol=1e-6, rtol=0)
    assert set(reference["texture"]) == {"abdomen", "bone", "heart", "lung"}


@pytest.mark.parametrize("mode", ["nearest", "trilinear"])
def test_other_interpolation_modes_match_monai(study, tmp_path, mode):
    record, _, _ = study
    cfg = PreprocessConfig(target_size=(20, 18, 10), interpolation=mode)
    build_study(record, tmp_path / "vol.npz", cfg)
    reference = reference_sample(record.volume, record.masks.files, cfg)
    with CachedStudy(tmp_path / "vol.npz") as cached:
        torch.testing.assert_close(cached.global_image(cfg), reference["image"], atol=1e-5, rtol=0)
        torch.testing.assert_close(cached.texture("lung", cfg), reference["texture"]["lung"], atol=1e-5, rtol=0)
        torch.testing.assert_close(cached.geometry("heart", cfg), reference["geometry"]["heart"], atol=1e-5, rtol=0)


def test_cache_serves_a_size_it_did_not_precompute(study, tmp_path):
    record, _, _ = study
    build_study(record, tmp_path / "vol.npz", PreprocessConfig(target_size=(16, 16, 8)))
    other = PreprocessConfig(target_size=(24, 20, 12))
    reference = reference_sample(record.volume, record.masks.files, other)
    with CachedStudy(tmp_path / "vol.npz") as cached:
        torch.testing.assert_close(cached.global_image(other), reference["image"], atol=1e-6, rtol=0)
        torch.testing.assert_close(cached.geometry("lung", other), reference["geometry"]["lung"], atol=1e-6, rtol=0)
        torch.testing.assert_close(cached.texture("heart", other), reference["texture"]["heart"], atol=1e-6, rtol=0)


def test_lfd_off_is_the_masked_volume_in_the_image_frame(study, tmp_path):
    """Without LFD a region is the image x mask (-1024 outside), cropped and resized like the image."""
    record, volume, masks = study
    cfg = PreprocessConfig(target_size=(16, 16, 8))
    build_study(record, tmp_path / "vol.npz", cfg)
    box = foreground_box(volume > cfg.foreground_hu)
    crop = tuple(slice(lo, hi) for lo, hi in box)
    masked = np.where(masks["heart"], volume, -1024)[crop].astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(masked)[None, None], size=cfg.target_size, mode="area")[
        0, 0
    ]
    expected = (expected.clamp(-1000, 200) + 400) / 600
    with CachedStudy(tmp_path / "vol.npz") as cached:
        lfd_off = cached.masked_volume("heart", cfg)
        torch.testing.assert_close(lfd_off, expected, atol=1e-6, rtol=0)
        assert not torch.allclose(lfd_off, cached.texture("heart", cfg))


def test_cache_file_is_compact_and_lossless(study, tmp_path):
    record, volume, masks = study
    build_study(record, tmp_path / "vol.npz", PreprocessConfig(target_size=(16, 16, 8)))
    with CachedStudy(tmp_path / "vol.npz") as cached:
        box = tuple(slice(lo, hi) for lo, hi in cached.meta["box"])
        np.testing.assert_array_equal(cached.volume, volume[box])
        mask_box = cached.meta["regions"]["lung"]["mask_box"]
        np.testing.assert_array_equal(cached.mask("lung"), masks["lung"][box][tuple(slice(a, b) for a, b in mask_box)])
    assert not list(tmp_path.glob(".*.tmp"))


def _records(tmp_path: Path, n: int) -> list[StudyRecord]:
    records = []
    for i in range(n):
        volume, masks = _phantom(np.random.default_rng(i), shape=(20, 18, 10))
        vol = _write(tmp_path / "src" / f"s{i}.nii.gz", volume)
        files = {
            r: _write(tmp_path / "src" / f"seg_s{i}" / f"{r}.nii.gz", m.astype(np.uint8)) for r, m in masks.items()
        }
        reports = {r: f"{r} of study {i}." for r in ("lung", "heart", "bone")}
        records.append(
            StudyRecord(
                f"s{i}",
                "train",
                vol,
                MaskFolder(vol.parent / f"seg_s{i}", files),
                reports,
                f"report {i}",
                {"Cardiomegaly": i % 2},
            )
        )
    return records


def test_build_cache_is_resumable_and_skips_bad_studies(tmp_path):
    records = _records(tmp_path, 4)
    records[2].volume.write_bytes(b"not a gzip file")  # a corrupt study in the middle
    cfg = PreprocessConfig(target_size=(8, 8, 4))
    first = build_cache(records, tmp_path / "cache", "train", cfg, workers=2, skips=SkipLog("skip"))
    assert (first["usable"], first["built"], first["reused"]) == (3, 3, 0)
    assert list(first["skipped"].values()) == [1] and first["skips"][0]["study_id"] == "s2"
    assert str(records[2].volume) in first["skips"][0]["path"]
    assert [e["study_id"] for e in read_index(tmp_path / "cache", "train")] == ["s0", "s1", "s3"]

    stamp = study_file(tmp_path / "cache", "s0").stat().st_mtime_ns
    study_file(tmp_path / "cache", "s1").write_bytes(b"half a file")  # an interrupted write elsewhere
    second = build_cache(records, tmp_path / "cache", "train", cfg, workers=1)
    assert (second["built"], second["reused"]) == (1, 2)
    assert study_file(tmp_path / "cache", "s0").stat().st_mtime_ns == stamp
    report = json.loads((tmp_path / "cache" / "preprocess_report.json").read_text())
    assert report["train"]["usable"] == 3 and report["train"]["cache_bytes"] > 0

    with pytest.raises(Exception, match="s2.nii.gz"):
        build_cache(records, tmp_path / "strict", "train", cfg, skips=SkipLog("strict"))


def test_a_study_whose_source_files_changed_is_rebuilt(tmp_path):
    """The cache follows its sources: a rewritten volume or mask (a regenerated dataset) is not served stale."""
    records = _records(tmp_path, 3)
    cfg = PreprocessConfig(target_size=(8, 8, 4))
    build_cache(records, tmp_path / "cache", "train", cfg)
    volume, _ = _phantom(np.random.default_rng(9), shape=(20, 18, 10))
    _write(records[0].volume, volume)
    heart = records[2].masks.files["heart"]
    os.utime(heart, ns=(heart.stat().st_atime_ns, heart.stat().st_mtime_ns + 10**9))  # same bytes, touched
    again = build_cache(records, tmp_path / "cache", "train", cfg)
    assert (again["built"], again["reused"]) == (2, 1)
    assert (build_cache(records, tmp_path / "cache", "train", cfg)["reused"]) == 3


def test_dataset_samples_and_region_order(tmp_path):
    records = _records(tmp_path, 3)
    cfg = PreprocessConfig(target_size=(8, 8, 4))
    build_cache(records, tmp_path / "cache", "train", cfg)
    canonical = CachedRegionDataset(tmp_path / "cache", "train", cfg, shuffle_regions=False)
    sample = canonical[1]
    assert sample["regions"] == ["bone", "heart", "lung"]
    assert sample["region_reports"] == ["bone of study 1.", "heart of study 1.", "lung of study 1."]
    assert (
        sample["image"].shape == (1, 8, 8, 4) and sample["texture"].shape == (3, 1, 8, 8, 4) == sample["geometry"].shape
    )
    assert sample["image"].min() >= -1 and sample["image"].max() <= 1
    assert sample["geometry"].min() >= 0 and sample["geometry"].max() <= 1
    assert sample["labels"] == {"Cardiomegaly": 1}

    shuffled = CachedRegionDataset(tmp_path / "cache", "train", cfg, seed=3)
    orders = []
    for epoch in range(12):
        shuffled.set_epoch(epoch)
        orders.append(tuple(shuffled.region_order(0)))
    assert len(set(orders)) > 1 and all(sorted(o) == ["bone", "heart", "lung"] for o in orders)
    again = CachedRegionDataset(tmp_path / "cache", "train", cfg, seed=3)
    again.set_epoch(5)
    assert tuple(again.region_order(0)) == orders[5]
    picked = again[0]
    assert picked["regions"] == list(orders[5])
    with_canonical = CachedRegionDataset(tmp_path / "cache", "train", cfg, shuffle_regions=False)[0]
    for i, region in enumerate(picked["regions"]):
        j = with_canonical["regions"].index(region)
        torch.testing.assert_close(picked["texture"][i], with_canonical["texture"][j])


def test_dataset_survives_a_cache_file_gone_bad(tmp_path):
    records = _records(tmp_path, 3)
    cfg = PreprocessConfig(target_size=(8, 8, 4))
    build_cache(records, tmp_path / "cache", "train", cfg)
    study_file(tmp_path / "cache", "s1").write_bytes(b"garbage")
    dataset = CachedRegionDataset(tmp_path / "cache", "train", cfg)
    assert dataset[1]["study_id"] == "s2"
    assert list(dataset.bad_reads) == ["s1"]
