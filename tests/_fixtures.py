"""Tiny inputs for the data tests: NIfTI volumes and masks, DICOM series, CSVs and dataset layouts.

Everything is written under a test's ``tmp_path``; volumes are 16 x 16 x 8 voxels.
"""

from __future__ import annotations

import csv
import json
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from reg2rg.data.errors import StudyError

SHAPE = (16, 16, 8)  # (X, Y, Z)
BODY = (slice(3, 13), slice(4, 12), slice(1, 7))  # the soft-tissue box of ct_array


@contextmanager
def expect_error(kind: str, path: Path, *phrases: str):
    """Expect a StudyError of ``kind`` that names ``path`` and whose problem says every phrase."""
    with pytest.raises(StudyError) as info:
        yield info
    error = info.value
    assert error.kind == kind, str(error)
    assert error.path == str(path) and str(error).startswith(str(path))
    for phrase in phrases:
        assert phrase in error.problem, f"{phrase!r} not in {error.problem!r}"


def ct_array(shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """(X, Y, Z) int16 HU: air (-1024) around a 40 HU box whose first voxel row is 300 HU bone."""
    array = np.full(shape, -1024, dtype=np.int16)
    array[BODY] = 40
    array[BODY[0].start, BODY[1], BODY[2]] = 300
    return array


def box_mask(lo: tuple[int, int, int], hi: tuple[int, int, int], shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """(X, Y, Z) uint8 mask, 1 inside the half-open box [lo, hi)."""
    mask = np.zeros(shape, dtype=np.uint8)
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
    return mask


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), path)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_mask_folder(folder: Path, names: list[str], affine: np.ndarray | None = None) -> Path:
    """One box mask per file name stem (``"lung"`` -> ``lung.nii.gz``), each box shifted a little."""
    for offset, name in enumerate(names):
        write_nifti(folder / f"{name}.nii.gz", box_mask((2 + offset % 3, 3, 1), (12, 12, 6)), affine)
    return folder


def write_dicom_series(
    folder: Path, array: np.ndarray, spacing: tuple[float, float, float], origin_lps: tuple[float, float, float]
) -> Path:
    """Write an (X, Y, Z) int16 array as axial DICOM slices (identity orientation in LPS)."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.2.1125.1"
    for k in range(array.shape[2]):
        image = sitk.GetImageFromArray(np.ascontiguousarray(array[:, :, k].T))  # (Y, X) rows for one slice
        image.SetSpacing(spacing[:2])
        position = (origin_lps[0], origin_lps[1], origin_lps[2] + k * spacing[2])
        tags = {
            "0008|0060": "CT",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.2",
            "0020|000e": series_uid,
            "0008|0018": f"{series_uid}.{k + 1}",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{value:g}" for value in position),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|0030": f"{spacing[1]:g}\\{spacing[0]:g}",  # row spacing (Y) \ column spacing (X)
            "0018|0050": f"{spacing[2]:g}",
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice_{k:03d}.dcm"))
        writer.Execute(image)
    return folder


# --- RadGenome-ChestCT layout (data/README.md) ---------------------------------------------------

REPORT_CSV = {"train": "train_region_report.csv", "valid": "validation_region_report.csv"}


def radgenome_volume_path(root: Path, study_id: str) -> Path:
    split, patient, scan, _ = study_id.split("_")
    return root / f"{split}_preprocessed" / f"{split}_{patient}" / f"{split}_{patient}{scan}" / f"{study_id}.nii.gz"


def radgenome_mask_folder(root: Path, study_id: str) -> Path:
    return root / f"{study_id.split('_')[0]}_region_mask" / f"seg_{study_id}"


def write_radgenome_study(root: Path, study_id: str, mask_names: list[str]) -> None:
    """The volume and the SAT mask folder of one study."""
    write_nifti(radgenome_volume_path(root, study_id), ct_array())
    write_mask_folder(radgenome_mask_folder(root, study_id), mask_names)


def report_rows(study_id: str, anatomies: list[str], whole: bool = True) -> list[list[str]]:
    """Region report CSV rows: the whole report (empty Anatomy) and one sentence per anatomy."""
    name = f"{study_id}.nii.gz"
    rows = [[name, "", f"Whole report of {study_id}."]] if whole else []
    return rows + [[name, anatomy, f"The {anatomy} of {study_id} is normal."] for anatomy in anatomies]


def write_radgenome_reports(root: Path, split: str, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    return write_csv(
        root / "radgenome_files" / REPORT_CSV[split], ["Volumename", "Anatomy", "Sentence"], rows, encoding
    )
