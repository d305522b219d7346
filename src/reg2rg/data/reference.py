"""The official per-sample preprocessing, kept as the yardstick for tests and benchmarks.

It follows the authors' data path step by step (docs/reference.md, "Preprocessing"): every NIfTI file
decoded to float64 with nibabel, each region masked (-1024 outside) and passed through MONAI
``CropForeground(select_fn=HU > -1000)`` + ``Resize`` (mode "area"), the image and the stacked
masks cropped and resized together, then the HU window. Nothing here is used for training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from reg2rg.data.preprocessing import PreprocessConfig, window


def reference_sample(
    volume_path: str | Path, mask_paths: dict[str, str | Path], cfg: PreprocessConfig
) -> dict[str, dict[str, torch.Tensor] | torch.Tensor]:
    """{"image": (X, Y, Z), "texture": {region: (X, Y, Z)}, "geometry": {region: (X, Y, Z)}} at cfg.target_size.

    Regions with an empty mask get no texture (the official code skips them).
    """
    import nibabel as nib
    from monai import transforms

    def foreground(x):
        return x > cfg.foreground_hu

    region_transform = transforms.Compose(
        [
            transforms.CropForeground(select_fn=foreground),
            transforms.Resize(spatial_size=cfg.target_size, mode=cfg.interpolation),
        ]
    )
    image_transform = transforms.Compose(
        [
            transforms.CropForegroundd(keys=["img", "seg"], source_key="img", select_fn=foreground),
            transforms.Resized(keys=["img", "seg"], spatial_size=cfg.target_size, mode=cfg.interpolation),
        ]
    )
    image = nib.load(str(volume_path)).get_fdata()
    textures, masks = {}, []
    for region, path in mask_paths.items():
        mask = nib.load(str(path)).get_fdata()
        masks.append(mask)
        if mask.sum() == 0:
            continue
        masked = image * mask
        masked[mask == 0] = cfg.background_hu
        textures[region] = window(torch.as_tensor(region_transform(masked[np.newaxis]))[0].float(), cfg.hu_window)
    both = image_transform({"img": image[np.newaxis], "seg": np.stack(masks)})
    return {
        "image": window(torch.as_tensor(both["img"])[0].float(), cfg.hu_window),
        "texture": textures,
        "geometry": {region: torch.as_tensor(both["seg"][i]).float() for i, region in enumerate(mask_paths)},
    }
