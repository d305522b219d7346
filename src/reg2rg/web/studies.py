"""Studies the page opens: a cache study, or a NIfTI volume with an optional folder of region masks, only from
inside the configured data roots.

A cache folder (``<split>.jsonl`` index files) lists its studies by split. A NIfTI study folder holds one
volume (``*.nii`` / ``*.nii.gz``) and, optionally, ``masks/<region>.nii.gz``; with masks it is preprocessed
once into the server's work folder like a cache study, so that a model can generate its region reports.
A MedRegion-CT study folder (``volume.nii.gz``, ``regions/``, ``masks/``: ``reg2rg.medregion.testbed``'s layout),
or a folder of them, opens with its six region masks; a MedRegion-CT report model reads it as it was trained.
Every opened study is shown in RAS axis order (``reg2rg.visualize.ras``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reg2rg.visualize.ras import _RasStudy

if TYPE_CHECKING:
    from reg2rg.medregion.features import EncoderSettings

NIFTI_SUFFIXES = (".nii", ".nii.gz")
MASK_FOLDER = "masks"  # a NIfTI study folder's region masks: masks/<region>.nii.gz
NIFTI_SPLIT = "study"  # the split name a NIfTI study folder is listed under
REG2RG, MEDREGION = "reg2rg", "medregion"  # OpenedStudy.family: the model family a study's sample is made for
MEDREGION_VOLUME = "volume.nii.gz"  # a MedRegion-CT study folder's volume, beside regions/ and masks/


class PathRefused(ValueError):
    """A path outside every data root."""


class DataRoots:
    """The folders the page may read studies from; anything else is refused, symbolic links resolved first."""

    def __init__(self, roots: Sequence[str | Path]):
        self.roots = [Path(root).expanduser().resolve() for root in roots]

    def resolve(self, path: str | Path) -> Path:
        """``path`` (relative ones from the working folder) resolved; ``PathRefused`` outside the roots."""
        resolved = Path(path).expanduser().resolve()
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.roots):
            roots = ", ".join(str(root) for root in self.roots) or "none configured"
            raise PathRefused(f"{path} is outside the data roots ({roots}): add its folder to data_roots=[...]")
        if not resolved.exists():
            raise FileNotFoundError(f"{path} does not exist")
        return resolved


def is_cache(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.jsonl"))


def nifti_volume(folder: Path) -> Path:
    """The one volume of a NIfTI study folder, or ValueError naming the folder and what is wrong."""
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(p.name for p in found)})"
        raise ValueError(f"{folder}: a study folder holds one volume (.nii or .nii.gz), found {what}")
    return found[0]


def list_studies(folder: Path) -> list[dict[str, str]]:
    """[{"split", "study_id"}] of a cache folder (every split) or of a NIfTI study folder (one study)."""
    from reg2rg.data.build import read_index

    if is_cache(folder):
        return [
            {"split": index.stem, "study_id": entry["study_id"]}
            for index in sorted(folder.glob("*.jsonl"))
            for entry in read_index(folder, index.stem)
        ]
    if is_medregion_folder(folder):
        return [{"split": NIFTI_SPLIT, "study_id": folder.name}]
    medregion = medregion_studies(folder)
    if medregion:
        return [{"split": folder.name, "study_id": study.name} for study in medregion]
    if folder.is_dir():
        return [{"split": NIFTI_SPLIT, "study_id": nifti_volume(folder).name.split(".")[0]}]
    raise ValueError(
        f"{folder} is a file: give the cache folder (with <split>.jsonl) or the study folder that holds it"
    )


def is_medregion_folder(folder: Path) -> bool:
    from reg2rg.medregion.sources import REGION_FOLDER

    return (folder / MEDREGION_VOLUME).is_file() and (folder / REGION_FOLDER).is_dir()


def medregion_studies(folder: Path) -> list[Path]:
    """The MedRegion-CT study folders directly inside ``folder`` (e.g. a testbed split), by name."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and is_medregion_folder(p)) if folder.is_dir() else []


class PlainVolume:
    """A volume and, optionally, full-size region masks, read as ``_RasStudy`` reads a ``CachedStudy`` (the whole
    volume is its crop)."""

    def __init__(self, volume: np.ndarray, affine: np.ndarray, masks: dict[str, np.ndarray] | None = None):
        self.volume = volume  # (X, Y, Z) int16 HU
        self.masks = masks or {}  # region -> bool (X, Y, Z)
        self.crop_shape = volume.shape
        self.meta = {
            "affine": np.asarray(affine).tolist(),
            "source_shape": list(volume.shape),
            "box": [[0, n] for n in volume.shape],
            "regions": {region: {"mask_box": [[0, n] for n in volume.shape]} for region in self.masks},
        }

    def mask(self, region: str) -> np.ndarray:
        return self.masks[region]

    def close(self) -> None:
        pass


@dataclass
class OpenedStudy:
    """A study as the page shows it: RAS views of its volume and masks, and its model sample when it has masks."""

    study_id: str
    source: Path
    data: Any  # a CachedStudy or PlainVolume
    sample: dict | None  # the model input for generation (None: no region masks)
    reference: dict[str, str] = field(default_factory=dict)  # region -> reference report, where the data has one
    family: str = REG2RG  # the model family the sample is made for

    def __post_init__(self):
        self.ras = _RasStudy(self.data)

    @property
    def regions(self) -> list[str]:
        """The regions with a mask, in canonical order."""
        return list(self.data.meta["regions"])

    def regions_at(self, voxel: Sequence[int]) -> list[str]:
        """The regions whose mask holds the RAS voxel (x, y, z)."""
        found = []
        for region in self.regions:
            box, mask = self.ras.mask(region)
            if all(lo <= v < hi for v, (lo, hi) in zip(voxel, box)):
                if mask[tuple(v - lo for v, (lo, _) in zip(voxel, box))]:
                    found.append(region)
        return found

    def centre(self, region: str) -> list[int]:
        """The RAS voxel at the centre of a region's mask (its voxels' mean, rounded)."""
        box, mask = self.ras.mask(region)
        return [int(round(float(np.mean(ix)))) + lo for ix, (lo, _) in zip(np.nonzero(mask), box)]

    def source_geometry(self, mask_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A RAS-ordered crop mask (X, Y, Z) -> (the mask on the source volume's grid, its affine)."""
        import nibabel as nib

        meta = self.data.meta
        to_source = nib.orientations.ornt_transform(np.array([[0, 1], [1, 1], [2, 1]]), self.ras.ornt)
        crop = nib.orientations.apply_orientation(mask_ras, to_source)
        full = np.zeros(meta["source_shape"], dtype=np.uint8)
        full[tuple(slice(lo, hi) for lo, hi in meta["box"])] = crop
        return full, np.asarray(meta["affine"], dtype=float)

    def close(self) -> None:
        self.data.close()


def open_cached(cache_dir: Path, split: str, study_id: str, checkpoint: Path | None) -> OpenedStudy:
    """A cache study with its model sample, made as ``checkpoint``'s model was trained (``open_study``)."""
    from reg2rg.visualize import open_study

    study, sample = open_study(cache_dir, study_id, split, checkpoint=checkpoint)
    reference = dict(zip(sample["regions"], sample["region_reports"]))
    return OpenedStudy(study_id, cache_dir, study, sample, reference)


def open_nifti_folder(folder: Path, work_dir: Path, checkpoint: Path | None, max_voxels: int) -> OpenedStudy:
    """A NIfTI study folder: the volume alone, or with ``masks/`` preprocessed into ``work_dir`` (once per content).

    Bad files raise ``StudyError`` naming the file and the problem (not NIfTI, not 3D, masks on another grid...).
    """
    from reg2rg.data.cache import CachedStudy, build_study
    from reg2rg.data.dataset import load_sample
    from reg2rg.data.readers.common import scan_mask_folder
    from reg2rg.data.records import StudyRecord
    from reg2rg.data.volumes import read_volume

    volume_path = nifti_volume(folder)
    study_id = volume_path.name.split(".")[0]
    if not (folder / MASK_FOLDER).is_dir():
        volume = read_volume(volume_path, max_voxels)
        hu = np.clip(np.rint(volume.array), -32768, 32767).astype(np.int16)
        return OpenedStudy(study_id, folder, PlainVolume(hu, volume.affine), None)
    masks = scan_mask_folder(folder / MASK_FOLDER, Counter())
    record = StudyRecord(study_id, NIFTI_SPLIT, volume_path, masks, {region: "" for region in masks.regions})
    preprocessing, lfd = _trained_preprocessing(checkpoint)
    path = work_dir / "studies" / f"{_content_key(record, preprocessing)}.npz"
    if not path.is_file():
        build_study(record, path, preprocessing, max_voxels=max_voxels)
    study = CachedStudy(path, study_id)
    try:
        entry = {"study_id": study_id, "region_reports": {}, "report": ""}
        sample = load_sample(study, entry, preprocessing, study.regions, lfd)
    except BaseException:
        study.close()
        raise
    return OpenedStudy(study_id, folder, study, sample)


def open_medregion_folder(folder: Path, encoder: EncoderSettings | None) -> OpenedStudy:
    """A MedRegion-CT study folder with its region masks; with ``encoder`` (a MedRegion-CT report model's), its
    sample. Bad files raise ``StudyError`` naming the file and the problem."""
    from reg2rg.medregion.inference import study_sample
    from reg2rg.medregion.regions import REGIONS
    from reg2rg.medregion.sources import read_study_folder

    study = read_study_folder(folder)
    hu = np.clip(np.rint(study.volume.array), -32768, 32767).astype(np.int16)
    masks = {r: m for r, m in zip(REGIONS, study.region_masks) if m is not None and m.any()}
    sample = study_sample(study, encoder) if encoder is not None and masks else None
    reference = {r: text for r, text in study.region_reports.items() if r in masks}
    return OpenedStudy(
        study.study_id, folder, PlainVolume(hu, study.volume.affine, masks), sample, reference, MEDREGION
    )


def _trained_preprocessing(checkpoint: Path | None):
    """(PreprocessConfig, lfd) as ``checkpoint``'s model was trained; the paper's defaults without one."""
    from reg2rg.data.preprocessing import PreprocessConfig
    from reg2rg.models.checkpoint import trained_data_section

    trained = (trained_data_section(checkpoint) if checkpoint is not None else None) or {}
    return PreprocessConfig(**trained.get("preprocessing", {})), bool(trained.get("lfd", True))


def _content_key(record, preprocessing) -> str:
    """A name for a preprocessed NIfTI study: its files' paths, sizes and times, and the preprocessing."""
    from reg2rg.data.cache import source_signature

    text = repr((str(record.volume), source_signature(record), preprocessing))
    return hashlib.sha256(text.encode()).hexdigest()[:24]
