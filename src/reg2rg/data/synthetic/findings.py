"""Findings painted on a healthy phantom, each in a known region, each returned as a structured ``Finding``.

Every CT-RATE label has a painter; three extra findings (no label) make the thyroid, abdomen and
bone reports depend on the image too. Sizes, sides, lobes and extents are measured on the
painted voxels, so the report states what the volume shows at its resolution.

Texture findings are small or subtle (nodules of a few voxels, calcified spots, emphysema holes,
septal lines): they need high-resolution crops. Geometry findings change region masks
(cardiomegaly, effusions, hiatal hernia, lymphadenopathy). Every finding occupies at least one
voxel at full contrast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from reg2rg.constants import CT_RATE_LABELS
from reg2rg.data.synthetic.anatomy import LOBES, LOWER_LOBES, STATIONS, UPPER_LOBES
from reg2rg.data.synthetic.geometry import Box, Ellipsoid, Segment, extent_mm
from reg2rg.data.synthetic.phantom import HU, Phantom, paint_airways, paint_lung_bronchi

EXTRA_FINDINGS: tuple[str, ...] = ("Thyroid nodule", "Hepatic cyst", "Vertebral osteophytes")
FINDING_NAMES: tuple[str, ...] = CT_RATE_LABELS + EXTRA_FINDINGS

METAL_HU = 3000.0
PARENCHYMA_HU = (-990.0, -700.0)  # aerated lung: parenchyma, emphysema and mosaic, not lumens or lesions


@dataclass(frozen=True)
class Finding:
    """One abnormality as the report states it.

    ``side`` is "right", "left" or "bilateral" (patient sides: left = RAS +x); ``lobes`` are names
    from ``LOBES``; ``size_mm`` is measured on the voxels; ``extent`` is a grade ("small",
    "moderate", "large", "mild", "severe" ...); ``detail`` holds variant words (node stations,
    "pacemaker"); ``center_mm`` is the centroid of the painted voxels in RAS mm.
    """

    name: str
    region: str
    side: str | None = None
    lobes: tuple[str, ...] = ()
    size_mm: int | None = None
    extent: str | None = None
    detail: tuple[str, ...] = ()
    center_mm: tuple[float, float, float] | None = None

    @property
    def label(self) -> str | None:
        """The CT-RATE label this finding sets, if any."""
        return self.name if self.name in CT_RATE_LABELS else None


def sample_heart_scale(rng: np.random.Generator) -> float:
    """Linear enlargement of the heart for cardiomegaly (decided before the anatomy is rendered)."""
    return float(rng.uniform(1.25, 1.45))


def paint_findings(
    phantom: Phantom,
    present: dict[str, bool],
    rngs: dict[str, np.random.Generator],
    nodule_diameter_mm: tuple[float, float],
) -> list[Finding]:
    """Paint the present findings in an order where later ones cannot hide earlier ones, and return
    what was actually placed (a finding that found no room is left out)."""
    settings = {"Lung nodule": {"diameter_mm": nodule_diameter_mm}}
    findings: list[Finding] = []
    for name, painter in PAINTERS:
        if present.get(name, False):
            findings += painter(phantom, rngs[name], **settings.get(name, {}))
    return findings


# --- helpers -------------------------------------------------------------------------------------------


def _centroid(box: Box, mask: np.ndarray) -> tuple[float, float, float] | None:
    i, j, k = np.nonzero(mask)
    if i.size == 0:
        return None
    return (float(box.x.ravel()[i].mean()), float(box.y.ravel()[j].mean()), float(box.z.ravel()[k].mean()))


def _points(box: Box, mask: np.ndarray) -> np.ndarray:
    """(n, 3) world coordinates of the mask's voxels."""
    i, j, k = np.nonzero(mask)
    return np.stack([box.x.ravel()[i], box.y.ravel()[j], box.z.ravel()[k]], axis=1)


def _lobes_of(p: Phantom, points: np.ndarray, share: float = 0.1) -> tuple[str, ...]:
    """Lobes holding at least ``share`` of the points, in ``LOBES`` order."""
    if len(points) == 0:
        return ()
    counts = np.bincount(p.anatomy.lobe(points[:, 0], points[:, 1], points[:, 2]), minlength=len(LOBES))
    return tuple(LOBES[i] for i in np.flatnonzero(counts >= share * counts.sum()))


def _side_of_lobes(lobes: tuple[str, ...]) -> str | None:
    sides = {lobe.split()[0] for lobe in lobes}
    return None if not sides else ("bilateral" if len(sides) == 2 else sides.pop())


def _parenchyma(p: Phantom, box: Box) -> np.ndarray:
    """Aerated lung in the box: no vessels, airway walls, lumens or lesions."""
    hu = p.hu[box.slices]
    return p.masks["lung"][box.slices] & (hu > PARENCHYMA_HU[0]) & (hu < PARENCHYMA_HU[1])


def _lung_tissue(p: Phantom, box: Box) -> np.ndarray:
    """The lung in the box except airway lumens (lesions keep bronchi visible, e.g. air bronchograms)."""
    return p.masks["lung"][box.slices] & (p.hu[box.slices] > PARENCHYMA_HU[0])


def _lungs_box(p: Phantom, z_low: float | None = None) -> Box:
    a = p.anatomy
    ac, bc = a.cavity_axes
    bottom = min(a.dome_z) - a.dome_depth if z_low is None else z_low
    return p.grid.box((-ac, a.cavity_y - bc, bottom), (ac, a.cavity_y + bc, a.apex_top))


def _resize_linear(field: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Separable linear interpolation of ``field`` to ``shape`` (corners aligned)."""
    for axis, n in enumerate(shape):
        m = field.shape[axis]
        pos = np.linspace(0.0, m - 1.0, n, dtype=np.float32)
        i0 = np.floor(pos).astype(int)
        i1 = np.minimum(i0 + 1, m - 1)
        w = (pos - i0).astype(np.float32).reshape([-1 if a == axis else 1 for a in range(field.ndim)])
        field = np.take(field, i0, axis=axis) * (1 - w) + np.take(field, i1, axis=axis) * w
    return field


def _blur(field: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with periodic borders (for small coarse grids)."""
    offsets = np.arange(-int(3 * sigma), int(3 * sigma) + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    for axis in range(field.ndim):
        field = sum(w * np.roll(field, int(o), axis=axis) for o, w in zip(offsets, weights.astype(np.float32)))
    return field


def _smooth_field(p: Phantom, rng: np.random.Generator, box: Box, cell_mm: float) -> np.ndarray:
    """(n, m, k) float32 smooth random field over the box, unit variance, with blobs about ``cell_mm``
    across: blurred noise on a grid of ``cell_mm / 3`` steps, linearly upsampled."""
    step = cell_mm / 3
    coarse = tuple(max(2, int(np.ceil(n * s / step)) + 1) for n, s in zip(box.shape, p.grid.spacing))
    field = _blur(rng.standard_normal(coarse).astype(np.float32), 1.2)
    return _resize_linear(field / field.std(), box.shape)


def _patchy(
    p: Phantom,
    rng: np.random.Generator,
    box: Box,
    region: np.ndarray,
    fraction: float,
    cell_mm: float,
    bias: np.ndarray | float = 0.0,
) -> np.ndarray:
    """A random patchy subset of ``region`` covering ``fraction`` of it, blobs about ``cell_mm`` across
    (a smooth random field thresholded at its quantile); ``bias`` favours some places."""
    if not region.any():
        return region
    field = _smooth_field(p, rng, box, cell_mm) + bias
    return region & (field > np.quantile(field[region], 1.0 - fraction))


def _place_sphere(
    p: Phantom,
    rng: np.random.Generator,
    candidates: Callable[[], np.ndarray],
    radius: float,
    allowed: Callable[[Box], np.ndarray],
    tries: int = 40,
) -> tuple[Box, np.ndarray] | None:
    """A sphere of ``radius`` mm centred on a voxel near one of ``candidates()`` whose one-voxel halo lies
    entirely in ``allowed(box)``; None when no try fits."""
    margin = max(p.grid.spacing)
    for _ in range(tries):
        points = candidates()
        if len(points) == 0:
            return None
        center = tuple(p.grid.snap(points[rng.integers(len(points))]))
        box, mask = Ellipsoid(center, (radius,) * 3).voxels(p.grid)  # the box has a one-voxel pad
        halo = Ellipsoid(center, (radius + margin,) * 3).contains(box.x, box.y, box.z)
        if mask.any() and allowed(box)[halo | mask].all():
            return box, mask
    return None


# --- lungs ---------------------------------------------------------------------------------------------


def _lung_nodule(p: Phantom, rng: np.random.Generator, diameter_mm: tuple[float, float]) -> list[Finding]:
    """1-3 solid nodules (diameters in ``diameter_mm``, most near the small end), each surrounded by
    aerated lung; size = longest axial diameter."""
    findings = []
    pool = partial(p.anatomy.sample_lung_points, rng, 64)
    smallest, largest = diameter_mm
    for _ in range(int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))):
        diameter = smallest + (largest - smallest) * rng.beta(1.3, 3.5)
        placed = _place_sphere(p, rng, pool, diameter / 2, lambda box: _parenchyma(p, box))
        if placed is None:
            continue
        box, mask = placed
        p.paint(box, mask, rng.uniform(20, 45))
        size = extent_mm(mask, p.grid.spacing)
        center = _centroid(box, mask)
        lobe = LOBES[int(p.anatomy.lobe(*center))]
        findings.append(
            Finding("Lung nodule", "lung", lobe.split()[0], (lobe,), int(round(max(size[:2]))), center_mm=center)
        )
    return findings


def _emphysema(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Patchy low attenuation (about -970 HU) in the upper lobes, worst at the apices."""
    grade = rng.choice(["mild", "moderate", "severe"], p=[0.5, 0.35, 0.15])
    fraction = rng.uniform(*{"mild": (0.04, 0.08), "moderate": (0.12, 0.2), "severe": (0.28, 0.4)}[grade])
    lobes = UPPER_LOBES if rng.random() < 0.8 else (rng.choice(UPPER_LOBES),)
    box = _lungs_box(p, z_low=p.anatomy.fissures[0] - 60)
    region = _parenchyma(p, box) & np.isin(p.anatomy.lobe(box.x, box.y, box.z), lobes)
    height = (box.z - box.z.min()) / max(float(np.ptp(box.z)), 1.0)
    holes = _patchy(p, rng, box, region, fraction, cell_mm=6.0, bias=1.5 * height)
    if not holes.any():
        return []
    p.paint(box, holes, rng.uniform(-985, -960))
    measured = holes.sum() / region.sum()
    grade = "mild" if measured < 0.1 else "moderate" if measured < 0.25 else "severe"
    names = _lobes_of(p, _points(box, holes), share=0.05)
    return [Finding("Emphysema", "lung", _side_of_lobes(names), names, extent=grade, center_mm=_centroid(box, holes))]


def _mosaic_attenuation(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Geographic areas of lower attenuation (80-110 HU darker) across both lungs."""
    box = _lungs_box(p)
    region = _parenchyma(p, box)
    dark = _patchy(p, rng, box, region, rng.uniform(0.3, 0.45), cell_mm=30.0)
    if not dark.any():
        return []
    p.hu[box.slices][dark] -= rng.uniform(80, 110)
    names = _lobes_of(p, _points(box, dark))
    return [Finding("Mosaic attenuation pattern", "lung", _side_of_lobes(names), names, center_mm=_centroid(box, dark))]


def _interlobular_septal_thickening(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """A net of thin lines (irregular polygons about 12 mm across in axial slices) in the subpleural lower lungs."""
    a = p.anatomy
    ac, bc = a.cavity_axes
    box = _lungs_box(p)
    x, y, z = box.x, box.y, box.z
    subpleural = (x / ac) ** 2 + ((y - a.cavity_y) / bc) ** 2 > 0.55
    lower = np.isin(a.lobe(x, y, z), LOWER_LOBES + (1,))
    cell = rng.uniform(10, 14)
    warp = 3.0 * _smooth_field(p, rng, box, 2 * cell)  # bends the lattice into irregular polygons
    lines = np.zeros(box.shape, bool)
    for coordinate, offset, step in zip((x, y), rng.uniform(0, cell, 2), p.grid.spacing):
        lines |= np.mod(coordinate + warp - offset, cell) < max(1.5, step)  # at least one voxel thick
    septa = _parenchyma(p, box) & subpleural & lower & lines
    if not septa.any():
        return []
    p.paint(box, septa, rng.uniform(-450, -300))
    names = _lobes_of(p, _points(box, septa))
    return [
        Finding("Interlobular septal thickening", "lung", _side_of_lobes(names), names, center_mm=_centroid(box, septa))
    ]


def _focal_lesion(
    p: Phantom,
    rng: np.random.Generator,
    lobes: tuple[int, ...],
    radii: tuple[float, float],
    pieces: int,
    within: Callable[[Phantom, Box], np.ndarray],
) -> tuple[Box, np.ndarray] | None:
    """A lumpy lesion: ``pieces`` overlapping ellipsoids around a random point of ``lobes``, clipped to
    ``within(p, box)``."""
    points = p.anatomy.sample_lung_points(rng, 1, lobes)
    if len(points) == 0:
        return None
    center = p.grid.snap(points[0])
    parts = [
        Ellipsoid(tuple(center + rng.normal(0, radii[0] / 2, 3)), tuple(rng.uniform(*radii, 3)), rng.uniform(0, np.pi))
        for _ in range(pieces)
    ]
    reach = radii[1] * 2.5
    box = p.grid.box(tuple(center - reach), tuple(center + reach))
    mask = np.zeros(box.shape, bool)
    for part in parts:
        mask |= part.contains(box.x, box.y, box.z)
    mask &= within(p, box)
    return (box, mask) if mask.any() else None


def _focal_finding(
    name: str,
    lobes_pool: tuple[int, ...],
    radii: tuple[float, float],
    hu: tuple[float, float],
    count: tuple[int, ...],
    within: Callable[[Phantom, Box], np.ndarray],
) -> Callable[[Phantom, np.random.Generator], list[Finding]]:
    """A painter of 1 or more focal lung lesions of one kind (lobes drawn from ``lobes_pool``, painted
    on ``within``); their lobes are reported together."""

    def paint(p: Phantom, rng: np.random.Generator) -> list[Finding]:
        points = []
        for _ in range(int(rng.choice(count))):
            lesion = _focal_lesion(p, rng, (int(rng.choice(lobes_pool)),), radii, 3, within)
            if lesion is not None:
                box, mask = lesion
                p.paint(box, mask, rng.uniform(*hu))
                points.append(_points(box, mask))
        if not points:
            return []
        names = _lobes_of(p, np.concatenate(points))
        center = tuple(float(v) for v in np.concatenate(points).mean(axis=0))
        return [Finding(name, "lung", _side_of_lobes(names), names, center_mm=center)]

    return paint


# Ground glass spares the vessels; consolidation engulfs them but spares the bronchial lumens (air bronchograms).
_lung_opacity = _focal_finding(
    "Lung opacity", (0, 1, 2, 3, 4, 2, 4), (10.0, 22.0), (-620.0, -450.0), (1, 2, 3), _parenchyma
)
_consolidation = _focal_finding(
    "Consolidation", (2, 4, 2, 4, 0, 1, 3), (14.0, 28.0), (20.0, 45.0), (1, 1, 2), _lung_tissue
)


def _atelectasis(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Plate-like (subsegmental) atelectasis: a thin dense disc in the posterior base of a lower lobe."""
    a = p.anatomy

    def posterior(points: np.ndarray) -> np.ndarray:
        return points[:, 1] < a.cavity_y - 0.2 * a.cavity_axes[1]

    points = a.sample_lung_points(rng, 1, (int(rng.choice(LOWER_LOBES)),), posterior)
    if len(points) == 0:
        return []
    plate = Ellipsoid(
        tuple(p.grid.snap(points[0])),
        (rng.uniform(15, 30), rng.uniform(10, 20), rng.uniform(2, 4)),
        rng.uniform(0, np.pi),
    )
    box, mask = plate.voxels(p.grid)
    mask &= _lung_tissue(p, box)
    if not mask.any():
        return []
    p.paint(box, mask, rng.uniform(-60, 20))
    names = _lobes_of(p, _points(box, mask))
    return [Finding("Atelectasis", "lung", _side_of_lobes(names), names, center_mm=_centroid(box, mask))]


def _pulmonary_fibrotic_sequela(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """2-4 thin parenchymal bands (fibrotic sequelae), usually in an upper lobe."""
    lobe = int(rng.choice(UPPER_LOBES)) if rng.random() < 0.7 else int(rng.integers(len(LOBES)))
    starts = p.anatomy.sample_lung_points(rng, int(rng.integers(2, 5)), (lobe,))
    points = []
    for start in starts:
        direction = rng.normal(size=3)
        end = start + rng.uniform(20, 45) * direction / np.linalg.norm(direction)
        band = Segment(tuple(start), tuple(end), rng.uniform(1.2, 2.5), rng.uniform(1.0, 2.0))
        box, mask = band.voxels(p.grid, min_radius=0.5 * min(p.grid.spacing))
        mask &= _lung_tissue(p, box)
        p.paint(box, mask, rng.uniform(-150, 0))
        points.append(_points(box, mask))
    points = np.concatenate(points) if points else np.zeros((0, 3))
    if len(points) == 0:  # no room: the bands fell outside the lung
        return []
    names = _lobes_of(p, points)
    return [
        Finding(
            "Pulmonary fibrotic sequela",
            "lung",
            _side_of_lobes(names),
            names,
            center_mm=tuple(float(v) for v in points.mean(axis=0)),
        )
    ]


def _bronchiectasis(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Dilated segmental bronchi (lumen 2.5-3.5x, thick wall) in the lower lobes."""
    a = p.anatomy
    bronchi = [b for b, _ in a.bundles if int(a.lobe(*b.p1)) in LOWER_LOBES]
    if rng.random() < 0.5:  # one side only
        side = rng.choice(["right", "left"])
        bronchi = [b for b in bronchi if a.side(b.p1[0]) == side]
    if not bronchi:
        return []
    chosen = tuple(bronchi[i] for i in rng.permutation(len(bronchi))[: rng.integers(2, 5)])
    paint_lung_bronchi(p, extra_wall=0.8, lumen_scale=rng.uniform(2.5, 3.5), bronchi=chosen)
    ends = np.array([b.p1 for b in chosen])
    names = _lobes_of(p, ends, share=0.01)
    return [
        Finding(
            "Bronchiectasis", "lung", _side_of_lobes(names), names, center_mm=tuple(float(v) for v in ends.mean(axis=0))
        )
    ]


# --- pleura, heart, mediastinum, esophagus, airways ----------------------------------------------------


def _pleural_effusion(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Fluid in the dependent (posterior) pleural space: a flat level in y, one finding per side."""
    a = p.anatomy
    sides = {"right": ("right",), "left": ("left",), "bilateral": ("right", "left")}[
        rng.choice(["right", "left", "bilateral"], p=[0.35, 0.25, 0.4])
    ]
    findings = []
    for side in sides:
        grade = rng.choice(["small", "moderate", "large"], p=[0.5, 0.35, 0.15])
        target = rng.uniform(*{"small": (0.03, 0.08), "moderate": (0.12, 0.22), "large": (0.28, 0.4)}[grade])
        box = _lungs_box(p)
        lung = p.masks["lung"][box.slices] & ((box.x > a.midline_x) == (side == "left"))
        per_row = lung.sum(axis=(0, 2))  # lung voxels per y row, posterior first
        if per_row.sum() == 0:
            continue
        level = int(np.searchsorted(np.cumsum(per_row), target * per_row.sum()))
        fluid = lung & (np.arange(box.shape[1]) <= level)[None, :, None]
        p.paint(box, fluid, HU["fluid"], remove_from=("lung",))
        p.pleural_fluid.append((box, fluid))
        measured = fluid.sum() / per_row.sum()
        grade = "small" if measured < 0.1 else "moderate" if measured < 0.25 else "large"
        findings.append(Finding("Pleural effusion", "pleura", side, extent=grade, center_mm=_centroid(box, fluid)))
    return findings


def _pericardial_effusion(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """A fluid rim (5-15 mm) around the heart; the heart mask grows with it (the pericardial sac)."""
    a = p.anatomy
    sac = a.heart.grown(rng.uniform(5, 15))
    box, mask = sac.voxels(p.grid, at_least_one=False)
    hu = p.hu[box.slices]
    room = p.masks["lung"][box.slices] | (hu == HU["mediastinal fat"]) | (hu == HU["neck"])
    mask &= ~p.masks["heart"][box.slices] & room & a.in_thorax(box.x, box.y, box.z)
    if not mask.any():
        return []
    p.paint(box, mask, HU["fluid"], add_to=("heart",), remove_from=("lung", "mediastinum"))
    _, j, k = (c - s.start for c, s in zip(p.grid.index(a.heart.center), box.slices))
    thickness = mask[:, j, k].sum() / 2 * p.grid.spacing[0]  # along x through the heart's centre, mean of both sides
    return [
        Finding("Pericardial effusion", "heart", size_mm=max(int(round(thickness)), 1), center_mm=_centroid(box, mask))
    ]


def _cardiomegaly(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Nothing to paint: the anatomy was sampled with an enlarged heart (``sample_heart_scale``)."""
    return [Finding("Cardiomegaly", "heart", center_mm=tuple(map(float, p.anatomy.heart.center)))]


def _spots(
    p: Phantom, rng: np.random.Generator, centers: np.ndarray, region: str, hu: tuple[float, float]
) -> np.ndarray:
    """Small dense spots (1-3 mm radius, at least one voxel) inside ``region``; (n, 3) painted centres."""
    placed = []
    for center in centers:
        box, mask = Ellipsoid(tuple(p.grid.snap(center)), (rng.uniform(1.0, 3.0),) * 3).voxels(p.grid)
        mask &= p.masks[region][box.slices]
        if mask.any():
            p.paint(box, mask, rng.uniform(*hu))
            placed.append(_centroid(box, mask))
    return np.array(placed).reshape(-1, 3)


def _coronary_artery_wall_calcification(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Calcified spots just under the heart's surface, along the upper (atrioventricular) part."""
    heart = p.anatomy.heart
    n = int(rng.integers(2, 9))
    phi, psi = rng.uniform(0, 2 * np.pi, n), rng.uniform(-0.2, 0.6, n)
    local = 0.92 * np.stack(
        [
            heart.radii[0] * np.cos(psi) * np.cos(phi),
            heart.radii[1] * np.cos(psi) * np.sin(phi),
            heart.radii[2] * np.sin(psi),
        ],
        axis=1,
    )
    c, s = np.cos(heart.angle), np.sin(heart.angle)
    world = np.stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1], local[:, 2]], axis=1)
    placed = _spots(p, rng, world + np.asarray(heart.center), "heart", (400, 900))
    if len(placed) == 0:
        return []
    return [Finding("Coronary artery wall calcification", "heart", center_mm=tuple(map(float, placed.mean(axis=0))))]


def _arterial_wall_calcification(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Calcified plaques on the wall of the aortic arch and descending aorta."""
    aorta = p.anatomy.aorta[2:6]
    centers = []
    for _ in range(int(rng.integers(3, 13))):
        segment = aorta[rng.integers(len(aorta))]
        t = rng.uniform(0.0, 1.0)
        axis = np.asarray(segment.p1) - np.asarray(segment.p0)
        normal = np.cross(axis, rng.normal(size=3))
        centers.append(segment.point(t) + (segment.radius(t) - 1.0) * normal / np.linalg.norm(normal))
    placed = _spots(p, rng, np.array(centers), "mediastinum", (500, 1000))
    if len(placed) == 0:
        return []
    return [Finding("Arterial wall calcification", "mediastinum", center_mm=tuple(map(float, placed.mean(axis=0))))]


def _lymphadenopathy(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """1-3 enlarged nodes (short axis >= 10 mm) at mediastinal stations; the largest short axis is stated."""
    a = p.anatomy
    stations, sizes, points = [], [], []
    for name in rng.permutation(STATIONS)[: rng.integers(1, 4)]:
        r = rng.uniform(6.0, 12.5)
        radii = (r, r * rng.uniform(1.0, 1.3), r * 1.5)
        node = Ellipsoid(tuple(p.grid.snap(a.stations[name])), radii, rng.uniform(0, np.pi))
        box, mask = node.voxels(p.grid)
        hu = p.hu[box.slices]
        mask &= (hu == HU["mediastinal fat"]) | p.masks["lung"][box.slices]
        short_axis = min(extent_mm(mask, p.grid.spacing)[:2])
        if short_axis < 10.0:
            continue  # no room for an enlarged node here
        p.paint(box, mask, HU["node"], add_to=("mediastinum",), remove_from=("lung",))
        stations.append(str(name))
        sizes.append(short_axis)
        points.append(_points(box, mask))
    if not stations:
        return []
    order = [s for s in STATIONS if s in stations]
    center = tuple(float(v) for v in np.concatenate(points).mean(axis=0))
    return [
        Finding("Lymphadenopathy", "mediastinum", size_mm=int(round(max(sizes))), detail=tuple(order), center_mm=center)
    ]


def _hiatal_hernia(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Stomach herniating through the hiatus: a walled sac (air anteriorly, fluid behind) above the diaphragm."""
    a = p.anatomy
    radii = (rng.uniform(18, 30), rng.uniform(16, 26), rng.uniform(22, 35))
    sac = Ellipsoid(tuple(a.hiatus + np.array([0.0, 0.0, 0.5 * radii[2]])), radii)
    box, mask = sac.voxels(p.grid)
    keep = ~p.masks["bone"][box.slices] & ~p.masks["heart"][box.slices]
    keep &= ~(p.masks["mediastinum"][box.slices] & (p.hu[box.slices] == HU["vessel"]))
    mask &= keep
    if not mask.any():
        return []
    p.paint(box, mask, HU["stomach wall"], add_to=("esophagus",), remove_from=("lung", "abdomen"))
    lumen = sac.grown(-4.0).contains(box.x, box.y, box.z) & mask
    air = box.y > sac.center[1] + 0.3 * radii[1]
    p.paint(box, lumen & air, HU["air"])
    p.paint(box, lumen & ~air, HU["gastric fluid"])
    width = extent_mm(mask, p.grid.spacing)[0]
    return [Finding("Hiatal hernia", "esophagus", size_mm=int(round(width)), center_mm=_centroid(box, mask))]


def _peribronchial_thickening(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Thick walls of the main, lobar and segmental bronchi (the airway mask grows with them)."""
    paint_airways(p, extra_wall=rng.uniform(2.0, 3.0))
    paint_lung_bronchi(p, extra_wall=rng.uniform(1.2, 2.0))
    return [
        Finding(
            "Peribronchial thickening",
            "trachea and bronchie",
            "bilateral",
            center_mm=tuple(map(float, p.anatomy.airways[1].p0)),
        )
    ]


def _medical_material(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Metal: sternotomy wires (bone report) or a pacemaker whose lead ends in the right ventricle (heart)."""
    a = p.anatomy
    thick = 0.5 * float(np.linalg.norm(p.grid.spacing))  # metal always shows (blooming)
    if rng.random() < 0.5:
        half, bottom, top = a.sternum
        front = a.cavity_y + a.cavity_axes[1]
        for z in np.linspace(bottom + 10, top - 10, int(rng.integers(4, 7))):
            wire = Segment((-half - 3, front + 5, z), (half + 3, front + 5, z), 1.0, 1.0)
            box, mask = wire.voxels(p.grid, min_radius=thick)
            p.paint(box, mask, METAL_HU, add_to=("bone",))
        wires = (0.0, front + 5, (bottom + top) / 2)
        return [Finding("Medical material", "bone", detail=("sternotomy wires",), center_mm=wires)]
    heart = a.heart
    ax, by = a.body_axes
    pocket_x = 0.55 * ax
    pocket = (pocket_x, by * np.sqrt(1 - (pocket_x / ax) ** 2) - 0.6 * a.fat_mm, a.apex_top - 25)
    box, mask = Ellipsoid(pocket, (22.0, 5.0, 18.0)).voxels(p.grid)
    p.paint(box, mask, METAL_HU)
    svc_top, svc_bottom = a.vessels[-1].p0, a.vessels[-1].p1
    ventricle = tuple(float(v) for v in np.asarray(heart.center) + np.array([-0.2, 0.4, -0.3]) * heart.radii)
    path = [pocket, svc_top, svc_bottom, ventricle]
    for start, end in zip(path, path[1:]):
        box, mask = Segment(start, end, 1.0, 1.0).voxels(p.grid, min_radius=thick)
        p.paint(box, mask, METAL_HU)
    return [Finding("Medical material", "heart", detail=("pacemaker",), center_mm=ventricle)]


# --- extra findings (no CT-RATE label) ------------------------------------------------------------------


def _thyroid_nodule(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """A hypodense nodule (6-16 mm) in one thyroid lobe."""
    side = int(rng.integers(2))  # 0 right lobe, 1 left lobe
    lobe = p.anatomy.thyroid[side]
    center = np.asarray(lobe.center) + rng.uniform(-0.3, 0.3, 3) * np.asarray(lobe.radii)
    box, mask = Ellipsoid(tuple(p.grid.snap(center)), (rng.uniform(3.0, 8.0),) * 3).voxels(p.grid)
    mask &= p.masks["thyroid"][box.slices]
    if not mask.any():
        return []
    p.paint(box, mask, rng.uniform(20, 50))
    size = int(round(max(extent_mm(mask, p.grid.spacing)[:2])))
    return [Finding("Thyroid nodule", "thyroid", ("right", "left")[side], size_mm=size, center_mm=_centroid(box, mask))]


def _hepatic_cyst(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """A water-density cyst (8-24 mm) inside the liver."""
    a = p.anatomy
    ac, bc = a.cavity_axes
    lo = np.array([-ac, a.cavity_y - bc, min(a.dome_z) - a.dome_depth - a.liver_depth])
    hi = np.array([a.midline_x + 40, a.cavity_y + bc, max(a.dome_z)])
    pool = partial(rng.uniform, lo, hi, (64, 3))
    radius = rng.uniform(4.0, 12.0)
    placed = _place_sphere(p, rng, pool, radius, lambda box: p.hu[box.slices] == HU["liver"])
    if placed is None:
        return []
    box, mask = placed
    p.paint(box, mask, rng.uniform(0, 15))
    size = int(round(max(extent_mm(mask, p.grid.spacing)[:2])))
    return [Finding("Hepatic cyst", "abdomen", size_mm=size, center_mm=_centroid(box, mask))]


def _vertebral_osteophytes(p: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Bony spurs at the anterolateral margins of thoracic vertebral bodies, next to discs."""
    a = p.anatomy
    period, thickness, phase = a.discs
    levels = phase + period * np.arange(-8, 8) + thickness / 2
    levels = levels[(levels > min(a.dome_z)) & (levels < a.apex_top)]
    points = []
    for z in rng.choice(levels, size=min(len(levels), int(rng.integers(2, 6))), replace=False):
        theta = rng.uniform(0.3, np.pi - 0.3)
        center = (1.05 * a.vertebra_radius * np.cos(theta), a.spine_y + 0.95 * a.vertebra_radius * np.sin(theta), z)
        box, mask = Ellipsoid(tuple(p.grid.snap(center)), (4.0, 4.0, 5.0)).voxels(p.grid)
        p.paint(box, mask, a.tissue_hu["cortex"], add_to=("bone",))
        points.append(center)
    if not points:
        return []
    return [Finding("Vertebral osteophytes", "bone", center_mm=tuple(float(v) for v in np.mean(points, axis=0)))]


# Painting order: geometry that moves the lung boundary first, broad lung textures before focal
# lesions, nodules (which need clear lung around them) last among the lung findings.
PAINTERS: tuple[tuple[str, Callable[[Phantom, np.random.Generator], list[Finding]]], ...] = (
    ("Cardiomegaly", _cardiomegaly),
    ("Pleural effusion", _pleural_effusion),
    ("Pericardial effusion", _pericardial_effusion),
    ("Hiatal hernia", _hiatal_hernia),
    ("Lymphadenopathy", _lymphadenopathy),
    ("Peribronchial thickening", _peribronchial_thickening),
    ("Bronchiectasis", _bronchiectasis),
    ("Mosaic attenuation pattern", _mosaic_attenuation),
    ("Emphysema", _emphysema),
    ("Interlobular septal thickening", _interlobular_septal_thickening),
    ("Pulmonary fibrotic sequela", _pulmonary_fibrotic_sequela),
    ("Lung opacity", _lung_opacity),
    ("Consolidation", _consolidation),
    ("Atelectasis", _atelectasis),
    ("Lung nodule", _lung_nodule),
    ("Coronary artery wall calcification", _coronary_artery_wall_calcification),
    ("Arterial wall calcification", _arterial_wall_calcification),
    ("Medical material", _medical_material),
    ("Thyroid nodule", _thyroid_nodule),
    ("Hepatic cyst", _hepatic_cyst),
    ("Vertebral osteophytes", _vertebral_osteophytes),
)
