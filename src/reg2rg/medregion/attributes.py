"""Patient-specific attributes from masks (the paper's Figure 4): organ volumes, lesion counts, diameters, locations.

Deterministic and spacing-aware. For a boolean (X, Y, Z) mask on a grid with voxel spacing (sx, sy, sz) mm:

- organ volume (ml): voxels x sx*sy*sz / 1000. An empty mask gives 0.0; a 1-voxel mask one voxel's volume.
- lesion count: connected components, 26-neighbourhood (voxels touching by a face, an edge or a corner).
- lesion diameter (mm), per component: its largest bounding-box extent, max(nx*sx, ny*sy, nz*sz), where n* counts
  the voxels the box spans along each axis. A 1-voxel lesion measures max(sx, sy, sz); an empty mask has none.
- lesion location, per component: the location named by the mask (file name or mapping), else the organ mask that
  holds most of the component's voxels, else "unspecified".

A mask that is missing is left out of the result, never invented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

LESION_TYPES: tuple[str, ...] = ("nodule", "cyst", "effusion")
UNSPECIFIED = "unspecified"
_NEIGHBOURHOOD = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity, as skimage.measure.label's 3D default


@dataclass(frozen=True)
class LesionMask:
    """One lesion mask: its type (``LESION_TYPES``), voxels and, when its name says it, where it is."""

    type: str
    mask: np.ndarray  # bool (X, Y, Z)
    location: str | None = None


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along the three voxel axes of a (4, 4) voxel-to-world affine."""
    return tuple(float(s) for s in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))


def volume_ml(mask: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """The mask's volume in millilitres (1 ml = 1000 mm³)."""
    return float(np.count_nonzero(mask)) * float(np.prod(spacing)) / 1000.0


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(int32 (X, Y, Z) component labels 1..n, 0 outside; n) under the 26-neighbourhood."""
    labels, count = ndimage.label(mask, structure=_NEIGHBOURHOOD)
    return labels, int(count)


def diameters_mm(labels: np.ndarray, count: int, spacing: tuple[float, float, float]) -> list[float]:
    """Largest bounding-box extent in mm of each component 1..count, in label order."""
    out = []
    for box in ndimage.find_objects(labels, max_label=count):  # (slice x, slice y, slice z) per component
        out.append(max((axis.stop - axis.start) * size for axis, size in zip(box, spacing, strict=True)))
    return out


def component_locations(labels: np.ndarray, count: int, organs: dict[str, np.ndarray]) -> list[str]:
    """For each component 1..count, the organ whose mask holds most of its voxels (ties: the first organ name in
    sorted order), else ``UNSPECIFIED``."""
    locations = []
    for index in range(1, count + 1):
        inside = labels == index
        overlaps = {name: int(np.count_nonzero(organ & inside)) for name, organ in sorted(organs.items())}
        best = max(overlaps, key=overlaps.get, default=None)
        locations.append(readable(best) if best is not None and overlaps[best] > 0 else UNSPECIFIED)
    return locations


def readable(name: str) -> str:
    """A mask or label name as words: ``right_upper_lobe`` -> ``right upper lobe``."""
    return " ".join(name.replace("_", " ").replace("-", " ").split())


def extract_attributes(
    organs: dict[str, np.ndarray], lesions: list[LesionMask], spacing: tuple[float, float, float]
) -> dict:
    """``{"organs": {name: {"volume_ml"}}, "lesions": {type: {"count", "diameters_mm", "locations"}}}``.

    ``organs``: organ or region name -> bool (X, Y, Z) mask; ``lesions``: the study's lesion masks (several masks
    of one type add up, in the given order). Types without a mask are left out.
    """
    result: dict = {"organs": {}, "lesions": {}}
    for name, mask in organs.items():
        result["organs"][name] = {"volume_ml": volume_ml(mask, spacing)}
    for lesion in lesions:
        if lesion.type not in LESION_TYPES:
            raise ValueError(f"unknown lesion type {lesion.type!r}; expected one of {LESION_TYPES}")
        labels, count = components(lesion.mask)
        if lesion.location is None:
            locations = component_locations(labels, count, organs)
        else:
            locations = [lesion.location] * count
        entry = result["lesions"].setdefault(lesion.type, {"count": 0, "diameters_mm": [], "locations": []})
        entry["count"] += count
        entry["diameters_mm"] += diameters_mm(labels, count, spacing)
        entry["locations"] += locations
    return result
