"""Render an ``Anatomy`` on a ``Grid``: the noise-free HU volume and the 10 region masks.

Full-volume work is a few broadcast comparisons of ``(X, Y, 1)`` maps with ``(1, 1, Z)``
heights; every organ smaller than the chest is painted inside its own bounding box.
Masks may overlap like SAT's (the mediastinum holds the trachea and esophagus; lobar bronchi
lie in both the lung and the airway mask); ``finish`` derives the pleura from the final lungs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reg2rg.constants import REGIONS
from reg2rg.data.synthetic.anatomy import Anatomy
from reg2rg.data.synthetic.geometry import Box, Grid, Segment, dilate

# Noise-free attenuation of each tissue (HU); per-study values (heart, bone) live in Anatomy.tissue_hu.
HU: dict[str, float] = {
    "outside": -1024.0,  # outside the circular field of view
    "air": -1000.0,
    "fat": -100.0,
    "muscle": 40.0,
    "neck": 30.0,  # soft tissue of the thoracic inlet above the lungs
    "mediastinal fat": -80.0,
    "abdominal fat": -90.0,
    "vessel": 40.0,
    "airway wall": 40.0,
    "esophagus": 35.0,
    "thyroid": 100.0,
    "node": 35.0,
    "liver": 60.0,
    "spleen": 48.0,
    "stomach wall": 40.0,
    "gastric fluid": 15.0,
    "gland": 30.0,  # fibroglandular breast tissue
    "rib": 550.0,
    "disc": 80.0,
    "csf": 15.0,
    "fluid": 10.0,  # effusions
}


@dataclass
class Phantom:
    """A study being built: ``hu`` (float32 (X, Y, Z), noise-free) and ``masks`` (region -> bool (X, Y, Z)).

    ``pleural_fluid`` collects ``(box, mask)`` pieces of effusion that ``finish`` adds to the pleura.
    """

    grid: Grid
    anatomy: Anatomy
    hu: np.ndarray
    masks: dict[str, np.ndarray]
    pleural_fluid: list[tuple[Box, np.ndarray]] = field(default_factory=list)

    def paint(
        self, box: Box, mask: np.ndarray, value: float, add_to: tuple[str, ...] = (), remove_from: tuple[str, ...] = ()
    ) -> None:
        """Set ``hu`` to ``value`` on ``mask`` (in ``box``) and move those voxels between region masks."""
        self.hu[box.slices][mask] = value
        for region in add_to:
            self.masks[region][box.slices] |= mask
        for region in remove_from:
            self.masks[region][box.slices] &= ~mask


def render(grid: Grid, anatomy: Anatomy) -> Phantom:
    """The healthy phantom; findings are painted on it afterwards, then ``finish`` is called."""
    a = anatomy
    whole = grid.whole()
    x, y, z = whole.x, whole.y, whole.z  # (X, 1, 1), (1, Y, 1), (1, 1, Z)
    hu = np.empty(grid.shape, np.float32)
    hu[...] = np.where(
        ~a.in_body(x, y), HU["air"], np.where(a.in_fat_inner(x, y), HU["muscle"], HU["fat"])
    )  # (X, Y, 1) chest wall layers, extruded along z

    cavity = a.in_cavity(x, y)  # (X, Y, 1)
    above = z > a.diaphragm_z(x, y)  # (X, Y, Z)
    thorax = cavity & above
    abdomen = cavity & ~above
    del above
    hu[abdomen] = HU["abdominal fat"]
    hu[thorax] = HU["neck"]
    apex = z < a.apex_z(x, y)  # (X, Y, Z)
    column = a.in_column(x, y)  # (X, Y, 1)
    mediastinum = thorax & column & (z < a.apex_top)
    hu[mediastinum] = HU["mediastinal fat"]
    lung = thorax & apex & ~column
    del apex
    _, bc = a.cavity_axes
    back = np.clip((a.cavity_y + bc - y) / (2 * bc), 0.0, 1.0)  # (1, Y, 1): 0 anterior .. 1 posterior
    np.copyto(hu, a.lung_hu[0] + a.lung_hu[1] * back, where=lung)  # dependent lung is denser

    masks = {region: np.zeros(grid.shape, bool) for region in REGIONS}
    masks.update(lung=lung, mediastinum=mediastinum)
    phantom = Phantom(grid, anatomy, hu, masks)
    _abdomen(phantom, abdomen)
    del abdomen
    _heart(phantom, thorax)
    _vessels(phantom, thorax)
    del thorax
    _tubes(phantom)
    _lung_tree(phantom)
    _small_organs(phantom)
    _bones(phantom)
    _breasts(phantom)
    return phantom


def finish(phantom: Phantom) -> None:
    """Derive the pleura (the lungs grown by one voxel in-plane, plus any effusion) and clip masks
    to the field of view."""
    pleura = dilate(phantom.masks["lung"], 1, axes=(0, 1))
    for box, fluid in phantom.pleural_fluid:
        pleura[box.slices] |= fluid
    phantom.masks["pleura"] = pleura
    inside = field_of_view(phantom.grid)  # (X, Y, 1)
    for mask in phantom.masks.values():
        mask &= inside


def field_of_view(grid: Grid) -> np.ndarray:
    """(X, Y, 1) bool: inside the scanner's circular reconstruction field (the inscribed circle)."""
    whole = grid.whole()
    radius = min(grid.shape[0] * grid.spacing[0], grid.shape[1] * grid.spacing[1]) / 2
    return whole.x**2 + whole.y**2 <= radius**2


# --- organs --------------------------------------------------------------------------------------------


def _abdomen(p: Phantom, abdomen: np.ndarray) -> None:
    """Liver (right, reaching left anteriorly), stomach with an air-fluid level, spleen."""
    a = p.anatomy
    whole = p.grid.whole()
    x, y, z = whole.x, whole.y, whole.z
    liver = abdomen & (x < a.midline_x + 25 + 0.5 * (y - a.cavity_y)) & (z > a.diaphragm_z(x, y) - a.liver_depth)
    p.hu[liver] = HU["liver"]
    p.masks["abdomen"] |= liver
    for organ, value in ((a.spleen, HU["spleen"]), (a.stomach, HU["stomach wall"])):
        box, mask = organ.voxels(p.grid, at_least_one=False)
        mask &= abdomen[box.slices] & ~liver[box.slices]
        p.paint(box, mask, value, add_to=("abdomen",))
    stomach = a.stomach
    lumen = stomach.grown(-5.0)
    box, mask = lumen.voxels(p.grid, at_least_one=False)
    mask &= p.masks["abdomen"][box.slices] & ~liver[box.slices]
    air = box.y > stomach.center[1] + 0.4 * stomach.radii[1]  # the anterior (non-dependent) part
    p.paint(box, mask & air, HU["air"])
    p.paint(box, mask & ~air, HU["gastric fluid"])


def _heart(p: Phantom, thorax: np.ndarray) -> None:
    box, mask = p.anatomy.heart.voxels(p.grid, at_least_one=False)
    mask &= thorax[box.slices]
    p.paint(box, mask, p.anatomy.tissue_hu["heart"], add_to=("heart",), remove_from=("lung", "mediastinum"))


def _vessels(p: Phantom, thorax: np.ndarray) -> None:
    """Aorta, pulmonary arteries and superior vena cava: mediastinum, never lung."""
    for segment in (*p.anatomy.aorta, *p.anatomy.vessels):
        box, mask = segment.voxels(p.grid)
        p.paint(box, mask, HU["vessel"], remove_from=("lung", "abdomen"))
        p.masks["mediastinum"][box.slices] |= mask & thorax[box.slices] & ~p.masks["heart"][box.slices]


def _tubes(p: Phantom) -> None:
    """Esophagus, then the airways (all walls before any lumen, so branches stay open at junctions)."""
    for segment in p.anatomy.esophagus:
        box, mask = segment.voxels(p.grid)
        p.paint(box, mask, HU["esophagus"], add_to=("esophagus",), remove_from=("lung", "heart", "abdomen"))
    paint_airways(p, extra_wall=0.0)


def paint_airways(p: Phantom, extra_wall: float) -> None:
    """Airway walls (the bronchi's thickened by ``extra_wall`` mm, the trachea's never) and air lumens;
    all belong to 'trachea and bronchie'."""
    airways = p.anatomy.airways
    for i, segment in enumerate(airways):
        box, mask = segment.voxels(p.grid, extra=segment.wall + (extra_wall if i else 0.0))
        p.paint(box, mask, HU["airway wall"], add_to=("trachea and bronchie",), remove_from=("heart",))
    for segment in airways:
        box, mask = segment.voxels(p.grid)
        p.paint(box, mask, HU["air"])


def paint_lung_bronchi(
    p: Phantom, extra_wall: float, lumen_scale: float = 1.0, bronchi: tuple[Segment, ...] | None = None
) -> None:
    """Segmental bronchi inside the lungs (walls then lumens, both clipped to the lung mask)."""
    bronchi = tuple(b for b, _ in p.anatomy.bundles) if bronchi is None else bronchi
    min_r = 0.5 * min(p.grid.spacing)
    for segment in bronchi:
        box, mask = segment.voxels(p.grid, extra=segment.wall + extra_wall, min_radius=min_r)
        p.paint(box, mask & p.masks["lung"][box.slices], HU["airway wall"])
    for segment in bronchi:
        wide = Segment(segment.p0, segment.p1, segment.r0 * lumen_scale, segment.r1 * lumen_scale)
        box, mask = wide.voxels(p.grid)
        p.paint(box, mask & p.masks["lung"][box.slices], HU["air"])


def _lung_tree(p: Phantom) -> None:
    """Pulmonary arteries and veins, then the segmental bronchi beside the arteries."""
    min_r = 0.5 * min(p.grid.spacing)
    for segment in (*(artery for _, artery in p.anatomy.bundles), *p.anatomy.veins):
        box, mask = segment.voxels(p.grid, min_radius=min_r)
        p.paint(box, mask & p.masks["lung"][box.slices], HU["vessel"])
    paint_lung_bronchi(p, extra_wall=0.0)


def _small_organs(p: Phantom) -> None:
    """Thyroid (two lobes and the isthmus) and normal-size mediastinal lymph nodes (in fat only)."""
    for lobe in p.anatomy.thyroid:
        box, mask = lobe.voxels(p.grid)
        p.paint(box, mask, HU["thyroid"], add_to=("thyroid",))
    for node in p.anatomy.normal_nodes:
        box, mask = node.voxels(p.grid)
        p.paint(box, mask & (p.hu[box.slices] == HU["mediastinal fat"]), HU["node"])


def _bones(p: Phantom) -> None:
    """Spine (vertebral bodies between discs, arches, processes), ribs and sternum."""
    a, grid = p.anatomy, p.grid
    cortex, cancellous = a.tissue_hu["cortex"], a.tissue_hu["cancellous"]
    r, sy = a.vertebra_radius, a.spine_y
    canal_y = sy - 0.85 * r - 9.0
    box = grid.box((-r - 40, canal_y - 50, -1e4), (r + 40, sy + r, 1e4))
    x, y, z = box.x, box.y, box.z
    period, thickness, phase = a.discs
    disc = np.mod(z - phase, period) < thickness  # (1, 1, k)
    body = (x / r) ** 2 + ((y - sy) / (0.85 * r)) ** 2 <= 1.0  # (n, m, 1)
    inner = (x / (r - 2.5)) ** 2 + ((y - sy) / (0.85 * r - 2.5)) ** 2 <= 1.0
    d_canal = np.sqrt(x**2 + (y - canal_y) ** 2)
    arch = (d_canal > 7.0) & (d_canal < 13.0) & (y < canal_y + 2.0)
    spinous = (np.abs(x) < 4.0) & (y < canal_y - 10.0) & (y > canal_y - 45.0)
    transverse = (np.abs(x) > 6.0) & (np.abs(x) < r + 16.0) & (np.abs(y - canal_y - 2.0) < 5.0)
    posterior = np.broadcast_to(arch | spinous | transverse, box.shape)
    p.paint(box, np.broadcast_to(body & disc, box.shape), HU["disc"])
    p.paint(box, np.broadcast_to(body & ~inner & ~disc, box.shape), cortex, add_to=("bone",))
    p.paint(box, np.broadcast_to(inner & ~disc, box.shape), cancellous, add_to=("bone",))
    p.paint(box, np.broadcast_to(d_canal <= 7.0, box.shape), HU["csf"])
    p.paint(box, posterior, 0.5 * (cortex + cancellous), add_to=("bone",))

    whole = grid.whole()
    x, y, z = whole.x, whole.y, whole.z
    period, height, slope, phase = a.ribs
    half_sternum = a.sternum[0]
    band = a.in_cavity_ellipse(x, y, grow=a.rib_mm) & ~a.in_cavity_ellipse(x, y)
    band &= ~((np.abs(x) < half_sternum + 12) & (y > a.cavity_y))  # costal cartilage gap beside the sternum
    band &= np.abs(x) > r + 12  # ribs join the spine at the transverse processes
    ribs = band & (np.mod(z + slope * y - phase, period) < height) & (z < a.apex_top + 10)  # ribs fall anteriorly
    p.hu[ribs] = HU["rib"]
    p.masks["bone"] |= ribs

    _, bc = a.cavity_axes
    front = a.cavity_y + bc
    bottom, top = a.sternum[1], a.sternum[2]
    box = grid.box((-half_sternum, front - 1, bottom), (half_sternum, front + 12, top))
    inside = (np.abs(box.x) < half_sternum - 2) & (box.y > front + 1) & (box.y < front + 10) & (box.z > bottom + 2)
    p.paint(box, np.ones(box.shape, bool), cortex, add_to=("bone",))
    p.paint(box, np.broadcast_to(inside & (box.z < top - 2), box.shape), cancellous)


def _breasts(p: Phantom) -> None:
    """Breasts anterior to the pectoral muscle: fat around a fibroglandular core (small for men)."""
    a = p.anatomy
    inside_fov = field_of_view(p.grid)
    for breast in a.breasts:
        box, mask = breast.voxels(p.grid, at_least_one=False)
        mask &= ~a.in_fat_inner(box.x, box.y) & (box.y > 0) & inside_fov[box.slices[:2]]
        p.paint(box, mask, HU["fat"], add_to=("breast",))
        core = breast.scaled((0.6, 0.6, 0.6) if a.female else (0.35, 0.5, 0.35))
        box, gland = core.voxels(p.grid, at_least_one=False)
        p.paint(box, gland & p.masks["breast"][box.slices], HU["gland"])
