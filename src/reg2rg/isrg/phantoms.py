"""Synthetic lesion phantoms: eight lesion types in seven organs, each lesion with its five attributes recorded.

A study is a small CT volume (z, y, x) in HU at 1 mm: a body, the host organ, a neighbouring vessel, and one
lesion whose attributes are drawn per study from its type's probabilities, then built into the image:

- shape: round-like (an ellipsoid), irregular (a union of offset spheres), wall thickening (a thick sector of a
  tubular organ's wall), punctate / nodular (a sphere of 2.5-3.2 voxels);
- invasion: the vessel touches the lesion (close relationship) or passes 4-6 voxels away;
- density: the lesion's mean HU against its host organ's (hypo: 35-60 lower, iso: within 10, hyper: 35-60 higher;
  a lung nodule is solid tissue in air, so hyperdense);
- heterogeneity: smoothed noise of 45 HU inside the lesion, or none;
- surface: a sharp edge, or one blurred over about 1.5 voxels.

Two types (liver cyst, gallstone) never appear in training: the ``zeroshot`` split holds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SHAPE = (40, 48, 48)  # (z, y, x) voxels of 1 mm
BODY_HU, FAT_HU, AIR_HU, VESSEL_HU = 40.0, -100.0, -1000.0, 180.0


@dataclass(frozen=True)
class LesionType:
    """How one lesion type's attributes are drawn (probabilities in ATTRIBUTES' class order)."""

    name: str
    organ: str  # liver | kidney | lung | pancreas | esophagus | vertebra | gallbladder
    shape: tuple[float, float, float, float]
    invasion: float  # P(close relationship)
    density: tuple[float, float, float]
    heterogeneous: float
    ill_defined: float
    radius: tuple[float, float]  # voxels, for round-like and irregular lesions


LESION_TYPES = (
    LesionType("liver tumor", "liver", (0.3, 0.6, 0.0, 0.1), 0.4, (0.7, 0.15, 0.15), 0.6, 0.5, (5.0, 8.0)),
    LesionType("kidney tumor", "kidney", (0.5, 0.4, 0.0, 0.1), 0.4, (0.7, 0.2, 0.1), 0.5, 0.4, (4.0, 7.0)),
    LesionType("lung nodule", "lung", (0.4, 0.3, 0.0, 0.3), 0.3, (0.0, 0.0, 1.0), 0.3, 0.4, (3.5, 6.0)),
    LesionType("pancreas tumor", "pancreas", (0.3, 0.6, 0.0, 0.1), 0.5, (0.8, 0.1, 0.1), 0.5, 0.6, (4.0, 6.0)),
    LesionType("esophageal cancer", "esophagus", (0.0, 0.2, 0.8, 0.0), 0.5, (0.2, 0.5, 0.3), 0.4, 0.5, (4.0, 6.0)),
    LesionType("bone metastasis", "vertebra", (0.4, 0.4, 0.0, 0.2), 0.3, (0.6, 0.0, 0.4), 0.5, 0.5, (3.5, 6.0)),
    LesionType("liver cyst", "liver", (0.9, 0.0, 0.0, 0.1), 0.2, (1.0, 0.0, 0.0), 0.05, 0.05, (4.0, 8.0)),
    LesionType("gallstone", "gallbladder", (0.5, 0.0, 0.0, 0.5), 0.3, (0.0, 0.1, 0.9), 0.3, 0.1, (2.5, 5.0)),
)
ZERO_SHOT_TYPES = ("liver cyst", "gallstone")
SEEN_TYPES = tuple(t.name for t in LESION_TYPES if t.name not in ZERO_SHOT_TYPES)
SPLITS = {"train": 0, "valid": 1, "zeroshot": 2}  # split -> its random stream


@dataclass(frozen=True)
class Phantom:
    """One study: ``volume_hu`` float32 (z, y, x), ``label`` bool (z, y, x), ``attributes`` (5,) class indices."""

    volume_hu: np.ndarray
    label: np.ndarray
    attributes: np.ndarray
    lesion_type: str


def make_phantom(lesion_type: LesionType, rng: np.random.Generator) -> Phantom:
    """Draw the attributes of one lesion of ``lesion_type`` and build its study."""
    shape = int(rng.choice(4, p=lesion_type.shape))
    close = bool(rng.random() < lesion_type.invasion)
    density = int(rng.choice(3, p=lesion_type.density))
    heterogeneous = bool(rng.random() < lesion_type.heterogeneous)
    ill_defined = bool(rng.random() < lesion_type.ill_defined)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in SHAPE], indexing="ij"))  # (3, z, y, x)

    volume, organ, organ_hu, tube = _scene(lesion_type.organ, grid, rng)
    lesion = _lesion_mask(shape, lesion_type, organ, tube, grid, rng)
    volume = _add_vessel(volume, lesion, close, grid, rng)

    offset = {0: -rng.uniform(35, 60), 1: rng.uniform(-10, 10), 2: rng.uniform(35, 60)}[density]
    lesion_hu = np.full(SHAPE, (BODY_HU if lesion_type.organ == "lung" else organ_hu) + offset, np.float32)
    if heterogeneous:
        texture = ndimage.gaussian_filter(rng.standard_normal(SHAPE).astype(np.float32), 1.0)
        lesion_hu += 45.0 * texture / texture.std()
    signed = ndimage.distance_transform_edt(~lesion) - ndimage.distance_transform_edt(lesion)  # < 0 inside
    softness = 1.5 if ill_defined else 0.2
    weight = 1.0 / (1.0 + np.exp(np.clip((signed + 0.5) / softness, -30, 30)))  # ~1 inside, ~0 outside
    volume = volume * (1 - weight) + lesion_hu * weight
    volume += rng.normal(0.0, 10.0, SHAPE)
    attributes = np.array([shape, int(close), density, int(heterogeneous), int(ill_defined)], np.int64)
    return Phantom(volume.astype(np.float32), lesion, attributes, lesion_type.name)


def _ellipsoid(grid: np.ndarray, centre, radii) -> np.ndarray:
    return sum(((grid[i] - centre[i]) / radii[i]) ** 2 for i in range(3)) <= 1.0


def _scene(organ: str, grid: np.ndarray, rng: np.random.Generator):
    """The body and the host organ: (volume HU, organ mask, organ HU, tube axis (y, x, lumen radius) or None)."""
    z, y, x = (n / 2 - 0.5 for n in SHAPE)
    volume = np.full(SHAPE, AIR_HU, np.float32)
    body = ((grid[1] - y) / 23) ** 2 + ((grid[2] - x) / 23) ** 2 <= 1
    volume[body] = FAT_HU
    volume[((grid[1] - y) / 20) ** 2 + ((grid[2] - x) / 20) ** 2 <= 1] = BODY_HU
    jitter = rng.uniform(-2, 2, 3)
    centre = np.array([z, y, x]) + jitter
    tube = None
    if organ in ("liver", "gallbladder"):
        organ_hu = 60.0
        organ_mask = _ellipsoid(grid, centre, (17, 15, 15))
        volume[organ_mask] = organ_hu
        if organ == "gallbladder":
            organ_hu = 10.0
            organ_mask = _ellipsoid(grid, centre, (10, 8, 8))
            volume[organ_mask] = organ_hu
    elif organ == "kidney":
        organ_hu = 150.0
        volume[_ellipsoid(grid, centre, (15, 13, 12))] = FAT_HU
        organ_mask = _ellipsoid(grid, centre, (12, 9, 8))
    elif organ == "lung":
        organ_hu = -850.0
        organ_mask = _ellipsoid(grid, centre, (18, 17, 17))
    elif organ == "pancreas":
        organ_hu = 45.0
        volume[_ellipsoid(grid, centre, (12, 11, 19))] = FAT_HU
        organ_mask = _ellipsoid(grid, centre, (8, 7, 15))
    elif organ == "esophagus":
        organ_hu = BODY_HU
        volume[((grid[1] - centre[1]) / 13) ** 2 + ((grid[2] - centre[2]) / 13) ** 2 <= 1] = FAT_HU
        radial = np.hypot(grid[1] - centre[1], grid[2] - centre[2])
        organ_mask = radial <= 5.0
        tube = (centre[1], centre[2], 2.0)
    elif organ == "vertebra":
        organ_hu = 300.0
        radial = np.hypot(grid[1] - centre[1], grid[2] - centre[2])
        volume[radial <= 10.5] = 800.0  # cortical shell
        organ_mask = radial <= 9.0
    else:
        raise ValueError(f"unknown phantom organ {organ!r}")
    volume[organ_mask] = organ_hu
    if tube is not None:  # the air in the esophagus
        volume[np.hypot(grid[1] - tube[0], grid[2] - tube[1]) <= tube[2]] = AIR_HU
    return volume, organ_mask, organ_hu, tube


def _lesion_mask(shape: int, lesion_type: LesionType, organ: np.ndarray, tube, grid, rng) -> np.ndarray:
    """The lesion (bool (z, y, x)) of class ``shape``, placed where it stays inside its organ."""
    if shape == 2:  # wall thickening: a sector of the tube's wall, 4-6 voxels thick over 12-20 slices
        y0, x0, lumen = tube
        radial = np.hypot(grid[1] - y0, grid[2] - x0)
        angle = np.arctan2(grid[1] - y0, grid[2] - x0)
        start, extent = rng.uniform(-np.pi, np.pi), rng.uniform(1.2 * np.pi, 2.0 * np.pi)
        in_sector = np.mod(angle - start, 2 * np.pi) <= extent
        z0, length = rng.uniform(12, 28), rng.uniform(12, 20)
        along = np.abs(grid[0] - z0) <= length / 2
        return (radial > lumen) & (radial <= lumen + rng.uniform(4, 6)) & in_sector & along
    inside = ndimage.distance_transform_edt(organ)
    radius = rng.uniform(2.5, 3.2) if shape == 3 else rng.uniform(*lesion_type.radius)
    # inside the organ where it is wide enough (else its widest part); in a tube's wall, growing out of it
    room = inside >= min(radius + 1, inside.max())
    if tube is not None:
        room = organ & (np.hypot(grid[1] - tube[0], grid[2] - tube[1]) > tube[2] + 1)
    candidates = np.argwhere(room)
    centre = candidates[rng.integers(len(candidates))].astype(np.float32)
    if shape == 1:  # irregular: a core sphere and 3-4 offset lobes
        lesion = _ellipsoid(grid, centre, (0.7 * radius,) * 3)
        for _ in range(int(rng.integers(3, 5))):
            direction = rng.standard_normal(3)
            lobe = centre + 0.65 * radius * direction / np.linalg.norm(direction)
            lesion |= _ellipsoid(grid, lobe, (rng.uniform(0.45, 0.7) * radius,) * 3)
        return lesion
    stretch = rng.uniform(0.85, 1.15, 3) if shape == 0 else np.ones(3)
    return _ellipsoid(grid, centre, radius * stretch)


def _add_vessel(volume: np.ndarray, lesion: np.ndarray, close: bool, grid, rng) -> np.ndarray:
    """A vessel along z beside the lesion, touching it (close) or 4-6 voxels away; drawn under the lesion."""
    radius = rng.uniform(2.0, 3.0)
    gap = 0.0 if close else rng.uniform(4.0, 6.0)
    points = np.argwhere(lesion)[:, 1:].astype(np.float32)  # (n, 2) in-plane (y, x) lesion voxels
    centre = points.mean(axis=0)
    direction = rng.standard_normal(2)
    direction /= np.linalg.norm(direction)
    for distance in np.arange(0.0, 40.0, 0.25):  # move out until the lesion is `gap` away from the vessel wall
        axis = centre + distance * direction
        if np.hypot(*(points - axis).T).min() >= radius + gap + 0.5:
            break
    vessel = np.hypot(grid[1] - axis[0], grid[2] - axis[1]) <= radius
    volume = volume.copy()
    volume[vessel & ~lesion] = VESSEL_HU
    return volume


def phantom_split(split: str, count: int, seed: int) -> list[Phantom]:
    """``count`` studies of ``split`` (train / valid: the seen types in turn; zeroshot: the held-out ones)."""
    if split not in SPLITS:
        raise ValueError(f"unknown phantom split {split!r}; the splits are {list(SPLITS)}")
    names = ZERO_SHOT_TYPES if split == "zeroshot" else SEEN_TYPES
    types = [t for t in LESION_TYPES if t.name in names]
    return [make_phantom(types[i % len(types)], np.random.default_rng([seed, SPLITS[split], i])) for i in range(count)]
