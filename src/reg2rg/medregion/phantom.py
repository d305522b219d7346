"""A synthetic chest CT where MedRegion-CT's attributes matter, with its true values recorded.

Organ sizes vary from study to study; lung nodules vary in count (0-3), diameter and lobe; hepatic and renal
cysts and a pleural effusion of varying volume come and go. Each study has the six region masks, organ masks
(five lung lobes, four heart chambers, liver, kidneys), lesion masks (``nodule``, whose lobes the extractor finds
by overlap; ``cyst_<organ>``, ``effusion_<side>_pleural_space``) and a
``truth`` record: each organ's volume and the effusion's in ml, counted on the masks as written, and each
nodule's and cyst's place and nominal diameter. Shapes are ellipsoids placed in fractions of the field of view,
on ``reg2rg.data.synthetic.geometry.Grid`` (x > 0: patient left, y > 0: anterior, z > 0: superior).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reg2rg.data.synthetic.geometry import Grid
from reg2rg.medregion.attributes import volume_ml

LOBES = ("right_upper_lobe", "right_middle_lobe", "right_lower_lobe", "left_upper_lobe", "left_lower_lobe")
CHAMBERS = ("left_atrium", "right_atrium", "left_ventricle", "right_ventricle")
CYST_ORGANS = ("liver", "left_kidney", "right_kidney")
HU = {"air": -1000, "body": 40, "lung": -850, "bone": 700, "heart": 45, "liver": 60, "kidney": 30}
LESION_HU = {"nodule": 40, "cyst": 0, "effusion": 15}


@dataclass(frozen=True)
class PhantomConfig:
    """Grid and lesion frequencies of the testbed. ``shape``: (X, Y, Z) voxels over ``fov_mm``."""

    shape: tuple[int, int, int] = (128, 128, 32)
    fov_mm: tuple[float, float, float] = (360.0, 360.0, 320.0)
    noise_hu: float = 10.0
    nodule_counts: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)  # probability of 0, 1, 2, 3 nodules
    nodule_diameter_mm: tuple[float, float] = (10.0, 24.0)
    cyst_probability: float = 0.3
    effusion_probability: float = 0.3

    @property
    def grid(self) -> Grid:
        return Grid(tuple(self.shape), tuple(f / n for f, n in zip(self.fov_mm, self.shape, strict=True)))


@dataclass
class PhantomStudy:
    """One study: int16 (X, Y, Z) HU ``volume``, (4, 4) ``affine``, bool masks, region reports and the truth."""

    volume: np.ndarray
    affine: np.ndarray
    regions: dict[str, np.ndarray]  # the six MedRegion regions
    masks: dict[str, np.ndarray]  # organ masks by name, lesion masks as <type> or <type>_<location>
    truth: dict = field(default_factory=dict)


class _Frame:
    """Voxel-centre coordinates of a grid in fractions of its field of view (-0.5 .. 0.5 along each axis)."""

    def __init__(self, grid: Grid):
        self.grid = grid
        self.fov = np.asarray(grid.shape) * np.asarray(grid.spacing)
        self.u, self.v, self.w = (
            (grid.axis(d) / self.fov[d]).reshape([-1 if a == d else 1 for a in range(3)]) for d in range(3)
        )

    def ellipsoid(self, center, semi) -> np.ndarray:
        """bool (X, Y, Z): inside the ellipsoid (centre and semi-axes in fractions of the field of view)."""
        inside = sum(((c - m) / s) ** 2 for c, m, s in zip((self.u, self.v, self.w), center, semi, strict=True))
        return np.broadcast_to(inside <= 1.0, self.grid.shape).copy()

    def full(self, condition: np.ndarray) -> np.ndarray:
        return np.broadcast_to(condition, self.grid.shape).copy()


def make_phantom(cfg: PhantomConfig, rng: np.random.Generator) -> PhantomStudy:
    """Draw one study from ``rng``."""
    f = _Frame(cfg.grid)
    lung_scale, heart_scale, liver_scale, kidney_scale = rng.uniform(0.85, 1.15, size=4)
    body = f.full((f.u / 0.45) ** 2 + (f.v / 0.3) ** 2 <= 1)
    ribs = body & ~f.full((f.u / 0.42) ** 2 + (f.v / 0.27) ** 2 <= 1)
    spine = body & f.full(f.u**2 + (f.v + 0.22) ** 2 <= 0.04**2)
    airway = f.full((f.u**2 + f.v**2 <= 0.025**2) & (f.w > 0.15))
    heart = f.ellipsoid((0.03, 0.08, -0.12), np.asarray((0.1, 0.1, 0.13)) * heart_scale)
    liver = f.ellipsoid((-0.12, 0.02, -0.4), np.asarray((0.15, 0.13, 0.1)) * liver_scale)
    kidneys = {
        side: f.ellipsoid((sign * 0.12, -0.15, -0.4), np.asarray((0.035, 0.035, 0.08)) * kidney_scale)
        for side, sign in (("right", -1), ("left", 1))
    }
    lung_semi = (0.14 * lung_scale, 0.2, 0.36 * lung_scale)
    lungs = {side: f.ellipsoid((sign * 0.19, 0.0, 0.04), lung_semi) for side, sign in (("right", -1), ("left", 1))}
    inner = body & ~spine & ~ribs
    for organ in (*lungs.values(), heart, liver, *kidneys.values()):
        organ &= inner
    liver &= ~heart
    for lung in lungs.values():
        lung &= ~heart & ~airway & ~liver

    lobes = _lobes(lungs, f)
    chambers = _chambers(heart, f)
    effusion, effusion_side = _effusion(cfg, rng, lungs, f)
    for lobe in lobes.values():
        lobe &= ~effusion
    organs = {**lobes, **chambers, "liver": liver, "left_kidney": kidneys["left"], "right_kidney": kidneys["right"]}
    nodules, nodule_truth = _spheres(
        rng, lobes, rng.choice(len(cfg.nodule_counts), p=cfg.nodule_counts), cfg.nodule_diameter_mm, cfg.grid
    )
    cyst_count = int(rng.random() < cfg.cyst_probability)
    cysts, cyst_truth = _spheres(rng, {o: organs[o] for o in CYST_ORGANS}, cyst_count, (15.0, 30.0), cfg.grid)

    lung_region = lungs["right"] | lungs["left"] | effusion
    diaphragm = f.w < f.w.ravel()[np.flatnonzero(lung_region.any(axis=(0, 1)))[0]]
    abdomen = inner & f.full(diaphragm) & ~lung_region
    regions = {
        "lung": lung_region,
        "airway": airway & body,
        "mediastinum": inner & f.full(np.abs(f.u) < 0.1) & ~lung_region & ~heart & ~airway & ~abdomen,
        "heart": heart,
        "osseous": spine | ribs,
        "abdomen": abdomen,
    }
    hu = np.where(body, HU["body"], HU["air"]).astype(np.float32)
    painted = (("lung", lungs["right"] | lungs["left"]), ("bone", spine | ribs), ("heart", heart), ("liver", liver))
    for tissue, mask in (*painted, ("kidney", kidneys["left"] | kidneys["right"]), ("air", airway & body)):
        hu[mask] = HU[tissue]
    for kind, group in (("nodule", nodules), ("cyst", cysts), ("effusion", {"": effusion})):
        for mask in group.values():
            hu[mask] = LESION_HU[kind]
    hu += cfg.noise_hu * rng.standard_normal(hu.shape, dtype=np.float32)

    masks = dict(organs)
    if nodules:  # one mask for all nodules: the extractor names each one's lobe by overlap
        masks["nodule"] = np.any(list(nodules.values()), axis=0)
    masks |= {f"cyst_{organ}": mask for organ, mask in cysts.items()}
    if effusion_side:
        masks[f"effusion_{effusion_side}_pleural_space"] = effusion
    spacing = cfg.grid.spacing
    truth = {
        "organs_ml": {name: volume_ml(mask, spacing) for name, mask in organs.items()},
        "nodules": nodule_truth,
        "cysts": cyst_truth,
        "effusion": {"side": effusion_side, "volume_ml": volume_ml(effusion, spacing)} if effusion_side else None,
    }
    volume = np.rint(np.clip(hu, -1024, 3071)).astype(np.int16)
    return PhantomStudy(volume=volume, affine=cfg.grid.affine, regions=regions, masks=masks, truth=truth)


def _lobes(lungs: dict[str, np.ndarray], f: _Frame) -> dict[str, np.ndarray]:
    """Five lobes cut by planes: right upper above w = 0.1, middle below it and anterior, lower the rest;
    left upper above w = 0.0."""
    upper_right, upper_left, anterior = f.full(f.w > 0.1), f.full(f.w > 0.0), f.full(f.v > 0.0)
    right, left = lungs["right"], lungs["left"]
    return {
        "right_upper_lobe": right & upper_right,
        "right_middle_lobe": right & ~upper_right & anterior,
        "right_lower_lobe": right & ~upper_right & ~anterior,
        "left_upper_lobe": left & upper_left,
        "left_lower_lobe": left & ~upper_left,
    }


def _chambers(heart: np.ndarray, f: _Frame) -> dict[str, np.ndarray]:
    """Quarters of the heart: atria above its middle height, ventricles below; left / right by the patient's x."""
    levels = f.w.ravel()[np.flatnonzero(heart.any(axis=(0, 1)))]
    upper = f.full(f.w > (levels.min() + levels.max()) / 2)
    left = f.full(f.u > 0.03)
    return {
        "left_atrium": heart & upper & left,
        "right_atrium": heart & upper & ~left,
        "left_ventricle": heart & ~upper & left,
        "right_ventricle": heart & ~upper & ~left,
    }


def _effusion(cfg: PhantomConfig, rng: np.random.Generator, lungs: dict[str, np.ndarray], f: _Frame):
    """(bool (X, Y, Z) mask, side or None): fluid filling a lung's posterior part below a random level."""
    if rng.random() >= cfg.effusion_probability:
        return np.zeros(f.grid.shape, dtype=bool), None
    side = ("right", "left")[int(rng.integers(2))]
    level = rng.uniform(-0.25, -0.05)  # its top, in fractions of the field of view along z
    return lungs[side] & f.full((f.w < level) & (f.v < -0.05)), side


def _spheres(
    rng: np.random.Generator,
    hosts: dict[str, np.ndarray],
    count: int,
    diameter_mm: tuple[float, float],
    grid: Grid,
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """``count`` balls, each wholly inside a randomly drawn host mask and apart from the others by at least two
    voxels: ({host: bool (X, Y, Z) union of its balls}, [{"location": host, "diameter_mm": nominal,
    "center_voxel": [i, j, k], "first_voxel": [i, j, k]}]); the first voxel in raster order is the one nearest the
    patient's right (lowest x), as connected-component labelling meets it."""
    spacing = np.asarray(grid.spacing)
    index = np.indices(grid.shape, dtype=np.float32)  # (3, X, Y, Z)
    taken = np.zeros(grid.shape, dtype=bool)
    placed: dict[str, np.ndarray] = {}
    records = []
    for _ in range(count):
        for _attempt in range(50):
            host = sorted(hosts)[int(rng.integers(len(hosts)))]
            diameter = float(rng.uniform(*diameter_mm))
            candidates = np.flatnonzero(hosts[host])
            if candidates.size == 0:
                continue
            center = np.unravel_index(candidates[int(rng.integers(candidates.size))], grid.shape)
            offsets = (index - np.asarray(center, dtype=np.float32).reshape(3, 1, 1, 1)) * spacing.reshape(3, 1, 1, 1)
            ball = (offsets**2).sum(axis=0) <= (diameter / 2) ** 2
            halo = (offsets**2).sum(axis=0) <= (diameter / 2 + 2 * spacing.max()) ** 2
            if (ball <= hosts[host]).all() and not (halo & taken).any():
                taken |= ball
                placed[host] = placed.get(host, np.zeros(grid.shape, dtype=bool)) | ball
                first = [int(i) for i in np.argwhere(ball)[0]]  # its first voxel in (X, Y, Z) raster order
                records.append(
                    {
                        "location": host,
                        "diameter_mm": diameter,
                        "center_voxel": [int(c) for c in center],
                        "first_voxel": first,
                    }
                )
                break
    return placed, records
