"""Lesion-centred training and evaluation samples: a cube around the largest lesion of each study."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .crops import AIR_HU, crop, largest_lesion_centre, normalize_hu


@dataclass(frozen=True)
class LesionStudy:
    """One study's lesion: volume (z, y, x) HU, its label map, the largest lesion's five attribute classes."""

    study_id: str
    volume_hu: np.ndarray
    label: np.ndarray
    attributes: np.ndarray
    lesion_type: str = ""
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)


def lesion_sample(study: LesionStudy, crop_size: int, shift=(0, 0, 0)) -> dict:
    """The model's input for a study: the cube centred on its largest lesion (moved by ``shift`` voxels)."""
    centre = np.add(largest_lesion_centre(study.label), shift)
    cube, _ = crop(study.volume_hu, centre, crop_size, AIR_HU)
    mask, _ = crop(study.label > 0, centre, crop_size, False)
    return {
        "study_id": study.study_id,
        "image": torch.from_numpy(normalize_hu(cube))[None],  # (1, S, S, S)
        "mask": torch.from_numpy(mask),  # bool (S, S, S)
        "attributes": torch.from_numpy(np.asarray(study.attributes, dtype=np.int64)),  # (5,)
    }


class LesionCrops(Dataset):
    """Samples of ``studies``; in training each draw moves the cube by up to ``jitter`` voxels per axis and
    flips it at random, drawn from (seed, epoch, index) so that a resumed run draws the same."""

    def __init__(self, studies: Sequence[LesionStudy], crop_size: int, training: bool, jitter: int, seed: int):
        self.studies = list(studies)
        self.crop_size, self.training, self.jitter, self.seed = crop_size, training, jitter, seed
        self.entries = [{"study_id": s.study_id} for s in self.studies]
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.studies)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def on_device(self, batch: dict) -> dict:
        return batch

    def __getitem__(self, index: int) -> dict:
        if not self.training:
            return lesion_sample(self.studies[index], self.crop_size)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sample = lesion_sample(self.studies[index], self.crop_size, rng.integers(-self.jitter, self.jitter + 1, 3))
        axes = [axis for axis in range(3) if rng.random() < 0.5]
        if axes:
            sample["image"] = sample["image"].flip([a + 1 for a in axes])
            sample["mask"] = sample["mask"].flip(axes)
        return sample


class LesionCollator:
    """Stack samples into a batch for ``model(**batch)`` (the study ids are left out). No token sequence:
    ``max_length`` is None, so the trainer's length limits never apply."""

    max_length = None

    def __call__(self, samples: list[dict]) -> dict:
        return {key: torch.stack([s[key] for s in samples]) for key in ("image", "mask", "attributes")}
