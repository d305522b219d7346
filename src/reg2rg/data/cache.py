"""The preprocessing cache: each study decoded and validated once, stored compactly.

One ``<study_id>.npz`` per study (an uncompressed zip of uint8 blobs, read with
``allow_pickle=False``), written under a temporary name and renamed into place:

- ``meta``: JSON (format version, the study id, source grid, the image foreground box, per-region
  boxes, dropped and resampled regions, the parameters the precomputed arrays were made with, and
  the dtype, shape and SHA-256 of every array: a damaged or swapped file is found when read);
- ``volume``: int16 HU cropped to the image foreground box, at full resolution;
- ``mask_<i>``: region i's mask (i indexes ``REGIONS``), bit-packed, cropped to its own box;
- ``image`` / ``texture_<i>`` / ``geometry_<i>``: the global image, the LFD texture crops and
  the geometry masks, area-resized to the configured target size and stored as exact integer
  bin sums (HU sums clamped to the window). Dividing by the bin volumes gives exactly what the
  official MONAI pipeline gives, so a training sample is a few small decodes and divisions; a
  compact sample (training) is the decoded sums themselves (``bin_sums``, ``reg2rg.data.compact``).

Samples at another target size, window or interpolation, and the LFD-off ablation, are
computed from the full-resolution arrays instead (slower, the same values as the reference).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from reg2rg.constants import REGIONS
from reg2rg.data import codec
from reg2rg.data.compact import hu_offset
from reg2rg.data.errors import MAX_VOXELS, StudyError
from reg2rg.data.preprocessing import Box, PreprocessConfig, bin_volumes, box_slices, foreground_box, resize, window
from reg2rg.data.records import StudyRecord
from reg2rg.files import atomic_path

log = logging.getLogger(__name__)

CACHE_VERSION = 2


def _key(kind: str, region: str) -> str:
    return f"{kind}_{REGIONS.index(region)}"


def _shape(box: Box) -> tuple[int, ...]:
    return tuple(hi - lo for lo, hi in box)


def precomputed_params(cfg: PreprocessConfig) -> dict | None:
    """What the precomputed arrays depend on; None when they cannot be exact integers."""
    if cfg.interpolation != "area" or any(v != int(v) for v in (*cfg.hu_window, cfg.background_hu)):
        return None
    return {"target_size": list(cfg.target_size), "hu_window": list(cfg.hu_window), "background_hu": cfg.background_hu}


def _as_hu_int16(array: np.ndarray, path: str) -> tuple[np.ndarray, bool]:
    """The volume as int16 HU; float data is rounded (CT is integer HU). Returns (array, rounded)."""
    rounded = array if np.issubdtype(array.dtype, np.integer) else np.rint(array)
    if rounded.min() < -32768 or rounded.max() > 32767:
        raise StudyError(path, f"values {rounded.min()}..{rounded.max()} do not fit int16 HU", kind="value_range")
    was_rounded = rounded is not array and not np.array_equal(rounded, array)
    if was_rounded:
        log.info("%s: non-integer HU rounded to int16 in the cache (error <= 0.5 HU)", path)
    return rounded.astype(np.int16, copy=False), was_rounded


def _smallest_int(values: np.ndarray) -> np.ndarray:
    for dtype in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if values.min() >= info.min and values.max() <= info.max:
            return values.astype(dtype)
    raise ValueError("bin sums exceed int32")


def _resized_sums(block: np.ndarray, cfg: PreprocessConfig, hu: bool) -> np.ndarray:
    """Exact integer bin sums of the area resize of an integer block (X, Y, Z) -> target size.

    HU sums are clamped to the window times the bin volume, which changes nothing after
    windowing and keeps them small.
    """
    volumes = bin_volumes(block.shape, cfg.target_size).double()
    sums = torch.round(resize(torch.from_numpy(block), cfg.target_size, "area").double() * volumes)
    if hu:
        low, high = cfg.hu_window
        sums = torch.minimum(torch.maximum(sums, low * volumes), high * volumes)
    return _smallest_int(sums.to(torch.int64).numpy())


class _Writer:
    """Collects encoded arrays and their dtype/shape table for one study file."""

    def __init__(self):
        self.blobs: dict[str, np.ndarray] = {}
        self.table: dict[str, dict] = {}

    def add(self, key: str, array: np.ndarray) -> None:
        is_mask = array.dtype == bool
        blob = codec.encode_mask(array) if is_mask else codec.encode(array)
        self.blobs[key] = blob
        self.table[key] = {
            "dtype": "bool" if is_mask else str(array.dtype),
            "shape": list(array.shape),
            "sha256": _sha256(blob),
        }


def _sha256(blob: np.ndarray) -> str:
    return hashlib.sha256(blob).hexdigest()


def source_signature(record: StudyRecord) -> list[list] | None:
    """[name, bytes, modification time (ns)] of each source file; a cached study is current only while its
    sources still match (None when one is missing: nothing can match it)."""
    try:
        stats = [(p.name, p.stat()) for p in record.source_files()]
    except OSError:
        return None
    return [[name, stat.st_size, stat.st_mtime_ns] for name, stat in stats]


def build_study(
    record: StudyRecord, path: Path, cfg: PreprocessConfig, grid: str = "reject", max_voxels: int = MAX_VOXELS
) -> dict:
    """Decode, validate and cache one study; returns its meta. Raises StudyError on bad input.

    ``grid``: masks on another grid than the volume are rejected ("reject") or resampled ("resample").
    ``max_voxels``: NIfTI headers claiming more voxels are rejected before decoding.
    """
    from reg2rg.data.masks import load_region_masks
    from reg2rg.data.volumes import check_hu_plausible, read_volume

    source = source_signature(record)  # before reading: a file changed meanwhile makes the entry stale
    volume = read_volume(record.volume, max_voxels)
    hu, rounded = _as_hu_int16(volume.array, str(record.volume))
    check_hu_plausible(record.volume, hu, volume.stored_as)
    loaded = load_region_masks(record.masks, volume, list(record.region_reports), grid, max_voxels)
    masks, dropped = dict(loaded.masks), {}
    for region in record.mask_only_regions():  # for the official evaluation set (data.region_set=masked)
        try:
            extra = load_region_masks(record.masks, volume, [region], grid, max_voxels)
        except StudyError as error:  # an unreported region never costs the study
            dropped[region] = error.problem
            continue
        masks.update(extra.masks)
        loaded.resampled.extend(extra.resampled)
    box = foreground_box(hu > cfg.foreground_hu)
    if box is None:
        raise StudyError(record.volume, f"no voxel above {cfg.foreground_hu} HU: nothing to crop", kind="all_air")
    crop = hu[box_slices(box)]  # (X, Y, Z) full resolution, image foreground only
    params = precomputed_params(cfg)
    out = _Writer()
    out.add("volume", crop)
    if params:
        out.add("image", _resized_sums(crop, cfg, hu=True))
    regions = {}
    for region in REGIONS:
        if region not in masks:
            continue
        mask = masks[region][box_slices(box)]
        mask_box = foreground_box(mask)
        if mask_box is None:
            outside = f"mask entirely outside the box of the voxels above {cfg.foreground_hu:g} HU"
            dropped[region] = outside if masks[region].any() else "empty mask"
            continue
        texture_box = foreground_box(mask & (crop > cfg.foreground_hu))
        if texture_box is None:
            dropped[region] = f"no voxel above {cfg.foreground_hu} HU inside the mask"
            continue
        regions[region] = {"mask_box": mask_box, "texture_box": texture_box}
        out.add(_key("mask", region), mask[box_slices(mask_box)])
        if params:
            texture = np.where(
                mask[box_slices(texture_box)], crop[box_slices(texture_box)], np.int16(cfg.background_hu)
            )
            out.add(_key("texture", region), _resized_sums(texture, cfg, hu=True))
            out.add(_key("geometry", region), _resized_sums(mask.view(np.uint8), cfg, hu=False))
    if not regions.keys() & record.region_reports.keys():
        reasons = "; ".join(f"{r}: {why}" for r, why in dropped.items() if r in record.region_reports)
        reasons = reasons or "no mask for any reported region"
        raise StudyError(record.volume, f"no usable region ({reasons})", kind="no_usable_region")
    meta = {
        "version": CACHE_VERSION,
        "study_id": record.study_id,
        "source_shape": list(hu.shape),
        "affine": np.asarray(volume.affine).tolist(),
        "box": box,
        "rounded_hu": rounded,
        "foreground_hu": cfg.foreground_hu,
        "precomputed": params,
        "source": source,
        "regions": regions,
        "dropped": dropped,
        "resampled": loaded.resampled,
        "arrays": out.table,
    }
    write_npz(path, meta, out.blobs)
    return meta


def write_npz(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write the study file under a temporary name, then rename it into place (never a half file)."""
    header = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        np.savez(f, meta=header, **arrays)


def read_meta(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(npz["meta"].tobytes())


def _into(values: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    return values if out is None else out.copy_(values)


class CachedStudy:
    """Read access to one cached study.

    ``study_id``: the study the file must hold (a file swapped for another study's is an error).
    Every array is checked against the SHA-256 in the meta when it is read.
    """

    def __init__(self, path: str | Path, study_id: str | None = None):
        self.path = Path(path)
        self._npz = np.load(self.path, allow_pickle=False)
        try:
            self.meta = json.loads(self._npz["meta"].tobytes())
            if self.meta.get("version") != CACHE_VERSION:
                raise StudyError(
                    self.path,
                    f"cache format {self.meta.get('version')} != {CACHE_VERSION}: rebuild it with scripts/preprocess.py",
                    kind="stale_cache",
                )
            if study_id is not None and self.meta.get("study_id") != study_id:
                raise StudyError(
                    self.path,
                    f"the cache file holds study {self.meta.get('study_id')!r}, not {study_id!r} as its index says: it was "
                    "replaced or copied over; scripts/preprocess.py rebuilds it",
                    kind="wrong_study",
                )
        except BaseException:
            self._npz.close()
            raise
        self.crop_shape = _shape(self.meta["box"])

    @property
    def regions(self) -> list[str]:
        """The regions with a usable mask, in canonical order."""
        return list(self.meta["regions"])

    def _array(self, key: str, out: np.ndarray | None = None) -> np.ndarray:
        """The decoded array ``key`` (into ``out`` when given: C-contiguous, of its stored dtype and shape)."""
        spec = self.meta["arrays"][key]
        blob = self._npz[key]
        if _sha256(blob) != spec["sha256"]:
            raise StudyError(
                self.path,
                f"array '{key}' does not match its SHA-256 in the meta: the cache file is damaged; delete it and run "
                "scripts/preprocess.py, which rebuilds missing files",
                kind="corrupt_cache",
            )
        if spec["dtype"] == "bool":
            return codec.decode_mask(blob, tuple(spec["shape"]))
        return codec.decode(blob, spec["dtype"], tuple(spec["shape"]), out)

    def _box(self, region: str, kind: str) -> Box:
        return tuple(map(tuple, self.meta["regions"][region][f"{kind}_box"]))

    def _uses_precomputed(self, cfg: PreprocessConfig) -> bool:
        return self.meta["precomputed"] is not None and self.meta["precomputed"] == precomputed_params(cfg)

    def _from_sums(
        self, key: str, block_shape: tuple[int, ...], cfg: PreprocessConfig, out: torch.Tensor | None
    ) -> torch.Tensor:
        """A precomputed area resize: bin sums / bin volumes, (target size) float32."""
        values = torch.empty(cfg.target_size) if out is None else out
        # copy_ then an in-place float division: several times faster than a mixed-dtype div(out=)
        return values.copy_(torch.from_numpy(self._array(key))).div_(bin_volumes(tuple(block_shape), cfg.target_size))

    def bin_sums(
        self, kind: str, cfg: PreprocessConfig, regions: Sequence[str] = ()
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The precomputed integer bin sums as a compact sample carries them (``reg2rg.data.compact``).

        ``kind`` "image" (the global image, N = 1) or "texture" / "geometry" (one per region of ``regions``).
        Returns the sums (N, 1, target size), uint8 mask voxel counts or int16 HU sums (int32 only where
        even the centred sums do not fit), and their bins (N, 4): the shape of the full-resolution block
        each was area-resized from, and the HU offset its sums are stored less (``compact.hu_offset``:
        int32-stored sums are centred on the window; 0 for the rest).
        """
        if not self._uses_precomputed(cfg):
            raise StudyError(
                self.path,
                f"holds no bin sums for the preprocessing {precomputed_params(cfg)} (it has "
                f"{self.meta['precomputed']}): rebuild it with scripts/preprocess.py at these settings",
                kind="stale_cache",
            )
        if kind == "image":
            keys, blocks = ["image"], [self.crop_shape]
        elif kind in ("texture", "geometry"):
            keys = [_key(kind, region) for region in regions]
            blocks = [_shape(self._box(r, "texture")) if kind == "texture" else self.crop_shape for r in regions]
        else:
            raise ValueError(f"kind must be 'image', 'texture' or 'geometry', got {kind!r}")
        hu = kind != "geometry"
        sums = np.empty((len(keys), 1, *cfg.target_size), np.int16 if hu else np.uint8)
        bins = np.zeros((len(keys), 4), np.int64)
        for i, (key, block) in enumerate(zip(keys, blocks)):
            bins[i, :3] = block
            stored = np.dtype(self.meta["arrays"][key]["dtype"])
            if stored == sums.dtype:
                self._array(key, out=sums[i, 0])  # decoded straight into the sample
                continue
            values = self._array(key)
            if hu and stored.itemsize > 2:  # centred on the window: |sums| <= half its width x bin volume
                offset = hu_offset(cfg.hu_window)
                values -= offset * bin_volumes(block, cfg.target_size).numpy().astype(values.dtype)
                bins[i, 3] = offset
            limits = np.iinfo(sums.dtype)
            if values.min() < limits.min or values.max() > limits.max:
                sums = sums.astype(values.dtype)  # rare: bins of more voxels than int16 (uint8) holds
            sums[i, 0] = values
        return torch.from_numpy(sums), torch.from_numpy(bins)

    @cached_property
    def volume(self) -> np.ndarray:
        """int16 HU (X, Y, Z), cropped to the image foreground."""
        return self._array("volume")

    def mask(self, region: str) -> np.ndarray:
        """bool mask of ``region`` inside its own box (``meta['regions'][region]['mask_box']``)."""
        return self._array(_key("mask", region))

    def _full_mask(self, region: str) -> np.ndarray:
        full = np.zeros(self.crop_shape, dtype=bool)
        full[box_slices(self._box(region, "mask"))] = self.mask(region)
        return full

    def global_image(self, cfg: PreprocessConfig, out: torch.Tensor | None = None) -> torch.Tensor:
        """Windowed global volume, (target size); written into ``out`` when given."""
        if self._uses_precomputed(cfg):
            return window(self._from_sums("image", self.crop_shape, cfg, out), cfg.hu_window)
        return window(
            _into(resize(torch.from_numpy(self.volume), cfg.target_size, cfg.interpolation), out), cfg.hu_window
        )

    def texture(self, region: str, cfg: PreprocessConfig, out: torch.Tensor | None = None) -> torch.Tensor:
        """LFD texture: the region's voxels (background elsewhere) cropped to its foreground, resized, windowed."""
        box = self._box(region, "texture")
        if self._uses_precomputed(cfg):
            return window(self._from_sums(_key("texture", region), _shape(box), cfg, out), cfg.hu_window)
        mask_box = self._box(region, "mask")
        inner = tuple(slice(t0 - m0, t1 - m0) for (t0, t1), (m0, _) in zip(box, mask_box))
        hu = np.where(self.mask(region)[inner], self.volume[box_slices(box)], np.int16(cfg.background_hu))
        return window(_into(resize(torch.from_numpy(hu), cfg.target_size, cfg.interpolation), out), cfg.hu_window)

    def geometry(self, region: str, cfg: PreprocessConfig, out: torch.Tensor | None = None) -> torch.Tensor:
        """The uncropped mask resized with the image (fractional under "area"), (target size)."""
        if self._uses_precomputed(cfg):
            return self._from_sums(_key("geometry", region), self.crop_shape, cfg, out)
        return _into(
            resize(torch.from_numpy(self._full_mask(region).view(np.uint8)), cfg.target_size, cfg.interpolation), out
        )

    def masked_volume(self, region: str, cfg: PreprocessConfig, out: torch.Tensor | None = None) -> torch.Tensor:
        """LFD off: the region's voxels in the uncropped image frame, resized with the image, windowed."""
        hu = np.where(self._full_mask(region), self.volume, np.int16(cfg.background_hu))
        return window(_into(resize(torch.from_numpy(hu), cfg.target_size, cfg.interpolation), out), cfg.hu_window)

    def close(self) -> None:
        self._npz.close()

    def __enter__(self) -> CachedStudy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
