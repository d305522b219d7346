"""The preprocessing cache: each study decoded and validated once, stored compactly.

One ``<study_id>.npz`` per study (an uncompressed zip of uint8 blobs, loaded with
``allow_pickle=False``), written to a temporary name and renamed into place:

- ``meta``: JSON (format version, source grid, the image foreground box, per-region boxes,
  dropped regions and why, the parameters the cache depends on);
- ``volume``: the int16 HU volume cropped to the image foreground box (full resolution: the
  texture crops are cut from it);
- ``mask_<i>``: region i's mask (i indexes ``REGIONS``), bit-packed, cropped to its own box;
- ``global_sums`` / ``geometry_<i>``: the area-resized image and masks at the configured
  target size, stored as exact integer bin sums (divide by the bin volumes to get exactly
  what MONAI ``Resize`` gives). Samples at another size or interpolation are computed from
  the full-resolution arrays instead (slower, same result as the reference pipeline).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from reg2rg.constants import REGIONS
from reg2rg.data import codec
from reg2rg.data.errors import StudyError
from reg2rg.data.preprocessing import Box, PreprocessConfig, bin_volumes, box_slices, foreground_box, resize, window
from reg2rg.data.records import StudyRecord

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def _region_key(kind: str, region: str) -> str:
    return f"{kind}_{REGIONS.index(region)}"


def _as_hu_int16(array: np.ndarray, path: str) -> tuple[np.ndarray, bool]:
    """The volume as int16 HU; float data is rounded (CT is integer HU). Returns (array, rounded)."""
    if array.dtype == np.int16:
        return array, False
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < -32768 or high > 32767:
            raise StudyError(path, f"values {low}..{high} do not fit int16 HU", kind="value_range")
        return array.astype(np.int16), False
    rounded = np.rint(array)
    if rounded.min() < -32768 or rounded.max() > 32767:
        raise StudyError(path, "values do not fit int16 HU", kind="value_range")
    if not np.array_equal(rounded, array):
        log.info("%s: non-integer HU rounded to int16 in the cache (error <= 0.5 HU)", path)
        return rounded.astype(np.int16), True
    return rounded.astype(np.int16), False


def _exact_area_sums(block: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """Integer bin sums of an area resize of an integer block (X, Y, Z) -> (size), int32."""
    mean = resize(torch.from_numpy(block), size, "area")
    return torch.round(mean * bin_volumes(block.shape, size)).to(torch.int32).numpy()


def build_study(record: StudyRecord, path: Path, cfg: PreprocessConfig, grid: str = "resample") -> dict:
    """Decode, validate and cache one study; returns its meta. Raises StudyError on bad input."""
    from reg2rg.data.masks import read_region_masks
    from reg2rg.data.volumes import read_volume

    volume = read_volume(record.volume)
    hu, rounded = _as_hu_int16(volume.array, str(record.volume))
    masks = read_region_masks(record.masks, volume, list(record.region_reports), grid=grid)
    box = foreground_box(hu > cfg.foreground_hu)
    if box is None:
        raise StudyError(record.volume, f"no voxel above {cfg.foreground_hu} HU: nothing to crop", kind="all_air")
    crop = hu[box_slices(box)]  # (X, Y, Z) full resolution, image foreground only
    arrays = {"volume": codec.encode(crop)}
    regions, dropped = {}, {}
    precompute = cfg.interpolation == "area"
    if precompute:
        arrays["global_sums"] = codec.encode(_exact_area_sums(crop, cfg.target_size))
    for region in REGIONS:
        if region not in masks:
            continue
        mask = masks[region][box_slices(box)]
        mask_box = foreground_box(mask)
        if mask_box is None:
            dropped[region] = "empty mask"
            continue
        texture_box = foreground_box(mask & (crop > cfg.foreground_hu))
        if texture_box is None:
            dropped[region] = f"no voxel above {cfg.foreground_hu} HU inside the mask"
            continue
        arrays[_region_key("mask", region)] = codec.encode_mask(mask[box_slices(mask_box)])
        regions[region] = {"mask_box": mask_box, "texture_box": texture_box}
        if precompute:
            counts = _exact_area_sums(mask.view(np.uint8), cfg.target_size)
            counts = counts.astype(np.uint8 if counts.max() <= 255 else np.uint16)
            arrays[_region_key("geometry", region)] = codec.encode(counts)
            regions[region]["geometry_dtype"] = str(counts.dtype)
    if not regions:
        reasons = "; ".join(f"{r}: {why}" for r, why in dropped.items()) or "no mask for any reported region"
        raise StudyError(record.volume, f"no usable region ({reasons})", kind="no_usable_region")
    meta = {
        "version": CACHE_VERSION,
        "study_id": record.study_id,
        "source_shape": list(hu.shape),
        "affine": np.asarray(volume.affine).tolist(),
        "box": box,
        "rounded_hu": rounded,
        "foreground_hu": cfg.foreground_hu,
        "precomputed_size": list(cfg.target_size) if precompute else None,
        "regions": regions,
        "dropped": dropped,
    }
    write_npz(path, meta, arrays)
    return meta


def write_npz(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write the study file under a temporary name, then rename it into place (never a half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    header = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, meta=header, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_meta(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(npz["meta"].tobytes())


@dataclass(frozen=True)
class _Box:
    """A region's boxes in the coordinates of the cropped volume."""

    mask: Box
    texture: Box


class CachedStudy:
    """Read access to one cached study; decodes each array at most once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._npz = np.load(self.path, allow_pickle=False)
        self.meta = json.loads(self._npz["meta"].tobytes())
        if self.meta.get("version") != CACHE_VERSION:
            raise StudyError(self.path, f"cache format {self.meta.get('version')} != {CACHE_VERSION}: rebuild it with scripts/preprocess.py", kind="stale_cache")
        self.crop_shape = tuple(hi - lo for lo, hi in self.meta["box"])

    @property
    def regions(self) -> list[str]:
        """The regions with a usable mask, in canonical order."""
        return list(self.meta["regions"])

    def _boxes(self, region: str) -> _Box:
        entry = self.meta["regions"][region]
        return _Box(tuple(map(tuple, entry["mask_box"])), tuple(map(tuple, entry["texture_box"])))

    @cached_property
    def volume(self) -> np.ndarray:
        """int16 HU (X, Y, Z), cropped to the image foreground."""
        return codec.decode(self._npz["volume"], np.int16, self.crop_shape)

    def mask(self, region: str) -> np.ndarray:
        """bool mask of ``region`` inside its own box (see ``_boxes``)."""
        box = self._boxes(region).mask
        return codec.decode_mask(self._npz[_region_key("mask", region)], tuple(hi - lo for lo, hi in box))

    def _precomputed(self, cfg: PreprocessConfig) -> bool:
        return cfg.interpolation == "area" and self.meta["precomputed_size"] == list(cfg.target_size)

    def _full_mask(self, region: str) -> np.ndarray:
        full = np.zeros(self.crop_shape, dtype=bool)
        full[box_slices(self._boxes(region).mask)] = self.mask(region)
        return full

    def global_image(self, cfg: PreprocessConfig) -> torch.Tensor:
        """Windowed global volume (target size)."""
        if self._precomputed(cfg):
            sums = codec.decode(self._npz["global_sums"], np.int32, cfg.target_size)
            hu = torch.from_numpy(sums).float() / bin_volumes(self.crop_shape, cfg.target_size)
        else:
            hu = resize(torch.from_numpy(self.volume), cfg.target_size, cfg.interpolation)
        return window(hu, cfg.hu_window)

    def geometry(self, region: str, cfg: PreprocessConfig) -> torch.Tensor:
        """The uncropped mask resized with the image (fractional under "area"), (target size)."""
        if self._precomputed(cfg):
            dtype = self.meta["regions"][region]["geometry_dtype"]
            counts = codec.decode(self._npz[_region_key("geometry", region)], dtype, cfg.target_size)
            return torch.from_numpy(counts.astype(np.float32)) / bin_volumes(self.crop_shape, cfg.target_size)
        return resize(torch.from_numpy(self._full_mask(region).view(np.uint8)), cfg.target_size, cfg.interpolation)

    def texture(self, region: str, cfg: PreprocessConfig) -> torch.Tensor:
        """LFD texture: the region's voxels (background elsewhere) cropped to its foreground, resized, windowed."""
        boxes = self._boxes(region)
        inner = tuple(slice(t0 - m0, t1 - m0) for (t0, t1), (m0, _) in zip(boxes.texture, boxes.mask))
        hu = np.where(self.mask(region)[inner], self.volume[box_slices(boxes.texture)], np.int16(cfg.background_hu))
        return window(resize(torch.from_numpy(hu), cfg.target_size, cfg.interpolation), cfg.hu_window)

    def masked_volume(self, region: str, cfg: PreprocessConfig) -> torch.Tensor:
        """LFD off: the region's voxels in the uncropped image frame, resized with the image, windowed."""
        hu = np.where(self._full_mask(region), self.volume, np.int16(cfg.background_hu))
        return window(resize(torch.from_numpy(hu), cfg.target_size, cfg.interpolation), cfg.hu_window)

    def close(self) -> None:
        self._npz.close()

    def __enter__(self) -> "CachedStudy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
