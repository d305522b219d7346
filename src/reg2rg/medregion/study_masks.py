"""A study's organ and lesion masks for the attribute extractor: a mask folder or a label map plus a mapping.

Every mask must lie on its volume's grid (same shape, affine within 1e-3 mm); one that does not is a
``StudyError`` naming the mask file. Non-zero voxels are the mask.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from reg2rg.data.errors import MAX_VOXELS, StudyError
from reg2rg.data.masks import same_grid
from reg2rg.data.volumes import NIFTI_SUFFIXES, Volume, read_nifti, read_volume, require_file, require_folder
from reg2rg.files import atomic_write_bytes
from reg2rg.medregion.attributes import LESION_TYPES, LesionMask, extract_attributes, readable
from reg2rg.medregion.regions import read_mapping_yaml


@dataclass
class StudyMasks:
    """Organ masks by name, lesion masks and the voxel spacing of the volume they lie on."""

    spacing: tuple[float, float, float]
    organs: dict[str, np.ndarray] = field(default_factory=dict)  # name -> bool (X, Y, Z)
    lesions: list[LesionMask] = field(default_factory=list)

    def attributes(self) -> dict:
        return extract_attributes(self.organs, self.lesions, self.spacing)


def mask_name(path: Path) -> str:
    """A mask file's name without ``.nii.gz`` / ``.nii``."""
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def lesion_of(name: str) -> tuple[str, str | None] | None:
    """(type, location or None) when ``name`` names a lesion mask (``nodule``, ``nodule_right_upper_lobe``), else
    None: the first word is the type, the rest the location."""
    kind, _, rest = name.partition("_")
    if kind.lower() not in LESION_TYPES:
        return None
    return kind.lower(), (readable(rest) or None)


def read_mask_folder(volume_path: str | Path, mask_dir: str | Path, max_voxels: int = MAX_VOXELS) -> StudyMasks:
    """The masks of a folder with one NIfTI per organ, region or lesion (RadGenome's ``seg_<id>`` layout).

    A file named ``<type>[_<location>]`` with a type in ``LESION_TYPES`` is a lesion mask; any other is an organ
    or region mask named by its file name.
    """
    volume = read_volume(volume_path, max_voxels)
    folder = require_folder(mask_dir, what="mask folder", missing_kind="missing_mask")
    files = sorted(p for p in folder.iterdir() if p.name.endswith(NIFTI_SUFFIXES) and not p.name.startswith("."))
    if not files:
        raise StudyError(folder, "no .nii.gz or .nii mask in this folder", kind="missing_mask")
    study = StudyMasks(spacing=volume.spacing)
    for path in files:
        mask = read_mask_on_grid(path, volume, max_voxels)
        name = mask_name(path)
        lesion = lesion_of(name)
        if lesion is None:
            study.organs[name] = mask
        else:
            study.lesions.append(LesionMask(lesion[0], mask, lesion[1]))
    return study


def read_label_map(
    volume_path: str | Path, label_map: str | Path, mapping_path: str | Path, max_voxels: int = MAX_VOXELS
) -> StudyMasks:
    """The organs and lesions of a TotalSegmentator-style label map, named by a mapping YAML's ``organs:`` (name ->
    class names) and ``lesions:`` (type -> {class name: location}); its ``labels_from:`` file (beside it) or
    ``labels:`` gives the id -> class name table. A class the map does not hold gives no organ or lesion."""
    volume = read_volume(volume_path, max_voxels)
    spec = read_mapping_yaml(mapping_path)
    ids = _class_ids(Path(mapping_path), spec)
    labels = _label_values(require_file(label_map, what="label map", missing_kind="missing_mask"), volume, max_voxels)
    present = set(np.unique(labels).tolist())
    study = StudyMasks(spacing=volume.spacing)
    for name, classes in (spec.get("organs") or {}).items():
        wanted = [ids[_known(mapping_path, ids, c)] for c in classes]
        if present.intersection(wanted):
            study.organs[str(name)] = np.isin(labels, wanted)
    for kind, classes in (spec.get("lesions") or {}).items():
        if kind not in LESION_TYPES:
            raise StudyError(mapping_path, f"lesion type '{kind}' is not one of {list(LESION_TYPES)}", kind="mapping")
        for label_name, location in (classes or {}).items():
            if ids[_known(mapping_path, ids, label_name)] in present:
                study.lesions.append(LesionMask(kind, labels == ids[label_name], str(location)))
    return study


def write_attributes(path: str | Path, attributes: dict) -> None:
    """The attributes as indented JSON, written atomically."""
    atomic_write_bytes(path, (json.dumps(attributes, indent=2) + "\n").encode("utf-8"))


def read_mask_on_grid(path: Path, volume: Volume, max_voxels: int = MAX_VOXELS) -> np.ndarray:
    """bool (X, Y, Z): the non-zero voxels of a mask file on ``volume``'s grid (else a ``grid_mismatch`` error)."""
    array, affine = read_nifti(path, max_voxels)
    _require_grid(path, array.shape, affine, volume)
    return array != 0


def _label_values(path: Path, volume: Volume, max_voxels: int) -> np.ndarray:
    labels, affine = read_nifti(path, max_voxels)
    _require_grid(path, labels.shape, affine, volume)
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        raise StudyError(path, "label map holds non-integer values; write class ids as integers", kind="not_label_map")
    return labels.astype(np.int64)


def _require_grid(path: Path, shape: tuple[int, ...], affine: np.ndarray, volume: Volume) -> None:
    if tuple(shape) != tuple(volume.shape):
        problem = f"mask shape {tuple(shape)} differs from the shape {tuple(volume.shape)} of the volume {volume.path}"
        raise StudyError(path, problem, kind="grid_mismatch")
    if not same_grid(shape, affine, volume):
        raise StudyError(
            path,
            f"mask affine {np.round(affine, 3).tolist()} differs from the affine {np.round(volume.affine, 3).tolist()} "
            f"of the volume {volume.path}: write the mask on the volume's grid",
            kind="grid_mismatch",
        )


def _class_ids(mapping_path: Path, spec: dict) -> dict[str, int]:
    """class name -> id from the mapping's ``labels:`` table or the file named by ``labels_from:``."""
    table = spec.get("labels")
    if table is None and spec.get("labels_from"):
        source = mapping_path.parent / str(spec["labels_from"])
        if not source.is_file():
            raise StudyError(mapping_path, f"labels_from: {source} not found", kind="mapping")
        table = (yaml.safe_load(source.read_text(encoding="utf-8")) or {}).get("labels")
    if not isinstance(table, dict) or not table:
        raise StudyError(
            mapping_path, "no `labels:` table (id -> class name) and no `labels_from:` file", kind="mapping"
        )
    return {str(name): int(value) for value, name in table.items()}


def _known(mapping_path: str | Path, ids: dict[str, int], name: object) -> str:
    if str(name) not in ids:
        raise StudyError(mapping_path, f"class '{name}' is not in the label table", kind="mapping")
    return str(name)
