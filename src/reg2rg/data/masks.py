"""Region masks on the volume grid, from a SAT mask folder or a label map plus a region mapping.

Problems are ``StudyError``s naming the file, with stable kinds: ``missing_mask``,
``not_binary``, ``not_label_map``, ``no_mapping``, ``grid_mismatch``, ``empty_masks`` and
``mapping`` (a mapping YAML), plus the file-level kinds of ``reg2rg.data.volumes``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from scipy import ndimage

from reg2rg.constants import REGIONS, canonical_region
from reg2rg.data.errors import MAX_VOXELS, StudyError
from reg2rg.data.records import LabelMap, MaskFolder, MaskSource
from reg2rg.data.volumes import Volume, read_nifti, require_file

log = logging.getLogger(__name__)

GRID_POLICIES = ("resample", "reject")
GRID_TOLERANCE_MM = 1e-3  # affines closer than this (every entry) describe the same grid


@dataclass
class RegionMasks:
    """Masks on the volume grid and the regions whose mask was resampled onto it (grid policy resample)."""

    masks: dict[str, np.ndarray] = field(default_factory=dict)  # region -> bool (X, Y, Z)
    resampled: list[str] = field(default_factory=list)


def read_region_masks(
    source: MaskSource,
    reference: Volume,
    regions: Iterable[str] = REGIONS,
    grid: str = "reject",
    max_voxels: int = MAX_VOXELS,
) -> dict[str, np.ndarray]:
    """Boolean (X, Y, Z) masks on ``reference``'s grid for the requested regions that ``source`` has.

    A mask on another grid is rejected (``grid="reject"``, a ``grid_mismatch`` error) or resampled
    by nearest neighbour through the two affines (``grid="resample"``). Empty masks are returned
    as they are; ``drop_empty_regions`` removes them.
    """
    return load_region_masks(source, reference, regions, grid, max_voxels).masks


def load_region_masks(
    source: MaskSource,
    reference: Volume,
    regions: Iterable[str] = REGIONS,
    grid: str = "reject",
    max_voxels: int = MAX_VOXELS,
) -> RegionMasks:
    """``read_region_masks`` that also says which regions it resampled."""
    if grid not in GRID_POLICIES:
        raise ValueError(f"unknown grid policy {grid!r}; expected one of {GRID_POLICIES}")
    wanted = _canonical(regions)
    if isinstance(source, LabelMap):
        return _from_label_map(source, reference, wanted, grid, max_voxels)
    return _from_folder(source, reference, wanted, grid, max_voxels)


def drop_empty_regions(masks: dict[str, np.ndarray], where: str | Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Split off the regions whose mask has no voxel (the official pipeline drops them and their report).

    ``where`` names the masks in messages (``record.masks.location``). Returns (kept masks,
    dropped region names); a study left without any region is an ``empty_masks`` error, since
    there is nothing to ground a region report on.
    """
    kept = {region: mask for region, mask in masks.items() if mask.any()}
    dropped = [region for region in masks if region not in kept]
    if not kept:
        raise StudyError(where, f"every region mask is empty ({', '.join(dropped) or 'no region'})", kind="empty_masks")
    if dropped:
        log.info("%s: dropping empty region masks %s", where, dropped)
    return kept, dropped


def same_grid(shape: tuple[int, ...], affine: np.ndarray, reference: Volume) -> bool:
    """Whether (shape, affine) is ``reference``'s grid: same shape, every affine entry within 1e-3 mm."""
    return tuple(shape) == tuple(reference.shape) and np.allclose(
        affine, reference.affine, rtol=0, atol=GRID_TOLERANCE_MM
    )


def resample_nearest(array: np.ndarray, affine: np.ndarray, reference: Volume) -> np.ndarray:
    """Nearest-neighbour resampling of ``array`` (own grid ``affine``) onto ``reference``'s grid."""
    to_source = np.linalg.inv(affine) @ reference.affine  # (4, 4): reference voxel -> source voxel
    source = array.view(np.uint8) if array.dtype == bool else array
    out = ndimage.affine_transform(
        source,
        to_source[:3, :3],
        offset=to_source[:3, 3],
        output_shape=reference.shape,
        order=0,
        mode="constant",
        cval=0,
    )
    return out.view(bool) if array.dtype == bool else out


def load_region_mapping(yaml_path: str | Path) -> dict[str, tuple[int, ...]]:
    """Read a class-to-region mapping YAML into ``{region: label values}`` (canonical order).

    Format (see configs/mappings/totalsegmentator.yaml)::

        labels: {1: spleen, 2: kidney_right, ...}   # optional id -> class name table
        regions:
          lung: [lung_upper_lobe_left, 11, ...]     # class names from `labels:` and/or ids
          breast: []                                # a region the label map does not have

    Region names may use spaces or underscores; regions with no class are left out.
    """
    path = Path(yaml_path)

    def invalid(problem: str) -> StudyError:
        return StudyError(path, problem, kind="mapping")

    if not path.is_file():
        raise invalid("mapping YAML not found")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise invalid(f"not a readable YAML file: {error}") from error
    if not isinstance(spec, dict) or not isinstance(spec.get("regions"), dict):
        raise invalid(
            "expected a `regions:` table (region -> list of class ids or names) and optionally `labels:` (id -> name)"
        )
    ids_by_name = _label_table(spec.get("labels") or {}, invalid)

    unknown = [str(key) for key in spec["regions"] if canonical_region(str(key)) is None]
    if unknown:
        raise invalid(f"unknown region name(s) {unknown}; the regions are {list(REGIONS)} (spaces or underscores)")
    mapping: dict[str, tuple[int, ...]] = {}
    for key, classes in spec["regions"].items():
        region = canonical_region(str(key))
        if region in mapping:
            raise invalid(f"region '{region}' is listed twice")
        if classes is not None and not isinstance(classes, list):
            raise invalid(f"region '{region}': expected a list of class ids or names, got {classes!r}")
        mapping[region] = tuple(sorted({_class_id(region, item, ids_by_name, invalid) for item in classes or []}))
    return {region: mapping[region] for region in REGIONS if mapping.get(region)}


def _canonical(regions: Iterable[str]) -> list[str]:
    names = list(regions)
    unknown = [name for name in names if canonical_region(name) is None]
    if unknown:
        raise ValueError(f"unknown region name(s) {unknown}; expected some of {list(REGIONS)}")
    return [canonical_region(name) for name in names]


def _from_folder(source: MaskFolder, reference: Volume, regions: list[str], grid: str, max_voxels: int) -> RegionMasks:
    out = RegionMasks()
    for region in regions:
        if region not in source.files:
            continue
        path = require_file(source.files[region], what=f"mask of region '{region}'", missing_kind="missing_mask")
        array, affine = read_nifti(path, max_voxels)
        mask = _binary(path, array)
        if not same_grid(mask.shape, affine, reference):
            mask = _to_reference(path, mask, affine, reference, grid)
            out.resampled.append(region)
        out.masks[region] = mask
    if out.resampled:
        log.info("%s: resampled masks %s to the volume grid (nearest neighbour)", source.location, out.resampled)
    return out


def _from_label_map(source: LabelMap, reference: Volume, regions: list[str], grid: str, max_voxels: int) -> RegionMasks:
    if not source.classes:
        raise StudyError(
            source.path,
            "label map without a class-to-region mapping: give a mapping YAML (e.g. configs/mappings/totalsegmentator.yaml)",
            kind="no_mapping",
        )
    path = require_file(source.path, what="label map", missing_kind="missing_mask")
    labels, affine = read_nifti(path, max_voxels)
    if labels.dtype.kind == "f":
        if not np.array_equal(labels, np.round(labels)):
            raise StudyError(
                path, "label map holds non-integer values; write class ids as integers", kind="not_label_map"
            )
        labels = labels.astype(np.int32)
    if labels.min() < 0:
        raise StudyError(
            path, f"label map holds negative values (min {labels.min()}); class ids must be >= 0", kind="not_label_map"
        )
    resampled = not same_grid(labels.shape, affine, reference)
    if resampled:
        labels = _to_reference(path, labels, affine, reference, grid)
        log.info("%s: resampled the label map to the volume grid (nearest neighbour)", path)
    member = np.zeros(int(labels.max()) + 1, dtype=bool)  # (max label + 1,): label value -> in the region
    out = RegionMasks()
    for region in (region for region in regions if region in source.classes):
        member[:] = False
        member[[value for value in source.classes[region] if value < member.size]] = True
        out.masks[region] = member[labels]
    out.resampled = list(out.masks) if resampled else []
    return out


def _binary(path: Path, array: np.ndarray) -> np.ndarray:
    mask = array != 0
    if not np.array_equal(array, mask):
        values = np.unique(array[array != mask])[:5]
        raise StudyError(
            path,
            f"region mask is not binary: it holds {values.tolist()} besides 0 and 1; "
            "write 0/1 masks (or give a label map with a mapping instead)",
            kind="not_binary",
        )
    return mask


def _to_reference(path: Path, array: np.ndarray, affine: np.ndarray, reference: Volume, grid: str) -> np.ndarray:
    if grid == "reject":
        raise StudyError(
            path,
            f"mask grid {_describe(array.shape, affine)} differs from the grid {_describe(reference.shape, reference.affine)} "
            f"of the volume {reference.path}; write the masks on the volume grid, or set data.grid=resample to resample "
            "them (nearest neighbour)",
            kind="grid_mismatch",
        )
    return resample_nearest(array, affine, reference)


def _describe(shape: tuple[int, ...], affine: np.ndarray) -> str:
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    origin = affine[:3, 3]
    return (
        f"(shape {tuple(shape)}, spacing {np.round(spacing, 3).tolist()} mm, origin {np.round(origin, 3).tolist()} mm)"
    )


def _label_table(labels: object, invalid: Callable[[str], StudyError]) -> dict[str, int]:
    if not isinstance(labels, dict):
        raise invalid("`labels:` must map class ids to class names")
    ids_by_name: dict[str, int] = {}
    for value, name in labels.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1 or not isinstance(name, str):
            raise invalid(f"`labels:` entry {value!r}: {name!r} must map a class id >= 1 to a class name")
        if name in ids_by_name:
            raise invalid(f"`labels:` names class '{name}' twice (ids {ids_by_name[name]} and {value})")
        ids_by_name[name] = value
    return ids_by_name


def _class_id(region: str, item: object, ids_by_name: dict[str, int], invalid: Callable[[str], StudyError]) -> int:
    if isinstance(item, str):
        if item not in ids_by_name:
            raise invalid(f"region '{region}': class '{item}' is not in the `labels:` table")
        return ids_by_name[item]
    if isinstance(item, int) and not isinstance(item, bool) and item >= 1:
        return item
    raise invalid(f"region '{region}': {item!r} is neither a class id >= 1 nor a class name")
