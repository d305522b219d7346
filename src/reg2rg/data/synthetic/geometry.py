"""The voxel grid of a phantom and the shapes painted on it; all geometry is in RAS millimetres.

Axis convention (every array in this package is indexed ``[i, j, k]`` = ``[x, y, z]``):
``i`` grows towards +x = patient Left, ``j`` towards +y = Anterior, ``k`` towards +z = Superior.
The affine is diagonal and positive, so world x > 0 is always the patient's left side.

Shapes are evaluated only inside their bounding ``Box`` (a sub-block of the grid), with per-axis
coordinate vectors shaped ``(n, 1, 1)``, ``(1, m, 1)``, ``(1, 1, k)`` that broadcast to the block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Point = tuple[float, float, float]


@dataclass(frozen=True)
class Box:
    """A block of a grid: ``slices`` index the volume; ``x, y, z`` are its voxel centres in mm,
    shaped ``(n, 1, 1)``, ``(1, m, 1)``, ``(1, 1, k)``. A box outside the grid has a zero-size axis."""

    slices: tuple[slice, slice, slice]
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.x.shape[0], self.y.shape[1], self.z.shape[2])


@dataclass(frozen=True)
class Grid:
    """A voxel grid centred on the RAS origin: voxel ``(i, j, k)`` lies at ``origin + (i, j, k) * spacing``."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def origin(self) -> np.ndarray:
        """(3,) world position of voxel (0, 0, 0)."""
        return -(np.asarray(self.shape) - 1) / 2 * np.asarray(self.spacing)

    @property
    def affine(self) -> np.ndarray:
        """(4, 4) voxel -> RAS mm."""
        affine = np.diag([*map(float, self.spacing), 1.0])
        affine[:3, 3] = self.origin
        return affine

    def axis(self, d: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """float32 world coordinates of voxels ``start:stop`` along axis ``d``."""
        stop = self.shape[d] if stop is None else stop
        return (self.origin[d] + np.arange(start, stop) * self.spacing[d]).astype(np.float32)

    def whole(self) -> Box:
        """The box covering the whole grid."""
        return self._box([0, 0, 0], list(self.shape))

    def box(self, lo: Point, hi: Point) -> Box:
        """The voxels whose centres lie in the world-space box ``[lo, hi]`` (clipped to the grid)."""
        start = np.ceil((np.asarray(lo) - self.origin) / self.spacing - 1e-6).astype(int)
        stop = np.floor((np.asarray(hi) - self.origin) / self.spacing + 1e-6).astype(int) + 1
        start = np.clip(start, 0, self.shape)
        return self._box(list(start), list(np.maximum(np.clip(stop, 0, self.shape), start)))

    def _box(self, start: list[int], stop: list[int]) -> Box:
        slices = tuple(slice(int(a), int(b)) for a, b in zip(start, stop))
        x, y, z = (self.axis(d, start[d], stop[d]) for d in range(3))
        return Box(slices, x[:, None, None], y[None, :, None], z[None, None, :])

    def index(self, point: Point) -> tuple[int, int, int]:
        """The voxel nearest to a world point (clipped to the grid)."""
        ijk = np.rint((np.asarray(point) - self.origin) / self.spacing).astype(int)
        return tuple(int(v) for v in np.clip(ijk, 0, np.asarray(self.shape) - 1))

    def world(self, ijk) -> np.ndarray:
        """World position(s) of voxel index array(s) ``(..., 3)``."""
        return self.origin + np.asarray(ijk) * np.asarray(self.spacing)

    def snap(self, point: Point) -> np.ndarray:
        """(3,) the centre of the voxel nearest to ``point``."""
        return self.world(self.index(point))


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid with semi-axes ``radii`` (mm), turned by ``angle`` (radians) about the z axis."""

    center: Point
    radii: Point
    angle: float = 0.0

    def contains(self, x, y, z) -> np.ndarray:
        """Boolean array, broadcast over the coordinate arrays."""
        dx, dy, dz = x - self.center[0], y - self.center[1], z - self.center[2]
        c, s = math.cos(self.angle), math.sin(self.angle)
        u, v = c * dx + s * dy, -s * dx + c * dy
        rx, ry, rz = self.radii
        return (u / rx) ** 2 + (v / ry) ** 2 + (dz / rz) ** 2 <= 1.0

    def box(self, grid: Grid, pad: float = 0.0) -> Box:
        rx, ry, rz = self.radii
        if self.angle:  # a turned ellipse fits in the square of its longer semi-axis
            rx = ry = max(rx, ry)
        half = (rx + pad, ry + pad, rz + pad)
        return grid.box(
            tuple(c - h for c, h in zip(self.center, half)), tuple(c + h for c, h in zip(self.center, half))
        )

    def voxels(self, grid: Grid, at_least_one: bool = True) -> tuple[Box, np.ndarray]:
        """``(box, mask)``; with ``at_least_one`` the voxel nearest the centre is always in (sub-voxel shapes)."""
        box = self.box(grid, pad=max(grid.spacing))
        mask = self.contains(box.x, box.y, box.z)
        if at_least_one and mask.size and not mask.any():
            i, j, k = grid.index(self.center)
            local = (i - box.slices[0].start, j - box.slices[1].start, k - box.slices[2].start)
            if all(0 <= a < n for a, n in zip(local, mask.shape)):
                mask[local] = True
        return box, mask

    def scaled(self, factors: Point) -> Ellipsoid:
        return Ellipsoid(self.center, tuple(r * f for r, f in zip(self.radii, factors)), self.angle)

    def grown(self, mm: float) -> Ellipsoid:
        return Ellipsoid(self.center, tuple(r + mm for r in self.radii), self.angle)


@dataclass(frozen=True)
class Segment:
    """A tube along ``p0 -> p1`` whose radius goes linearly from ``r0`` to ``r1``; ``wall`` is its wall thickness."""

    p0: Point
    p1: Point
    r0: float
    r1: float
    wall: float = 0.0

    def distance(self, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """``(dist, t)`` over the box: distance (mm) to the axis and the axis position ``t`` in [0, 1]."""
        p0 = np.asarray(self.p0, np.float32)
        d = np.asarray(self.p1, np.float32) - p0
        rx, ry, rz = box.x - p0[0], box.y - p0[1], box.z - p0[2]
        t = np.clip((rx * d[0] + ry * d[1] + rz * d[2]) / max(float(d @ d), 1e-6), 0.0, 1.0)
        dist = np.sqrt((rx - t * d[0]) ** 2 + (ry - t * d[1]) ** 2 + (rz - t * d[2]) ** 2)
        return dist, t

    def voxels(self, grid: Grid, extra: float = 0.0, min_radius: float = 0.0) -> tuple[Box, np.ndarray]:
        """``(box, mask)`` of the tube grown by ``extra`` mm (e.g. its wall), never thinner than ``min_radius``."""
        reach = max(self.r0, self.r1, min_radius) + extra + max(grid.spacing)
        lo = tuple(min(a, b) - reach for a, b in zip(self.p0, self.p1))
        hi = tuple(max(a, b) + reach for a, b in zip(self.p0, self.p1))
        box = grid.box(lo, hi)
        dist, t = self.distance(box)
        return box, dist <= np.maximum(self.r0 + (self.r1 - self.r0) * t, min_radius) + extra

    def point(self, t: float) -> np.ndarray:
        return np.asarray(self.p0) + t * (np.asarray(self.p1) - np.asarray(self.p0))

    def radius(self, t: float) -> float:
        return self.r0 + (self.r1 - self.r0) * t


# --- morphology on boolean (X, Y, Z) masks: face-neighbour shifts, no per-voxel loops ------------------


def _shifted_or(mask: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    out = mask.copy()
    for axis in axes:
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        out[tuple(lo)] |= mask[tuple(hi)]
        out[tuple(hi)] |= mask[tuple(lo)]
    return out


def dilate(mask: np.ndarray, steps: int = 1, axes: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
    """Grow a mask by ``steps`` voxels (face connectivity along ``axes``)."""
    for _ in range(steps):
        mask = _shifted_or(mask, axes)
    return mask


def erode(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    """Shrink a mask by ``steps`` voxels (face connectivity; the grid border does not erode)."""
    return ~dilate(~mask, steps)


def shift(mask: np.ndarray, axis: int, voxels: int) -> np.ndarray:
    """Move a mask by ``voxels`` along ``axis`` (what leaves the grid is lost)."""
    out = np.zeros_like(mask)
    n = mask.shape[axis]
    if abs(voxels) >= n:
        return out
    src = [slice(None)] * 3
    dst = [slice(None)] * 3
    src[axis] = slice(max(0, -voxels), n - max(0, voxels))
    dst[axis] = slice(max(0, voxels), n - max(0, -voxels))
    out[tuple(dst)] = mask[tuple(src)]
    return out


def extent_mm(mask: np.ndarray, spacing: Point) -> np.ndarray:
    """(3,) the size of the voxels' bounding box along x, y, z in mm (0 for an empty mask)."""
    sizes = []
    for axis, step in enumerate(spacing):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        sizes.append((hit[-1] - hit[0] + 1) * step if hit.size else 0.0)
    return np.asarray(sizes)
