"""Compact samples: the cache's integer bin sums leave the worker, float32 is made on the device.

An area-resized integer block is an integer bin sum divided by its bin volume (``preprocessing``), so
the float products follow from the sums and the shape of the block each was resized from. A compact
sample (``CachedRegionDataset(compact=True)``) carries::

    image          int16 (1, X, Y, Z)      HU bin sums of the global image (clamped to the window)
    image_bins     int64 (1, 4)            block shape (x, y, z) and HU offset, see below
    texture        int16 (R, 1, X, Y, Z)   HU bin sums of the LFD crops (LFD off: float32, no bins)
    texture_bins   int64 (R, 4)
    geometry       uint8 (R, 1, X, Y, Z)   mask voxels per bin
    geometry_bins  int64 (R, 4)

A row of bins: the shape of the full-resolution block the volume was area-resized from, and the offset
o its HU sums are stored less: sum = stored + o x bin volume. Sums the cache holds as int32 (bins of
more than 32 voxels at the -1000 HU floor) are centred on the window (o = ``hu_offset``), which makes
them fit int16 up to 54 voxels a bin; beyond that the volume is int32 (mask counts beyond 255: int16).
``expand_volumes`` turns a batch of them, on its device, into the float32 volumes of the float path,
equal to the bit: the same float32 operations on the same values (the sums are integers below 2^24,
exact in float32; one division by the bin volume; then clamp, subtract and divide for the window).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from reg2rg.data.preprocessing import PreprocessConfig, window

WINDOWED = {"image": True, "texture": True, "geometry": False}  # volume -> whether it holds HU


def bins_key(volume: str) -> str:
    return f"{volume}_bins"


def hu_offset(hu_window: tuple[float, float]) -> int:
    """The integer HU that int32-stored sums are centred on: the window's centre, rounded down."""
    low, high = hu_window
    return int((low + high) // 2)


def bin_volumes_of(blocks: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """Voxels averaged into each output voxel of an area resize of each block, (N, 1, size) float32.

    ``blocks``: (N, 3) block shapes. The same bins as ``preprocessing.area_bins``, on ``blocks``' device.
    """
    lengths = []
    for axis, n_out in enumerate(size):
        i = torch.arange(n_out, device=blocks.device)
        n_in = blocks[:, axis : axis + 1]  # (N, 1)
        start, end = i * n_in // n_out, ((i + 1) * n_in + n_out - 1) // n_out
        lengths.append((end - start).float())  # (N, n_out)
    x, y, z = lengths
    return (x[:, :, None, None] * y[:, None, :, None] * z[:, None, None, :])[:, None]  # small integers: exact


def expand(sums: torch.Tensor, bins: torch.Tensor, hu_window: tuple[float, float] | None) -> torch.Tensor:
    """Stored bin sums (N, 1, X, Y, Z) and their bins (N, 4) -> float32 (N, 1, X, Y, Z), windowed when
    ``hu_window`` is given; on the device the sums are on."""
    bins = bins.to(sums.device)
    volumes = bin_volumes_of(bins[:, :3], tuple(sums.shape[-3:]))  # (N, 1, X, Y, Z)
    offsets = bins[:, 3].float()[:, None, None, None, None]
    values = sums.float().addcmul_(offsets, volumes).div_(volumes)  # integers: the addition is exact
    return values if hu_window is None else window(values, hu_window)


def expand_volumes(batch: Mapping[str, Any], cfg: PreprocessConfig) -> dict[str, Any]:
    """The batch (or sample) with its compact volumes as float32 on their device and without their
    ``*_bins`` entries; float volumes (a float sample, the LFD-off texture) are left as they are."""
    out = dict(batch)
    for volume, windowed in WINDOWED.items():
        bins = out.pop(bins_key(volume), None)
        if bins is not None:
            sums = out[volume]
            flat = sums if sums.dim() == 5 else sums[None]  # a sample's image is (1, X, Y, Z)
            values = expand(flat, bins, cfg.hu_window if windowed else None)
            out[volume] = values if sums.dim() == 5 else values[0]
    return out


def volume_bytes(sample: Mapping[str, Any]) -> int:
    """Bytes of a sample's (or batch's) tensors that go to the device: the volumes and their bins."""
    names = [*WINDOWED, *map(bins_key, WINDOWED)]
    return sum(sample[n].nbytes for n in names if isinstance(sample.get(n), torch.Tensor))
