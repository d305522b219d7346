"""The testbed on disk: each phantom study as a volume, mask folders and its truth.

    <root>/<split>/<study_id>/volume.nii.gz          int16 HU
    <root>/<split>/<study_id>/regions/<region>.nii.gz  uint8 0/1, the six MedRegion regions
    <root>/<split>/<study_id>/masks/<name>.nii.gz      uint8 0/1, organs and lesions (nodule, cyst_<organ>, effusion_...)
    <root>/<split>/<study_id>/study.json             {"region_reports": {...}, "truth": {...}}

Study ``i`` of a split depends only on (seed, split, i). gzip streams carry no timestamp, so equal settings
give byte-identical files.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from reg2rg.files import atomic_write_bytes
from reg2rg.medregion.phantom import PhantomConfig, PhantomStudy, make_phantom
from reg2rg.medregion.reports import region_reports

SPLITS = ("train", "valid")


def study_id(split: str, index: int) -> str:
    return f"{split}_{index:04d}"


def phantom_study(cfg: PhantomConfig, seed: int, split: str, index: int) -> PhantomStudy:
    """Study ``index`` of ``split``: its own random stream of (seed, split, index)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index)))
    return make_phantom(cfg, rng)


def write_study(folder: str | Path, study: PhantomStudy) -> None:
    """Write one study into ``folder`` (layout above)."""
    folder = Path(folder)
    _write_nifti(folder / "volume.nii.gz", study.volume, study.affine)
    for group, masks in (("regions", study.regions), ("masks", study.masks)):
        for name, mask in masks.items():
            _write_nifti(folder / group / f"{name}.nii.gz", mask.astype(np.uint8), study.affine)
    record = {"region_reports": region_reports(study.truth), "truth": study.truth}
    atomic_write_bytes(folder / "study.json", (json.dumps(record, indent=2) + "\n").encode("utf-8"))


def write_testbed(root: str | Path, cfg: PhantomConfig, seed: int, counts: dict[str, int]) -> list[Path]:
    """Write ``counts[split]`` studies per split under ``root``; returns the study folders."""
    folders = []
    for split, count in counts.items():
        for index in range(count):
            folder = Path(root) / split / study_id(split, index)
            write_study(folder, phantom_study(cfg, seed, split, index))
            folders.append(folder)
    return folders


def _write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    atomic_write_bytes(path, gzip.compress(image.to_bytes(), compresslevel=1, mtime=0))
