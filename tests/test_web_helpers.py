"""What the web page's tests share: a tiny synthetic cache, a tiny Reg2RG and a tiny ISRG-CT checkpoint.

The ISRG-CT model has random weights except its mask head, set to call every voxel lesion (the hypernetwork
gives each upscaled channel the weight 1, and a channel sum of GELU(LayerNorm(x)) is never negative). A
session's mask is then the whole crop cube around the first click, so the tests know where the mask must be;
the attributes and the report come from the model's own random heads.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from test_model_helpers import VOLUME, tiny_model
from test_visualize import synthetic_cache

from reg2rg.data.preprocessing import PreprocessConfig


def lesion_everywhere_checkpoint(directory: Path) -> Path:
    from reg2rg.isrg.model import ISRGModel
    from reg2rg.models import save_checkpoint

    torch.manual_seed(0)
    model = ISRGModel()  # crop 32, dim 64: the defaults
    with torch.no_grad():
        model.mask_head.hypernetwork[-1].weight.zero_()
        model.mask_head.hypernetwork[-1].bias.fill_(1.0)
    return save_checkpoint(model, directory)


def write_data(root: Path) -> tuple[Path, Path, Path]:
    """(a tiny synthetic cache, a tiny random Reg2RG recorded as trained at its settings, an ISRG-CT checkpoint)."""
    from reg2rg.models import save_checkpoint

    cache = synthetic_cache(root / "data")
    trained = {"data": {"preprocessing": asdict(PreprocessConfig(target_size=VOLUME)), "lfd": True}}
    checkpoint = save_checkpoint(tiny_model(), root / "checkpoint", trained_with=trained)
    return cache, checkpoint, lesion_everywhere_checkpoint(root / "isrg")


def study_folder(cache: Path, folder: Path) -> Path:
    """A NIfTI study folder (volume + masks/) copied from the synthetic dataset the cache was built from."""
    data = cache.parent
    volume = next(data.glob("valid_preprocessed/*/*/*.nii.gz"))
    study_id = volume.name.split(".")[0]
    folder.mkdir(parents=True)
    shutil.copy(volume, folder / volume.name)
    shutil.copytree(data / "valid_region_mask" / f"seg_{study_id}", folder / "masks")
    return folder
