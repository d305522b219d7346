"""``SyntheticConfig``: the schema of a synthetic dataset (Hydra's ``make_synthetic.yaml`` and ``data/synthetic.yaml``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from numbers import Integral, Real

from reg2rg.data.synthetic.findings import FINDING_NAMES
from reg2rg.data.synthetic.geometry import Grid

FOV_MM = 360.0  # default field of view along each axis (a ~320 mm wide chest fits)
DEFAULT_PREVALENCE = 0.3

# Segmentation errors simulated on the written masks: probability per region and study, and size in voxels.
PERTURBATION_DEFAULTS: dict[str, float] = {
    "dilate_p": 0.0,
    "dilate_k": 1,
    "erode_p": 0.0,
    "erode_k": 1,
    "shift_p": 0.0,
    "shift_k": 2,
    "drop_p": 0.0,
}


@dataclass
class SyntheticConfig:
    """A synthetic RadGenome-style dataset.

    Args:
        n_train, n_valid: studies per split.
        shape: (X, Y, Z) voxels. 480 x 480 x 240 is RadGenome-sized; the default is for the CPU demo.
        spacing_mm: (x, y, z) voxel size; None spreads a 360 mm field of view over ``shape``
            (0.75 x 0.75 x 1.5 mm at 480 x 480 x 240).
        seed: dataset seed; study ``i`` of a split depends only on (seed, split, i).
        finding_prevalence: probability of each finding in a study; a float for all of them, or a
            dict from finding names (``FINDING_NAMES``) to probabilities where the key "default"
            sets the rest (else 0.3). ``{"default": 0, "Cardiomegaly": 1}`` forces one finding.
        mask_perturbation: segmentation errors on the written masks (the truth, reports and
            labels are unchanged): ``dilate_p``/``erode_p``/``shift_p``/``drop_p`` are per-region
            probabilities, ``dilate_k``/``erode_k``/``shift_k`` sizes in voxels. All off by default.
        noise_hu: standard deviation of the Gaussian image noise.
        nodule_diameter_mm: (smallest, largest) lung nodule diameter; sizes lean to the small end
            (most of the default 4-20 mm nodules are a voxel or two at the demo's resolution).
        varied_reports: paraphrases and random negations of absent findings (realistic text); false
            writes each statement in one wording without negations, so that report text varies
            only with the image.
    """

    n_train: int = 48
    n_valid: int = 16
    shape: tuple[int, int, int] = (96, 96, 48)
    spacing_mm: tuple[float, float, float] | None = None
    seed: int = 0
    finding_prevalence: float | dict[str, float] = DEFAULT_PREVALENCE
    mask_perturbation: dict[str, float] = field(default_factory=dict)
    noise_hu: float = 15.0
    nodule_diameter_mm: tuple[float, float] = (4.0, 20.0)
    varied_reports: bool = True

    def __post_init__(self):
        for name in ("n_train", "n_valid", "seed"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
            setattr(self, name, int(value))
        if len(tuple(self.shape)) != 3 or not all(isinstance(n, Integral) and n >= 8 for n in self.shape):
            raise ValueError(f"shape must be three integers >= 8 (X, Y, Z), got {self.shape!r}")
        self.shape = tuple(int(n) for n in self.shape)
        if self.spacing_mm is not None:
            self.spacing_mm = tuple(float(s) for s in self.spacing_mm)
            if len(self.spacing_mm) != 3 or not all(s > 0 for s in self.spacing_mm):
                raise ValueError(f"spacing_mm must be three positive numbers (mm) or null, got {self.spacing_mm!r}")
        self._check_prevalence()
        unknown = set(self.mask_perturbation) - set(PERTURBATION_DEFAULTS)
        if unknown:
            raise ValueError(
                f"unknown mask_perturbation key(s) {sorted(unknown)}; expected {list(PERTURBATION_DEFAULTS)}"
            )
        self.mask_perturbation = dict(self.mask_perturbation)
        for key, value in self.perturbation.items():
            bad = not 0 <= value <= 1 if key.endswith("_p") else not (float(value).is_integer() and value >= 0)
            if bad:
                what = "a probability" if key.endswith("_p") else "a whole number of voxels"
                raise ValueError(f"mask_perturbation.{key} must be {what}, got {value!r}")
        self.nodule_diameter_mm = tuple(float(d) for d in self.nodule_diameter_mm)
        if len(self.nodule_diameter_mm) != 2 or not 0 < self.nodule_diameter_mm[0] <= self.nodule_diameter_mm[1]:
            raise ValueError(
                f"nodule_diameter_mm must be (smallest, largest) with 0 < smallest <= largest, "
                f"got {self.nodule_diameter_mm!r}"
            )
        if not self.noise_hu >= 0:
            raise ValueError(f"noise_hu must be >= 0, got {self.noise_hu!r}")

    def _check_prevalence(self) -> None:
        values = self.finding_prevalence
        if isinstance(values, Mapping):
            self.finding_prevalence = values = dict(values)
            unknown = set(values) - set(FINDING_NAMES) - {"default"}
            if unknown:
                raise ValueError(
                    f"unknown finding(s) in finding_prevalence: {sorted(unknown)}; "
                    f"expected names from {FINDING_NAMES} or 'default'"
                )
            checked = values.values()
        else:
            checked = [values]
        if not all(isinstance(v, Real) and 0 <= v <= 1 for v in checked):
            raise ValueError(
                f"finding_prevalence values must be probabilities in [0, 1], got {self.finding_prevalence!r}"
            )

    @property
    def grid(self) -> Grid:
        spacing = self.spacing_mm or tuple(FOV_MM / n for n in self.shape)
        return Grid(self.shape, spacing)

    @property
    def perturbation(self) -> dict[str, float]:
        return {**PERTURBATION_DEFAULTS, **self.mask_perturbation}

    def prevalence(self, name: str) -> float:
        values = self.finding_prevalence
        if isinstance(values, dict):
            return float(values.get(name, values.get("default", DEFAULT_PREVALENCE)))
        return float(values)

    def content_key(self) -> dict:
        """Everything a study's content depends on (not the study counts)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("n_train", "n_valid")}


def as_config(cfg: SyntheticConfig | Mapping) -> SyntheticConfig:
    """A ``SyntheticConfig`` from itself or from a mapping of its fields."""
    if isinstance(cfg, SyntheticConfig):
        return cfg
    if isinstance(cfg, Mapping):
        return SyntheticConfig(**cfg)
    raise ValueError(f"expected a SyntheticConfig or a mapping of its fields, got {type(cfg).__name__}")
