"""The study in RAS axis order, its masks, the slices that show them and their radiological display."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from reg2rg.data.cache import CachedStudy


# View name -> the RAS axis it slices (0 = x, patient Left; 1 = y, Anterior; 2 = z, Superior).
VIEWS: dict[str, int] = {"axial": 2, "coronal": 1, "sagittal": 0}
# Orientation letters at the (left, right, top, bottom) edges of each view, radiological display.
_EDGES = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"), "sagittal": ("A", "P", "S", "I")}


class _RasStudy:
    """A cached study's crop and region masks viewed in RAS axis order (views, no copies of the volume)."""

    def __init__(self, study: CachedStudy):
        import nibabel as nib

        self.study = study
        affine = np.asarray(study.meta["affine"], dtype=float)
        self.ornt = nib.orientations.io_orientation(affine)  # (3, 2): input axis -> (RAS axis, flip)
        self.volume = nib.orientations.apply_orientation(study.volume, self.ornt)  # (X, Y, Z) RAS
        sizes = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        self.spacing = np.empty(3)
        for axis, (target, _) in enumerate(self.ornt):
            self.spacing[int(target)] = sizes[axis]
        self.shape = self.volume.shape
        self._masks: dict[str, tuple[list[tuple[int, int]], np.ndarray]] = {}

    def mask(self, region: str) -> tuple[list[tuple[int, int]], np.ndarray]:
        """(box in RAS crop voxels, the bool mask inside it in RAS order) of a region."""
        import nibabel as nib

        if region not in self._masks:
            box = [tuple(b) for b in self.study.meta["regions"][region]["mask_box"]]
            ras_box: list[tuple[int, int]] = [(0, 0)] * 3
            for axis, (target, flip) in enumerate(self.ornt):
                lo, hi = box[axis]
                n = self.study.crop_shape[axis]
                ras_box[int(target)] = (n - hi, n - lo) if flip < 0 else (lo, hi)
            self._masks[region] = (ras_box, nib.orientations.apply_orientation(self.study.mask(region), self.ornt))
        return self._masks[region]

    def profile(self, region: str, axis: int) -> np.ndarray:
        """Voxels of ``region`` in each slice across ``axis``."""
        box, mask = self.mask(region)
        counts = np.zeros(self.shape[axis])
        counts[box[axis][0] : box[axis][1]] = mask.sum(axis=tuple(a for a in range(3) if a != axis))
        return counts

    def plane(self, region: str, axis: int, index: int) -> np.ndarray | None:
        """The region's mask on slice ``index`` across ``axis`` (the other two axes in RAS order), or None."""
        box, mask = self.mask(region)
        lo, hi = box[axis]
        if not lo <= index < hi:
            return None
        part = np.take(mask, index - lo, axis=axis)
        if not part.any():
            return None
        others = [a for a in range(3) if a != axis]
        full = np.zeros([self.shape[a] for a in others], dtype=bool)
        full[box[others[0]][0] : box[others[0]][1], box[others[1]][0] : box[others[1]][1]] = part
        return full


def _best_slice(ras: _RasStudy, regions: Sequence[str], axis: int) -> int:
    """The slice across ``axis`` that cuts through the most regions, each counted once it shows at
    least half of its largest cross-section; ties go to the slice nearest the regions' centroid."""
    n = ras.shape[axis]
    if not regions:
        return n // 2
    profiles = [ras.profile(r, axis) for r in regions]
    score = sum(np.minimum(1.0, p / max(0.5 * p.max(), 1e-9)) for p in profiles)
    total = sum(profiles)
    centre = float((total * np.arange(n)).sum() / total.sum()) if total.sum() else n / 2
    return int(np.argmax(score - 1e-3 * np.abs(np.arange(n) - centre) / n))


def _display(plane: np.ndarray, view: str) -> np.ndarray:
    """A RAS plane (first axis, second axis) -> image rows and columns in the radiological convention."""
    image = plane.T[::-1]  # rows: the second axis (y or z) from its high end (anterior / superior) down
    return image[:, ::-1] if view == "sagittal" else image  # sagittal: anterior (high y) on the left
