"""Where MedRegion-CT's studies come from: the testbed, or a dataset reader (RadGenome-ChestCT, a manifest).

Each study comes as a ``SourceStudy``: its volume, the six region masks, the region reports and the attributes.
From a reader (``data.reader``), a MedRegion region's mask is the union of the masks of the dataset regions mapped
to it, and its report the dataset region sentences mapped to it (``data.region_mapping``, e.g.
configs/mappings/medregion_radgenome.yaml). The attributes come from ``<data.attribute_masks>/<study_id>/`` (organ
and lesion masks, e.g. SAT's or TotalSegmentator's, named as ``reg2rg.medregion.study_masks.read_mask_folder``
reads them) when that is set; else the study has none. A study that cannot be read is skipped and counted by its
problem (``data.policy=strict``: the first one raises).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate

from reg2rg.data.errors import SkipLog, StudyError
from reg2rg.data.masks import load_region_masks
from reg2rg.data.records import StudyRecord
from reg2rg.data.volumes import Volume, read_volume
from reg2rg.medregion.regions import REGIONS, radgenome_to_medregion, regroup_reports
from reg2rg.medregion.study_masks import read_mask_folder, read_mask_on_grid
from reg2rg.medregion.testbed import study_id

REGION_FOLDER = "regions"  # a study folder's six region masks: regions/<region>.nii.gz


@dataclass
class SourceStudy:
    study_id: str
    volume: Volume
    region_masks: list[np.ndarray | None]  # bool (X, Y, Z) per region of REGIONS; None: no mask
    region_reports: dict[str, str]  # MedRegion region -> report
    attributes: dict  # reg2rg.medregion.attributes.extract_attributes's layout
    truth: dict | None = None  # the testbed's true values


def testbed_studies(data: Mapping[str, Any], split: str) -> Iterator[SourceStudy]:
    """The studies of a written testbed split (reg2rg.medregion.testbed's layout)."""
    testbed = data["testbed"]
    for index in range(int(testbed[f"n_{split}"])):
        yield read_study_folder(Path(testbed["folder"]) / split / study_id(split, index))


def read_study_folder(folder: Path) -> SourceStudy:
    """A study folder in the testbed's layout (``reg2rg.medregion.testbed``): ``volume.nii.gz``, ``regions/``
    (a region without its file has no mask), ``masks/`` (organs and lesions, for the attributes) and, optionally,
    ``study.json`` (the region reports and the truth)."""
    volume = read_volume(folder / "volume.nii.gz")
    paths = [folder / REGION_FOLDER / f"{region}.nii.gz" for region in REGIONS]
    record_path = folder / "study.json"
    record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
    masks = folder / "masks"
    return SourceStudy(
        study_id=folder.name,
        volume=volume,
        region_masks=[read_mask_on_grid(path, volume) if path.is_file() else None for path in paths],
        region_reports=record.get("region_reports", {}),
        attributes=read_mask_folder(folder / "volume.nii.gz", masks).attributes()
        if masks.is_dir()
        else {"organs": {}, "lesions": {}},
        truth=record.get("truth"),
    )


class ReaderSource:
    """The studies of a dataset reader's split, mapped to the six regions; ``skips`` counts those left out."""

    def __init__(self, data: Mapping[str, Any], split: str):
        self.data = data
        self.index = instantiate(data["reader"]).read(split)
        self.skips: SkipLog = self.index.skips
        self.mapping = radgenome_to_medregion(data["region_mapping"])

    def __iter__(self) -> Iterator[SourceStudy]:
        for record in self.index.records:
            try:
                yield self.study(record)
            except StudyError as error:
                self.skips.record(record.study_id, error)

    def study(self, record: StudyRecord) -> SourceStudy:
        volume = read_volume(record.volume, int(self.data.get("max_voxels", 2**31)))
        masks = load_region_masks(record.masks, volume, grid=self.data.get("grid", "reject")).masks
        merged: dict[str, np.ndarray] = {}
        for source, mask in masks.items():
            region = self.mapping.get(source)
            if region is not None:
                merged[region] = merged[region] | mask if region in merged else mask
        attribute_folder = self.data.get("attribute_masks")
        attributes = {"organs": {}, "lesions": {}}
        if attribute_folder:
            attributes = read_mask_folder(record.volume, Path(attribute_folder) / record.study_id).attributes()
        return SourceStudy(
            study_id=record.study_id,
            volume=volume,
            region_masks=[merged.get(region) if merged.get(region, np.zeros(1)).any() else None for region in REGIONS],
            region_reports=regroup_reports(record.region_reports, self.mapping),
            attributes=attributes,
        )
