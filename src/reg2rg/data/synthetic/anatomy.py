"""The anatomy of one synthetic chest: jittered parameters in millimetres and analytic tests on them.

The phantom is a physical object, independent of the voxel grid it is later rendered on: the
body is an elliptic cylinder centred on the RAS origin (x = patient Left, y = Anterior,
z = Superior), about 320 mm wide, with the lung apices near z = +150 mm and the diaphragm domes
near z = -50 mm, so that a 360 mm field of view holds neck-to-upper-abdomen like a chest CT.
The thoracic cavity is an ellipse shifted anteriorly (the back wall is thicker) with the spine
protruding into it; the mediastinum is a column around ``midline_x`` that separates the lungs.

The analytic tests (``in_cavity``, ``diaphragm_z``, ``in_lung``, ``lobe`` ...) take coordinate
arrays that broadcast (e.g. ``(X, 1, 1)``, ``(1, Y, 1)``, ``(1, 1, Z)``): functions of x and y
only return ``(X, Y, 1)`` maps, which is what keeps full-size rendering cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from reg2rg.data.synthetic.geometry import Ellipsoid, Point, Segment

LOBES: tuple[str, ...] = (
    "right upper lobe",
    "right middle lobe",
    "right lower lobe",
    "left upper lobe",
    "left lower lobe",
)
UPPER_LOBES = (0, 3)
LOWER_LOBES = (2, 4)

# Mediastinal lymph node stations, as named in reports.
STATIONS: tuple[str, ...] = ("right paratracheal", "left paratracheal", "prevascular", "subcarinal", "paraesophageal")


@dataclass(frozen=True)
class Anatomy:
    """One study's anatomy (mm). See the module docstring for the coordinate frame."""

    female: bool
    body_axes: tuple[float, float]  # (a, b): semi-axes of the body ellipse, centred at x = y = 0
    fat_mm: float  # subcutaneous fat
    muscle_mm: float  # chest wall muscle (laterally and anteriorly; the back wall is thicker)
    rib_mm: float  # the band of ribs and intercostal muscle around the cavity
    cavity_y: float  # y of the thoracic cavity's centre
    midline_x: float  # x of the mediastinal column's centre
    mediastinum_half_width: float
    dome_z: tuple[float, float]  # diaphragm dome heights (right, left)
    dome_depth: float  # drop from the domes to the costophrenic recesses
    apex_top: float  # top of the lungs
    spine_y: float
    vertebra_radius: float
    discs: tuple[float, float, float]  # intervertebral discs: (period, thickness, phase)
    ribs: tuple[float, float, float, float]  # (period, height, slope dz/dy, phase)
    fissures: tuple[float, float, float]  # oblique fissure (z at y = 0, slope), horizontal fissure z
    lung_hu: tuple[float, float]  # parenchyma HU anteriorly, and its increase towards the back
    tissue_hu: dict[str, float]  # per-study HU of heart, cancellous bone, cortex
    heart: Ellipsoid
    airways: tuple[Segment, ...]  # trachea, main bronchi, lobar bronchi: the 'trachea and bronchie' region
    bundles: tuple[tuple[Segment, Segment], ...]  # (segmental bronchus, companion artery) in the lungs
    veins: tuple[Segment, ...]  # pulmonary veins in the lungs
    esophagus: tuple[Segment, ...]  # top to the stomach; the hiatus is the end of the last-but-one segment
    aorta: tuple[Segment, ...]  # ascending, arch, descending
    vessels: tuple[Segment, ...]  # pulmonary trunk and arteries, superior vena cava
    thyroid: tuple[Ellipsoid, ...]  # right lobe, left lobe, isthmus
    breasts: tuple[Ellipsoid, Ellipsoid]  # right, left
    sternum: tuple[float, float, float]  # (half width, bottom z, top z)
    liver_depth: float
    stomach: Ellipsoid
    spleen: Ellipsoid
    stations: dict[str, Point]  # lymph node stations (centres)
    normal_nodes: tuple[Ellipsoid, ...]  # small (normal-size) mediastinal nodes

    # --- derived sizes -----------------------------------------------------------------------------

    @property
    def cavity_axes(self) -> tuple[float, float]:
        a, b = self.body_axes
        wall = self.fat_mm + self.muscle_mm + self.rib_mm
        return a - wall, b - wall - self.cavity_y

    @property
    def hiatus(self) -> np.ndarray:
        """(3,) where the esophagus passes the diaphragm."""
        return np.asarray(self.esophagus[-1].p0)

    # --- analytic tests (broadcasting) -------------------------------------------------------------

    def in_body(self, x, y):
        a, b = self.body_axes
        return (x / a) ** 2 + (y / b) ** 2 <= 1.0

    def in_fat_inner(self, x, y):
        """Inside the subcutaneous fat layer (muscle and deeper)."""
        a, b = self.body_axes
        return (x / (a - self.fat_mm)) ** 2 + (y / (b - self.fat_mm)) ** 2 <= 1.0

    def in_cavity_ellipse(self, x, y, grow: float = 0.0):
        ac, bc = self.cavity_axes
        return (x / (ac + grow)) ** 2 + ((y - self.cavity_y) / (bc + grow)) ** 2 <= 1.0

    def in_spine_block(self, x, y):
        """The vertebral body, the soft tissue around it and everything behind it (kept out of the cavity)."""
        r = self.vertebra_radius
        around = (x / (r + 8)) ** 2 + ((y - self.spine_y) / (r + 5)) ** 2 <= 1.0
        return around | ((np.abs(x) < r + 8) & (y < self.spine_y))

    def in_cavity(self, x, y):
        """The thoracic (and upper abdominal) cavity inside the ribs, spine excluded."""
        return self.in_cavity_ellipse(x, y) & ~self.in_spine_block(x, y)

    def diaphragm_z(self, x, y):
        """Height of the diaphragm: flat domes medially, falling towards the sides and (most) the back."""
        return _diaphragm_z(x, y, self.cavity_axes, self.cavity_y, self.midline_x, self.dome_z, self.dome_depth)

    def apex_z(self, x, y):
        """Top of the lungs: one dome over each lung."""
        ac, bc = self.cavity_axes
        u = (np.abs(x - self.midline_x) - 0.5 * ac) / (0.5 * ac)
        v = (y - self.cavity_y) / bc
        return self.apex_top - 70.0 * (u**2 + v**2)

    def in_column(self, x, y):
        """The mediastinal column between the lungs (narrower anteriorly)."""
        _, bc = self.cavity_axes
        half = self.mediastinum_half_width - 10.0 * np.clip((y - self.cavity_y) / bc, 0.0, 1.0)
        return np.abs(x - self.midline_x) < half

    def in_thorax(self, x, y, z):
        """Cavity above the diaphragm."""
        return self.in_cavity(x, y) & (z > self.diaphragm_z(x, y))

    def in_lung(self, x, y, z):
        """The lungs as regions (vessels and small airways inside them included)."""
        return self.in_thorax(x, y, z) & (z < self.apex_z(x, y)) & ~self.in_column(x, y) & ~self.heart.contains(x, y, z)

    def lobe(self, x, y, z) -> np.ndarray:
        """Index into ``LOBES`` of each point (meaningful inside the lungs)."""
        oblique_z, slope, horizontal_z = self.fissures
        lower = z < oblique_z - slope * y  # the oblique fissure rises towards the back
        left = x > self.midline_x
        right_code = np.where(lower, 2, np.where(z < horizontal_z, 1, 0))
        return np.where(left, np.where(lower, 4, 3), right_code)

    def side(self, x) -> str:
        return "left" if x > self.midline_x else "right"

    def sample_lung_points(
        self,
        rng: np.random.Generator,
        n: int,
        lobes: tuple[int, ...] | None = None,
        where: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> np.ndarray:
        """(m, 3) up to ``n`` uniform random points inside the lungs (optionally in ``lobes`` and
        satisfying ``where(points) -> bool``); fewer only when the region is (nearly) empty."""
        ac, bc = self.cavity_axes
        lo = np.array([-ac, self.cavity_y - bc, min(self.dome_z) - self.dome_depth])
        hi = np.array([ac, self.cavity_y + bc, self.apex_top])
        found: list[np.ndarray] = []
        total = 0
        for _ in range(50):
            p = rng.uniform(lo, hi, size=(4096, 3)).astype(np.float32)
            ok = self.in_lung(p[:, 0], p[:, 1], p[:, 2])
            if lobes is not None:
                ok &= np.isin(self.lobe(p[:, 0], p[:, 1], p[:, 2]), lobes)
            if where is not None:
                ok &= where(p)
            found.append(p[ok])
            total += int(ok.sum())
            if total >= n:
                break
        return np.concatenate(found)[:n]


# --- sampling ------------------------------------------------------------------------------------------


def _jitter(rng: np.random.Generator, point, sd: float = 4.0) -> Point:
    return tuple(float(v) for v in np.asarray(point, float) + rng.normal(0.0, sd, 3))


def sample_anatomy(rng: np.random.Generator, heart_scale: float = 1.0) -> Anatomy:
    """A random, plausible chest. ``heart_scale`` > 1 enlarges the heart (cardiomegaly), HU unchanged."""
    u = rng.uniform
    female = bool(rng.random() < 0.5)
    size = float(np.clip(rng.normal(1.0, 0.05), 0.88, 1.1))
    a, b = 160.0 * size, 120.0 * size * u(0.93, 1.07)
    fat = u(12, 28) if female else u(8, 22)
    muscle, rib_mm, cavity_y = u(8, 13), u(9, 12), u(4, 10)
    wall = fat + muscle + rib_mm
    ac, bc = a - wall, b - wall - cavity_y
    midline = u(1, 7)
    vertebra_r = u(14, 18)
    spine_y = cavity_y - bc + u(18, 24)
    dome_r = u(-55, -40)
    dome = (dome_r, dome_r - u(8, 18))
    dome_depth = u(55, 70)
    apex = u(140, 158)

    # Airways: trachea anterior to the esophagus, which lies on the vertebral body.
    eso_r = u(8, 10)
    ex, ey = midline + u(-1, 3), spine_y + vertebra_r + 2 + eso_r
    tr_r = u(8.5, 11)
    tx, ty, cz = u(-2, 2), ey + eso_r + 3 + tr_r, u(40, 60)
    carina = (tx, ty, cz)
    r_main_end = _jitter(rng, (tx - 32, ty - 4, cz - 22))
    l_main_end = _jitter(rng, (tx + 45, ty - 8, cz - 32))
    intermedius_end = _jitter(rng, (tx - 38, ty - 2, cz - 45))
    lobar = {  # lobe index -> lobar bronchus
        0: Segment(r_main_end, _jitter(rng, (tx - 62, ty - 2, cz - 2)), 4.5, 4.0, 1.5),
        1: Segment(intermedius_end, _jitter(rng, (tx - 50, ty + 40, cz - 38)), 3.5, 3.0, 1.3),
        2: Segment(intermedius_end, _jitter(rng, (tx - 60, ty - 22, cz - 85)), 4.5, 4.0, 1.5),
        3: Segment(l_main_end, _jitter(rng, (tx + 65, ty + 10, cz - 8)), 4.5, 4.0, 1.5),
        4: Segment(l_main_end, _jitter(rng, (tx + 65, ty - 22, cz - 85)), 4.5, 4.0, 1.5),
    }
    airways = (
        Segment((tx, ty, 260.0), carina, tr_r, tr_r, 2.2),
        Segment(carina, r_main_end, 7.5, 6.5, 2.0),
        Segment(r_main_end, intermedius_end, 6.0, 5.5, 1.8),
        Segment(carina, l_main_end, 6.5, 5.5, 2.0),
        *lobar.values(),
    )

    # Heart: sits on the diaphragm, turned towards the left-anterior; cardiomegaly mostly widens it.
    radii = np.array([u(50, 58), u(37, 43), u(44, 52)])
    stretch = np.array([heart_scale, 1 + (heart_scale - 1) / 2, 1 + (heart_scale - 1) / 2])
    radii = radii * stretch
    heart_base = min(dome) - 8.0
    heart = Ellipsoid(
        (midline + u(8, 16), ty + u(18, 26), heart_base + 0.75 * radii[2]), tuple(map(float, radii)), u(0.4, 0.65)
    )
    heart_top = heart.center[2] + heart.radii[2]

    # Esophagus down to the hiatus and the stomach (under the left dome).
    stomach = Ellipsoid(
        (midline + 0.45 * ac, cavity_y + 0.25 * bc, dome[1] - u(35, 45)),
        tuple(float(r) for r in np.array([38, 32, 38]) * u(0.8, 1.2, 3)),
        u(-0.3, 0.3),
    )
    hiatus_xy = (ex + u(10, 18), ey + u(4, 10))
    hiatus = (*hiatus_xy, float(_diaphragm_z(*hiatus_xy, (ac, bc), cavity_y, midline, dome, dome_depth)))
    stomach_top = (stomach.center[0] - 10, stomach.center[1], stomach.center[2] + 0.6 * stomach.radii[2])
    esophagus_points = [(ex, ey, 260.0), (ex, ey, cz - 10), (ex + 5, ey + 2, hiatus[2] + 45), hiatus, stomach_top]
    esophagus = tuple(Segment(p, q, eso_r, eso_r) for p, q in zip(esophagus_points, esophagus_points[1:]))

    # Aorta: ascending (right-anterior), arch over the left main bronchus, descending left of the spine.
    ao_r = u(13, 16)
    desc_r = ao_r - u(1.5, 3)
    desc = (vertebra_r + desc_r + 3, spine_y + u(4, 8))
    arch_z = cz + u(35, 45)
    aorta_points = [
        (tx - 8, ty + 24, heart.center[2] + 10),
        (tx - 6, ty + 22, arch_z - 10),
        (tx + 2, ty + 10, arch_z),
        (tx + 16, ty - 6, arch_z - 4),
        (desc[0], desc[1], arch_z - 20),
        (desc[0] - 1, desc[1], dome[1] - 10),
        (desc[0] - 10, desc[1] + 2, -260.0),
    ]
    aorta = tuple(
        Segment(p, q, ao_r if i < 3 else desc_r, ao_r if i < 2 else desc_r)
        for i, (p, q) in enumerate(zip(aorta_points, aorta_points[1:]))
    )
    trunk_top = (midline + 14, ty + 18, cz - 12)
    vessels = (
        Segment((midline + 10, heart.center[1] + 5, heart_top - 15), trunk_top, 13.0, 12.0),
        Segment(trunk_top, (midline + 42, ty + 2, cz - 16), 10.0, 9.0),
        Segment(trunk_top, (tx - 36, ty + 4, cz - 12), 10.0, 9.0),
        Segment((tx - 26, ty + 18, cz + 70), (tx - 24, ty + 20, heart_top - 5), u(8, 10), u(8, 10)),
    )

    z_thyroid = u(150, 165)
    lobe_radii = np.array([8.0, 11.0, 20.0])
    thyroid = (
        Ellipsoid((tx - 17, ty + 5, z_thyroid), tuple(lobe_radii * u(0.85, 1.15, 3))),
        Ellipsoid((tx + 17, ty + 5, z_thyroid), tuple(lobe_radii * u(0.85, 1.15, 3))),
        Ellipsoid((tx, ty + 13, z_thyroid - 10), (10.0, 4.0, 6.0)),
    )

    z_breast = u(-45, -10)
    breasts = tuple(_breast(rng, female, side * u(70, 85), a, b, z_breast) for side in (-1, 1))

    stations = {
        "right paratracheal": (tx - 16, ty + 4, cz + 22),
        "left paratracheal": (tx + 16, ty + 2, cz + 8),
        "prevascular": (tx, ty + 48, cz + 25),
        "subcarinal": (tx, ty - 8, cz - 22),
        "paraesophageal": (ex - 14, ey, cz - 60),
    }
    normal_nodes = tuple(
        Ellipsoid(_jitter(rng, stations[name], 2.0), (r, r * 1.2, r * 1.5), u(0, np.pi))
        for name, r in zip(rng.permutation(STATIONS)[: rng.integers(0, 4)], u(2.5, 4.0, 3))
    )

    anatomy = Anatomy(
        female=female,
        body_axes=(a, b),
        fat_mm=fat,
        muscle_mm=muscle,
        rib_mm=rib_mm,
        cavity_y=cavity_y,
        midline_x=midline,
        mediastinum_half_width=u(24, 29),
        dome_z=dome,
        dome_depth=dome_depth,
        apex_top=apex,
        spine_y=spine_y,
        vertebra_radius=vertebra_r,
        discs=(u(26, 30), u(5, 7), u(0, 30)),
        ribs=(u(24, 28), u(8, 11), u(0.35, 0.6), u(0, 28)),
        fissures=(cz - 25 + u(-8, 8), u(0.7, 1.1), cz - 15 + u(-8, 8)),
        lung_hu=(u(-885, -855), u(40, 70)),
        tissue_hu={"heart": u(35, 45), "cancellous": u(280, 380), "cortex": u(800, 1000)},
        heart=heart,
        airways=airways,
        bundles=(),
        veins=(),
        esophagus=esophagus,
        aorta=aorta,
        vessels=vessels,
        thyroid=thyroid,
        breasts=breasts,
        sternum=(u(12, 16), dome[0] - 10, cz + u(55, 70)),
        liver_depth=u(130, 160),
        stomach=stomach,
        spleen=Ellipsoid(
            (midline + 0.72 * ac, cavity_y - 0.55 * bc, dome[1] - u(40, 50)), (u(18, 23), u(34, 42), u(40, 50)), 0.5
        ),
        stations=stations,
        normal_nodes=normal_nodes,
    )
    return _with_lung_tree(anatomy, lobar, rng)


def _diaphragm_z(x, y, cavity_axes, cavity_y, midline, dome, depth):
    ac, bc = cavity_axes
    level = dome[0] + (dome[1] - dome[0]) / (1.0 + np.exp(-(x - midline) / 15.0))
    u = np.maximum(np.abs(x - midline) - 0.45 * ac, 0.0) / (0.55 * ac)
    v = (y - cavity_y - 15.0) / bc
    return level - depth * np.minimum(u**2 + v**2, 1.0)


def _breast(rng: np.random.Generator, female: bool, x: float, a: float, b: float, z: float) -> Ellipsoid:
    """A breast on the anterior chest wall at ``x``: sizable for women, a thin disc for men."""
    surface_y = b * np.sqrt(max(1.0 - (x / a) ** 2, 0.0))
    if female:
        return Ellipsoid((x, surface_y - 10, z), (rng.uniform(50, 65), rng.uniform(35, 55), rng.uniform(45, 60)))
    return Ellipsoid((x, surface_y - 4, z), (40.0, rng.uniform(8, 14), 35.0))


def _with_lung_tree(anatomy: Anatomy, lobar: dict[int, Segment], rng: np.random.Generator) -> Anatomy:
    """Add segmental bronchi (with companion arteries) from each lobar bronchus, and pulmonary veins."""
    bundles = []
    for lobe, bronchus in lobar.items():
        start = np.asarray(bronchus.p1)

        def far(points: np.ndarray, start=start) -> np.ndarray:
            return np.linalg.norm(points - start, axis=1) > 35.0

        for end in anatomy.sample_lung_points(rng, int(rng.integers(2, 4)), (lobe,), far):
            axis = end - start
            side = np.cross(axis, rng.normal(size=3))
            offset = 5.0 * side / max(np.linalg.norm(side), 1e-6)
            airway = Segment(tuple(start), tuple(end), 2.5, 1.0, 0.8)
            artery = Segment(tuple(start + offset), tuple(end + offset), 3.0, 1.2)
            bundles.append((airway, artery))
    veins = []
    heart = anatomy.heart
    for lobe_group, sign in (((0, 1, 2), -1.0), ((3, 4), 1.0)):
        start = (heart.center[0] + sign * 25.0, heart.center[1] - 20.0, heart.center[2] + 15.0)
        for end in anatomy.sample_lung_points(rng, 3, lobe_group):
            veins.append(Segment(start, tuple(end), 3.5, 1.2))
    return replace(anatomy, bundles=tuple(bundles), veins=tuple(veins))
