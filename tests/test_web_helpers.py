"""What the web page's tests share: a tiny synthetic cache, a tiny Reg2RG and an ISRG-CT checkpoint (random
weights), and the places to click until the random model finds a lesion (about half of the crop, for random
weights) - the tests then check where its mask goes, whatever its shape."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from test_model_helpers import VOLUME, tiny_model
from test_visualize import synthetic_cache

from reg2rg.data.preprocessing import PreprocessConfig


def isrg_checkpoint(directory: Path) -> Path:
    """An ISRG-CT model at its default size, random weights (seed 0)."""
    from reg2rg.isrg.model import ISRGModel
    from reg2rg.models import save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(ISRGModel(), directory)


def click_places(rows: int, cols: int, count: int = 25) -> list[tuple[int, int]]:
    """(row, col) pixels of a view to try one after another, from its centre outwards."""
    places = [(r, c) for r in range(rows // 4, 3 * rows // 4 + 1, 2) for c in range(cols // 4, 3 * cols // 4 + 1, 2)]
    return sorted(places, key=lambda p: (p[0] - rows / 2) ** 2 + (p[1] - cols / 2) ** 2)[:count]


def write_data(root: Path) -> tuple[Path, Path, Path]:
    """(a tiny synthetic cache, a tiny random Reg2RG recorded as trained at its settings, an ISRG-CT checkpoint)."""
    from reg2rg.models import save_checkpoint

    cache = synthetic_cache(root / "data")
    trained = {"data": {"preprocessing": asdict(PreprocessConfig(target_size=VOLUME)), "lfd": True}}
    checkpoint = save_checkpoint(tiny_model(), root / "checkpoint", trained_with=trained)
    return cache, checkpoint, isrg_checkpoint(root / "isrg")


def study_folder(cache: Path, folder: Path) -> Path:
    """A NIfTI study folder (volume + masks/) copied from the synthetic dataset the cache was built from."""
    data = cache.parent
    volume = next(data.glob("valid_preprocessed/*/*/*.nii.gz"))
    study_id = volume.name.split(".")[0]
    folder.mkdir(parents=True)
    shutil.copy(volume, folder / volume.name)
    shutil.copytree(data / "valid_region_mask" / f"seg_{study_id}", folder / "masks")
    return folder
