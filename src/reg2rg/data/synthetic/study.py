"""``make_study``: one synthetic chest CT with its masks, region reports, labels and findings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from reg2rg.constants import CT_RATE_LABELS
from reg2rg.data.synthetic.anatomy import sample_anatomy
from reg2rg.data.synthetic.config import SyntheticConfig, as_config
from reg2rg.data.synthetic.findings import FINDING_NAMES, Finding, paint_findings, sample_heart_scale
from reg2rg.data.synthetic.geometry import Grid
from reg2rg.data.synthetic.phantom import HU, field_of_view, finish, render
from reg2rg.data.synthetic.reports import region_reports, whole_report

SPLITS = ("train", "valid")
HU_RANGE = (-1024, 3071)  # what a 12-bit CT stores
_SLAB = 16  # slices per block when adding noise (bounds the float32 temporaries)

# Independent random streams of a study (so that e.g. forcing one finding never moves another).
_ANATOMY, _PRESENCE, _TEXT, _NOISE, PERTURBATION, _FINDINGS = range(6)


@dataclass
class SyntheticStudy:
    """One study. ``volume``: int16 (X, Y, Z) HU; ``masks``: region -> bool (X, Y, Z) (the truth);
    ``affine``: (4, 4) voxel -> RAS mm; ``labels``: the 18 CT-RATE labels -> 0/1 (true);
    ``female``: whether the phantom has (sizable) breasts."""

    volume: np.ndarray
    masks: dict[str, np.ndarray]
    affine: np.ndarray
    region_reports: dict[str, str]
    report: str
    labels: dict[str, int]
    findings: list[Finding]
    female: bool


def study_rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    """The random stream ``stream`` of study ``index`` of ``split``: depends on nothing else."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index, stream)))


def make_study(
    cfg: SyntheticConfig | Mapping, seed: int | np.random.Generator | None = None, index: int = 0, split: str = "train"
) -> SyntheticStudy:
    """Generate study ``index`` of ``split``.

    Args:
        cfg: a ``SyntheticConfig`` or a mapping of its fields (grid, prevalences, noise).
        seed: the dataset seed (default ``cfg.seed``), or a Generator to draw one from.
        index, split: which study; with the seed they fix everything about it.
    """
    cfg = as_config(cfg)
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2**63))
    seed = cfg.seed if seed is None else seed
    if not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")

    presence = study_rng(seed, split, index, _PRESENCE)
    present = {name: bool(presence.random() < cfg.prevalence(name)) for name in FINDING_NAMES}
    rngs = {name: study_rng(seed, split, index, _FINDINGS + i) for i, name in enumerate(FINDING_NAMES)}
    heart_scale = sample_heart_scale(rngs["Cardiomegaly"]) if present["Cardiomegaly"] else 1.0
    anatomy = sample_anatomy(study_rng(seed, split, index, _ANATOMY), heart_scale)

    grid = cfg.grid
    phantom = render(grid, anatomy)
    findings = paint_findings(phantom, present, rngs, cfg.nodule_diameter_mm)
    finish(phantom)
    volume = acquire(phantom.hu, grid, cfg.noise_hu, study_rng(seed, split, index, _NOISE))

    regions = [region for region, mask in phantom.masks.items() if mask.any()]
    reports = region_reports(
        findings, anatomy.female, regions, study_rng(seed, split, index, _TEXT), cfg.varied_reports
    )
    placed = {f.label for f in findings}
    return SyntheticStudy(
        volume=volume,
        masks=phantom.masks,
        affine=grid.affine,
        region_reports=reports,
        report=whole_report(reports),
        labels={label: int(label in placed) for label in CT_RATE_LABELS},
        findings=findings,
        female=anatomy.female,
    )


def acquire(hu: np.ndarray, grid: Grid, noise_hu: float, rng: np.random.Generator) -> np.ndarray:
    """int16 (X, Y, Z) scan of a noise-free float32 HU volume: Gaussian noise, -1024 outside the
    circular field of view, clipped to the 12-bit range. Works slab by slab along z."""
    outside = ~field_of_view(grid)[:, :, 0]  # (X, Y)
    volume = np.empty(hu.shape, np.int16)
    for start in range(0, hu.shape[2], _SLAB):
        block = hu[:, :, start : start + _SLAB] + noise_hu * rng.standard_normal(
            (*hu.shape[:2], min(_SLAB, hu.shape[2] - start)), dtype=np.float32
        )
        block[outside] = HU["outside"]
        volume[:, :, start : start + _SLAB] = np.rint(np.clip(block, *HU_RANGE, out=block), out=block)
    return volume
