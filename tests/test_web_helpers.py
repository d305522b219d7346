"""What the web page's tests share: a tiny synthetic cache and report model, and a stand-in lesion session.

``FakeLesionSession`` keeps ISRG-CT's ``InteractiveSession`` contract (click, undo, reset; results with
``.mask`` (z, y, x), ``.attributes`` and ``.report``) with a rule instead of a model: the mask is the voxels
within 2 voxels of a positive click and not within 2 of a negative one. It tests the page's plumbing (click
geometry, overlays, exports), not a segmentation.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from test_model_helpers import VOLUME, tiny_model
from test_visualize import synthetic_cache

from reg2rg.data.preprocessing import PreprocessConfig

RADIUS = 2  # voxels


@dataclass
class FakeResult:
    mask: np.ndarray  # bool (z, y, x)
    attributes: dict
    report: str


class FakeLesionSession:
    opened: list[FakeLesionSession] = []  # every session made, for the tests to look into

    def __init__(self, volume: np.ndarray, affine: np.ndarray):
        self.volume, self.affine = volume, affine  # (z, y, x) HU, its affine
        self.points: list[tuple[tuple[int, int, int], bool]] = []
        self.undo_result: FakeResult | None = None
        FakeLesionSession.opened.append(self)

    def _result(self) -> FakeResult | None:
        if not self.points:
            return None
        grid = np.indices(self.volume.shape)
        mask = np.zeros(self.volume.shape, dtype=bool)
        for point, positive in self.points:
            near = sum((g - p) ** 2 for g, p in zip(grid, point)) <= RADIUS**2
            mask = mask | near if positive else mask & ~near
        size = "small" if mask.sum() < 60 else "large"
        attributes = {"size": {"label": size, "probabilities": {"small": 0.7, "large": 0.3}}}
        return FakeResult(mask, attributes, f"A {size} lesion of {int(mask.sum())} voxels.")

    def click(self, z: int, y: int, x: int, positive: bool = True) -> FakeResult:
        self.points.append(((z, y, x), positive))
        return self._result()

    def undo(self) -> FakeResult | None:
        self.points.pop()
        self.undo_result = self._result()
        return self.undo_result

    def reset(self) -> None:
        self.points = []


def write_data(root: Path) -> tuple[Path, Path]:
    """(a tiny synthetic cache, a checkpoint of a tiny random Reg2RG recorded as trained at its settings)."""
    from reg2rg.models import save_checkpoint

    cache = synthetic_cache(root / "data")
    trained = {"data": {"preprocessing": asdict(PreprocessConfig(target_size=VOLUME)), "lfd": True}}
    checkpoint = save_checkpoint(tiny_model(), root / "checkpoint", trained_with=trained)
    return cache, checkpoint


def study_folder(cache: Path, folder: Path) -> Path:
    """A NIfTI study folder (volume + masks/) copied from the synthetic dataset the cache was built from."""
    data = cache.parent
    volume = next(data.glob("valid_preprocessed/*/*/*.nii.gz"))
    study_id = volume.name.split(".")[0]
    folder.mkdir(parents=True)
    shutil.copy(volume, folder / volume.name)
    shutil.copytree(data / "valid_region_mask" / f"seg_{study_id}", folder / "masks")
    return folder
