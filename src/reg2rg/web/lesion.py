"""Lesion mode: an ISRG-CT interactive session on an opened study, clicks in RAS voxels, exports for the user.

The session sees the study's volume in RAS axis order, transposed to (z, y, x) as ``InteractiveSession``
takes it, with the affine of that array; its masks come back (z, y, x) and are kept as RAS (x, y, z).
The exported mask lies on the source volume's grid, with its affine.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from reg2rg.web.studies import OpenedStudy

# (volume (z, y, x) HU, affine of that array) -> an ISRG-CT InteractiveSession
SessionFactory = Callable[[np.ndarray, np.ndarray], Any]


def ras_affine(study: OpenedStudy) -> np.ndarray:
    """Voxel (x, y, z) of the RAS-ordered volume the page shows -> world mm."""
    import nibabel as nib

    meta = study.data.meta
    shift = np.eye(4)
    shift[:3, 3] = [lo for lo, _ in meta["box"]]  # the crop's first voxel on the source grid
    source_shape = [hi - lo for lo, hi in meta["box"]]
    return np.asarray(meta["affine"], dtype=float) @ shift @ nib.orientations.inv_ornt_aff(study.ras.ornt, source_shape)


class LesionSession:
    """Clicks on one study: the current mask, attributes and report after each, undo, reset and exports."""

    def __init__(self, study: OpenedStudy, open_session: SessionFactory):
        self.study = study
        affine_zyx = ras_affine(study)[:, [2, 1, 0, 3]]  # the columns follow the (z, y, x) array's axes
        self.session = open_session(np.ascontiguousarray(study.ras.volume.transpose(2, 1, 0)), affine_zyx)
        self.points: list[tuple[tuple[int, int, int], bool]] = []  # ((x, y, z), positive) in click order
        self.result: Any = None
        self.lock = threading.Lock()  # one click at a time: a double click must not interleave two

    @property
    def mask(self) -> np.ndarray | None:
        """The current lesion mask, bool RAS (X, Y, Z), or None before the first click."""
        return None if self.result is None else np.asarray(self.result.mask, dtype=bool).transpose(2, 1, 0)

    def click(self, voxel: tuple[int, int, int], positive: bool) -> dict[str, Any]:
        x, y, z = voxel
        with self.lock:
            start = time.perf_counter()
            self.result = self.session.click(z, y, x, positive=positive)
            seconds = time.perf_counter() - start
            self.points.append((voxel, positive))
            return {**self.state(), "seconds": round(seconds, 3)}

    def undo(self) -> dict[str, Any]:
        with self.lock:
            if self.points:
                self.result = self.session.undo()
                self.points.pop()
            return self.state()

    def reset(self) -> dict[str, Any]:
        with self.lock:
            self.session.reset()
            self.points, self.result = [], None
            return self.state()

    def state(self) -> dict[str, Any]:
        """What the page shows: the clicks, the mask's size, the attributes with their class probabilities, the report."""
        mask = self.mask
        voxels = 0 if mask is None else int(mask.sum())
        voxel_ml = float(np.prod(self.study.ras.spacing)) / 1000.0
        return {
            "points": [{"voxel": list(voxel), "positive": positive} for voxel, positive in self.points],
            "voxels": voxels,
            "volume_ml": round(voxels * voxel_ml, 3),
            "attributes": {} if self.result is None else _plain(self.result.attributes),
            "report": "" if self.result is None else str(self.result.report),
        }

    def report_json(self) -> bytes:
        return json.dumps({"study_id": self.study.study_id, **self.state()}, indent=2).encode()

    def report_text(self) -> bytes:
        return (str(self.result.report) if self.result is not None else "").encode()

    def mask_nifti(self) -> bytes:
        """The mask as a gzipped NIfTI on the source volume's grid (uint8, 1 = lesion)."""
        import nibabel as nib

        mask = self.mask
        if mask is None:
            raise ValueError("no lesion mask yet: click on the lesion first")
        array, affine = self.study.source_geometry(mask)
        image = nib.Nifti1Image(array, affine)
        image.header.set_xyzt_units("mm")
        return gzip.compress(image.to_bytes(), mtime=0)


def _plain(attributes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The session's {name: {"label", "probabilities": {class: p}}}, probabilities rounded to 4 places."""
    return {
        name: {
            "label": value["label"],
            "probabilities": {k: round(float(p), 4) for k, p in value["probabilities"].items()},
        }
        for name, value in attributes.items()
    }
