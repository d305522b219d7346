"""Lesion datasets on disk: the MSD / nnU-Net layout and the KiTS23 layout, with a CSV of attributes per study.

    MSD:    <root>/dataset.json ("training": [{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}])
    nnU-Net <root>/dataset.json (no "training" list), imagesTr/<case>_0000.nii.gz, labelsTr/<case>.nii.gz
    KiTS23: <root>/<case>/imaging.nii.gz and <root>/<case>/segmentation.nii.gz (1 kidney, 2 tumour, 3 cyst)

The attribute CSV (``data.reader.attributes``) has a row per study: ``study_id`` (the case name), the five
attributes of its largest lesion in Table 1's words (``shape``, ``invasion``, ``density``, ``heterogeneity``,
``surface``; reg2rg.isrg.attributes lists the classes) and optionally ``split`` (train / valid / test); without
it a seeded fifth of the studies is valid. ``data.reader.lesion_labels`` names the label values that are lesion.

Each study becomes a cube of ``data.cube`` voxels at ``data.spacing`` mm around its largest lesion (RAS order,
stored (z, y, x)), padded with air where the volume ends. A label map without lesion voxels and a study without
an attribute row are skipped and counted; a class that is not Table 1's is an error naming the file and row.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from .attributes import ATTRIBUTE_NAMES, class_index
from .crops import AIR_HU, crop, largest_lesion_centre
from .data import LesionStudy

KITS23_LABELS = {"kidney": 1, "tumor": 2, "cyst": 3}


def read_lesion_split(data: Mapping[str, Any], split: str) -> tuple[list[LesionStudy], dict[str, int], int]:
    """The studies of ``split`` from ``data.root``: (studies, {reason skipped: count}, studies listed)."""
    root = Path(data["root"])
    reader = data.get("reader") or {}
    cases = kits23_cases(root) if data["source"] == "kits23" else msd_cases(root)
    attributes = read_attribute_csv(Path(reader["attributes"]))
    lesion_labels = reader.get("lesion_labels") or ([KITS23_LABELS["tumor"]] if data["source"] == "kits23" else None)
    skipped: Counter[str] = Counter()
    studies = []
    chosen = [case for case in cases if study_split(case, attributes, reader) == split]
    for case in chosen:
        if case not in attributes:
            skipped["no attribute row"] += 1
            continue
        image, label = cases[case]
        study = read_study(case, image, label, attributes[case], lesion_labels, data["cube"], data["spacing"])
        if study is None:
            skipped["empty label map"] += 1
            continue
        studies.append(study)
    return studies, dict(skipped), len(chosen)


def msd_cases(root: Path) -> dict[str, tuple[Path, Path]]:
    """{case: (image, label)} of an MSD or nnU-Net folder."""
    manifest = root / "dataset.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: an MSD / nnU-Net dataset folder has a dataset.json")
    try:
        listing = json.loads(manifest.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{manifest}: not valid JSON ({error})") from error
    if "training" in listing:  # MSD
        pairs = {}
        for entry in listing["training"]:
            image, label = root / entry["image"], root / entry["label"]
            pairs[_case_name(label)] = (image, label)
    else:  # nnU-Net v2: the first channel of each case
        ending = listing.get("file_ending", ".nii.gz")
        pairs = {
            label.name[: -len(ending)]: (root / "imagesTr" / f"{label.name[: -len(ending)]}_0000{ending}", label)
            for label in sorted((root / "labelsTr").glob(f"*{ending}"))
        }
    missing = [str(path) for pair in pairs.values() for path in pair if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{manifest} lists files that are not there: {', '.join(missing[:5])}")
    return pairs


def kits23_cases(root: Path) -> dict[str, tuple[Path, Path]]:
    """{case: (imaging, segmentation)} of a KiTS23 folder; a case without both files is an error."""
    cases = {}
    for folder in sorted(p for p in root.glob("case_*") if p.is_dir()):
        image, label = folder / "imaging.nii.gz", folder / "segmentation.nii.gz"
        if not (image.is_file() and label.is_file()):
            raise FileNotFoundError(f"{folder}: a KiTS23 case holds imaging.nii.gz and segmentation.nii.gz")
        cases[folder.name] = (image, label)
    if not cases:
        raise FileNotFoundError(f"{root}: no case_* folders (the KiTS23 layout)")
    return cases


def read_attribute_csv(path: Path) -> dict[str, dict[str, Any]]:
    """{study_id: {"attributes": (5,) class indices, "split": str | None}} from the attribute CSV."""
    if not path.is_file():
        raise FileNotFoundError(f"attribute CSV not found: {path}")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0]) if rows else set()
    absent = [c for c in ("study_id", *ATTRIBUTE_NAMES) if c not in columns]
    if absent:
        raise ValueError(f"{path}: columns {absent} are missing; it needs study_id and {list(ATTRIBUTE_NAMES)}")
    table = {}
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            labels = np.array([class_index(a, row[a]) for a in ATTRIBUTE_NAMES])
        except ValueError as error:
            raise ValueError(f"{path}, line {number} ({row['study_id']}): {error}") from error
        table[row["study_id"]] = {"attributes": labels, "split": (row.get("split") or None)}
    return table


def study_split(case: str, attributes: Mapping[str, Any], reader: Mapping[str, Any]) -> str:
    """The CSV's split of a case, else valid for a seeded fifth of the cases (stable under adding cases)."""
    if case in attributes and attributes[case]["split"]:
        return attributes[case]["split"]
    seed = int(reader.get("seed", 0))
    draw = np.random.default_rng([seed, *case.encode()]).random()
    return "valid" if draw < float(reader.get("valid_fraction", 0.2)) else "train"


def read_study(
    case: str, image_path: Path, label_path: Path, row: Mapping[str, Any], lesion_labels, cube: int, spacing: float
) -> LesionStudy | None:
    """The cube around the largest lesion, resampled to ``spacing`` mm; None for an empty label map."""
    import nibabel as nib

    image, label = (nib.as_closest_canonical(nib.load(p)) for p in (image_path, label_path))
    if image.shape[:3] != label.shape[:3]:
        raise ValueError(f"{label_path}: label shape {label.shape} differs from its image's {image.shape}")
    labels = np.asarray(label.dataobj)
    lesion = np.isin(labels, lesion_labels) if lesion_labels else labels > 0
    if not lesion.any():
        return None
    zooms = np.array(image.header.get_zooms()[:3], np.float64)  # (x, y, z) mm
    centre = np.array(largest_lesion_centre(lesion))
    # cut generously around the lesion in the file's grid, then resample only that
    half = np.ceil(cube * spacing / zooms / 2).astype(int) + 2
    volume, origin = crop(np.asarray(image.dataobj, np.float32), centre, int(2 * half.max()), AIR_HU)
    region, _ = crop(lesion, centre, int(2 * half.max()), False)
    factors = zooms / spacing
    volume = ndimage.zoom(volume, factors, order=1, mode="nearest")
    region = ndimage.zoom(region.astype(np.uint8), factors, order=0) > 0
    middle = np.array(volume.shape) // 2
    volume, _ = crop(volume, middle, cube, AIR_HU)
    region, _ = crop(region, middle, cube, False)
    # (x, y, z) -> (z, y, x), the order of reg2rg.isrg's volumes
    return LesionStudy(
        case,
        volume.transpose(2, 1, 0).copy(),
        region.transpose(2, 1, 0).copy(),
        row["attributes"],
        lesion_type="",
        spacing=(spacing,) * 3,
    )


def _case_name(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
