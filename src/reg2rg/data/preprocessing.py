"""Reg2RG's image preprocessing, numerically equal to the official MONAI pipeline but fast.

Official order (docs/reference.md, "Preprocessing"), all on Hounsfield units:
  texture  : region = image where mask else -1024 -> crop to its foreground (HU > -1000)
             -> resize to the target size (MONAI ``Resize``, mode "area") -> window
  global   : image -> crop to the image foreground -> resize -> window
  geometry : the region masks, cropped with the *image* box (not their own) -> resize
  window   : clamp to [-1000, 200], then (x + 400) / 600

MONAI's "area" mode is ``torch.nn.functional.interpolate(mode="area")``, i.e. adaptive average
pooling: output cell i of an axis averages input cells [floor(i*n/m), ceil((i+1)*n/m)). We call
the same torch op. Because HU values and mask voxels are integers, an area-resized block is an
integer bin sum divided by the bin volume: the cache stores those sums exactly (see cache.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

Box = tuple[tuple[int, int], ...]  # ((x0, x1), (y0, y1), (z0, z1)), half-open


@dataclass(frozen=True)
class PreprocessConfig:
    """The preprocessing knobs; defaults are the paper's."""

    target_size: tuple[int, int, int] = (256, 256, 64)
    hu_window: tuple[float, float] = (-1000.0, 200.0)
    foreground_hu: float = -1000.0  # a voxel is foreground when strictly above this
    background_hu: float = -1024.0  # value written outside a region's mask (LFD)
    interpolation: str = "area"  # "area" (paper, fast exact path) or any torch interpolate mode

    def __post_init__(self):
        object.__setattr__(self, "target_size", tuple(int(s) for s in self.target_size))
        object.__setattr__(self, "hu_window", tuple(float(v) for v in self.hu_window))
        if len(self.target_size) != 3 or min(self.target_size) < 1:
            raise ValueError(f"target_size must be three positive sizes, got {self.target_size}")
        low, high = self.hu_window
        if not low < high:
            raise ValueError(f"hu_window must be (low, high) with low < high, got {self.hu_window}")
        if self.background_hu > self.foreground_hu:
            raise ValueError("background_hu must not count as foreground (background_hu <= foreground_hu)")
        if self.interpolation not in ("area", "nearest", "nearest-exact", "trilinear"):
            raise ValueError(f"unsupported interpolation {self.interpolation!r}")


def window(hu: torch.Tensor, hu_window: tuple[float, float]) -> torch.Tensor:
    """Clamp to the window and map it linearly onto [-1, 1] (paper: (x + 400) / 600). In place."""
    low, high = hu_window
    center, half_width = (low + high) / 2, (high - low) / 2
    # A divisor tensor on hu's device, not a Python number: CUDA multiplies by the reciprocal of a number,
    # which can differ from the CPU's division in the last bit.
    return hu.clamp_(low, high).sub_(center).div_(torch.full((), half_width, dtype=hu.dtype, device=hu.device))


def foreground_box(selected: np.ndarray) -> Box | None:
    """Tight half-open bounding box of the True voxels of a 3D array, or None when there are none."""
    box = []
    for axis in range(selected.ndim):
        other = tuple(a for a in range(selected.ndim) if a != axis)
        hits = np.flatnonzero(selected.any(axis=other))
        if hits.size == 0:
            return None
        box.append((int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def box_slices(box: Box) -> tuple[slice, ...]:
    return tuple(slice(lo, hi) for lo, hi in box)


def area_bins(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive-average-pooling bins of one axis: output i averages inputs [start[i], end[i])."""
    i = np.arange(n_out)
    return (i * n_in) // n_out, ((i + 1) * n_in + n_out - 1) // n_out


@lru_cache(maxsize=1024)
def _bin_lengths(n_in: int, n_out: int) -> torch.Tensor:
    start, end = area_bins(n_in, n_out)
    return torch.from_numpy((end - start).astype(np.float32))


def bin_volumes(shape: tuple[int, int, int], size: tuple[int, int, int]) -> torch.Tensor:
    """Number of input voxels averaged into each output voxel of an area resize (size), float32."""
    x, y, z = (_bin_lengths(n, m) for n, m in zip(shape, size))
    return x[:, None, None] * y[None, :, None] * z[None, None, :]  # small integers: exact in float32


def resize(x: torch.Tensor, size: tuple[int, int, int], mode: str) -> torch.Tensor:
    """Resize a whole 3D block (X, Y, Z) to ``size`` (float32)."""
    align = {"align_corners": False} if mode == "trilinear" else {}
    return torch.nn.functional.interpolate(x.float()[None, None], size=size, mode=mode, **align)[0, 0]
