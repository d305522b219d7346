"""The model's input: a cube of the volume around a lesion (padded where it leaves the volume), its HU mapped so
that soft tissue differences stay visible next to air and bone."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

AIR_HU = -1000.0


def largest_lesion_centre(label: np.ndarray) -> tuple[int, int, int]:
    """The centre of the largest connected lesion of a label map (z, y, x); ValueError when it is empty."""
    components, count = ndimage.label(label > 0)
    if count == 0:
        raise ValueError("the label map has no lesion")
    sizes = np.bincount(components.ravel())[1:]
    largest = components == (np.argmax(sizes) + 1)
    low, high = np.argwhere(largest).min(axis=0), np.argwhere(largest).max(axis=0)
    return tuple(int(c) for c in (low + high + 1) // 2)


def crop(array: np.ndarray, centre, size: int, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``size``^3 cube of ``array`` whose voxel size // 2 is ``centre``; outside the array it is ``fill``.
    Returns (cube, origin): array index = cube index + origin."""
    origin = np.asarray(centre, dtype=np.int64) - size // 2
    cube = np.full((size,) * 3, fill, dtype=array.dtype)
    low = np.maximum(origin, 0)
    high = np.minimum(origin + size, array.shape)
    if np.all(high > low):
        source = tuple(slice(a, b) for a, b in zip(low, high))
        target = tuple(slice(a - o, b - o) for a, b, o in zip(low, high, origin))
        cube[target] = array[source]
    return cube, origin


SOFT_TISSUE_HU, SOFT_TISSUE_SCALE = 40.0, 100.0


def normalize_hu(cube_hu: np.ndarray) -> np.ndarray:
    """arcsinh((HU - 40) / 100) of HU clipped to [-1000, 1000] (float32, about -3 .. 2.3): nearly linear within
    100 HU of soft tissue (a 50 HU lesion moves it by ~0.5), logarithmic towards air and bone. A z-score of a
    crop holding air would shrink the same lesion to ~0.1."""
    clipped = np.clip(cube_hu.astype(np.float32), -1000.0, 1000.0)
    return np.arcsinh((clipped - SOFT_TISSUE_HU) / SOFT_TISSUE_SCALE).astype(np.float32)
