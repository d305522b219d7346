"""Training and evaluation samples from the preprocessing cache.

A sample (the contract the model consumes)::

    study_id        str
    image           float32 (1, X, Y, Z)     windowed global volume in [-1, 1]
    texture         float32 (R, 1, X, Y, Z)  LFD crops (lfd=False: masked uncropped volumes)
    geometry        float32 (R, 1, X, Y, Z)  uncropped region masks resized with the image, in [0, 1]
    regions         list[str] (R)            area names in prompt order (region i is regions[i])
    region_reports  list[str] (R)            '' for a region without a sentence (region set "masked")
    report          str                      the whole report
    labels          dict[str, int]           CT-RATE labels when the dataset has them

``compact=True`` (training): the volumes are the cache's integer bin sums instead (int16 HU, uint8 mask
counts), with the bins they were summed over (``reg2rg.data.compact``: 2.6x fewer bytes to the device,
and no float work in the worker); ``compact.expand_volumes`` makes the float32 volumes above from them,
to the bit.
It needs the precomputed sums (area interpolation, an integer window: ``cache.precomputed_params``);
other settings give float samples.

Region order: shuffled on every draw when ``shuffle_regions`` (Reg2RG's region-report
alignment), canonical otherwise. The shuffle is seeded by (seed, epoch, index), so a resumed
run draws the same orders as an uninterrupted one.

Region set: ``reported`` (regions with a usable mask and a report sentence: training, and the clean
evaluation) or ``masked`` (every region with a usable mask, an empty report where the study has no
sentence: the official evaluation set). A study needs a reported region either way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import Dataset

from reg2rg.constants import REGIONS
from reg2rg.data.build import read_index
from reg2rg.data.cache import CachedStudy, precomputed_params
from reg2rg.data.compact import bins_key, expand_volumes
from reg2rg.data.prepare import preprocessing_config
from reg2rg.data.preprocessing import PreprocessConfig

log = logging.getLogger(__name__)


REGION_SETS = ("reported", "masked")


def usable_regions(entry: dict, region_set: str = "reported") -> list[str]:
    """Canonical-order regions of a cache index entry that have a usable mask and (``reported``) a report."""
    if region_set not in REGION_SETS:
        raise ValueError(f"region_set must be one of {REGION_SETS}, got {region_set!r}")
    usable = set(entry["regions"])
    return [r for r in REGIONS if r in usable and (region_set == "masked" or entry["region_reports"].get(r))]


def load_sample(
    study: CachedStudy, entry: dict, cfg: PreprocessConfig, regions: list[str], lfd: bool = True, compact: bool = False
) -> dict:
    """Assemble one sample of ``study`` with ``regions`` in the given order (``compact``: bin sums, see above)."""
    volumes = _compact_volumes(study, cfg, regions, lfd) if compact else _float_volumes(study, cfg, regions, lfd)
    return {
        "study_id": entry["study_id"],
        **volumes,
        "regions": list(regions),
        "region_reports": [entry["region_reports"].get(r, "") for r in regions],
        "report": entry.get("report", ""),
        "labels": entry.get("labels", {}),
    }


def _float_volumes(study: CachedStudy, cfg: PreprocessConfig, regions: list[str], lfd: bool) -> dict:
    crop = study.texture if lfd else study.masked_volume
    image = torch.empty(1, *cfg.target_size)
    texture = torch.empty(len(regions), 1, *cfg.target_size)
    geometry = torch.empty(len(regions), 1, *cfg.target_size)
    study.global_image(cfg, out=image[0])
    for i, region in enumerate(regions):  # each product is written straight into its slot
        crop(region, cfg, out=texture[i, 0])
        study.geometry(region, cfg, out=geometry[i, 0])
    return {"image": image, "texture": texture, "geometry": geometry}


def _compact_volumes(study: CachedStudy, cfg: PreprocessConfig, regions: list[str], lfd: bool) -> dict:
    image, image_bins = study.bin_sums("image", cfg)
    volumes = {"image": image[0], bins_key("image"): image_bins}
    if lfd:
        volumes["texture"], volumes[bins_key("texture")] = study.bin_sums("texture", cfg, regions)
    else:  # the LFD-off ablation has no precomputed sums: its float32 masked volumes
        volumes["texture"] = torch.empty(len(regions), 1, *cfg.target_size)
        for i, region in enumerate(regions):
            study.masked_volume(region, cfg, out=volumes["texture"][i, 0])
    volumes["geometry"], volumes[bins_key("geometry")] = study.bin_sums("geometry", cfg, regions)
    return volumes


class CachedRegionDataset(Dataset):
    """Samples of one split of a preprocessing cache (``scripts/preprocess.py`` builds it).

    ``compact``: samples of integer bin sums (module docstring) where the settings have them; ``self.compact``
    says whether they do.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        split: str,
        preprocessing: PreprocessConfig | dict | None = None,
        lfd: bool = True,
        shuffle_regions: bool = True,
        seed: int = 0,
        max_bad_reads: int = 16,
        region_set: str = "reported",
        compact: bool = False,
    ):
        self.cache_dir = Path(cache_dir)
        self.split = split
        self.cfg = (
            preprocessing if isinstance(preprocessing, PreprocessConfig) else PreprocessConfig(**(preprocessing or {}))
        )
        self.lfd = lfd
        self.compact = compact and precomputed_params(self.cfg) is not None
        self.shuffle_regions = shuffle_regions
        self.seed = seed
        self.epoch = 0
        self.max_bad_reads = max_bad_reads
        if region_set not in REGION_SETS:
            raise ValueError(f"region_set must be one of {REGION_SETS}, got {region_set!r}")
        self.region_set = region_set
        self.bad_reads: dict[str, str] = {}
        self.entries = [e for e in read_index(self.cache_dir, split) if usable_regions(e)]
        if not self.entries:
            raise ValueError(f"{self.cache_dir / (split + '.jsonl')}: no study with a usable region report")

    def set_epoch(self, epoch: int) -> None:
        """Region orders depend on the epoch; call this at the start of every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.entries)

    def on_device(self, batch: dict) -> dict:
        """A collated batch on the device with its compact volumes made float32 (others pass as they are)."""
        return expand_volumes(batch, self.cfg)

    def text_sample(self, index: int) -> dict:
        """The study id, regions (canonical order) and region reports of a sample, without reading its volumes."""
        entry = self.entries[index]
        regions = usable_regions(entry, self.region_set)
        return {
            "study_id": entry["study_id"],
            "regions": regions,
            "region_reports": [entry["region_reports"].get(r, "") for r in regions],
        }

    def leave_out(self, study_ids: set[str]) -> None:
        """Drop these studies from the split (indices shift: call before any epoch is drawn)."""
        self.entries = [e for e in self.entries if e["study_id"] not in study_ids]
        if not self.entries:
            index = self.cache_dir / f"{self.split}.jsonl"
            raise ValueError(f"{index}: no study left after leaving out {len(study_ids)}")

    def region_order(self, index: int) -> list[str]:
        regions = usable_regions(self.entries[index], self.region_set)
        if self.shuffle_regions:
            order = np.random.default_rng([self.seed, self.epoch, index]).permutation(len(regions))
            regions = [regions[i] for i in order]
        return regions

    def __getitem__(self, index: int) -> dict:
        # A study whose cache file went bad since the build (unreadable, an array failing its SHA-256,
        # another study's file) is logged, counted and replaced by the next one, so that a long epoch
        # never dies on one file.
        for attempt in range(self.max_bad_reads):
            i = (index + attempt) % len(self.entries)
            entry = self.entries[i]
            try:
                with CachedStudy(self.cache_dir / entry["file"], entry["study_id"]) as study:
                    return load_sample(study, entry, self.cfg, self.region_order(i), self.lfd, self.compact)
            except Exception as error:  # noqa: BLE001 - any unreadable file is the same problem here
                self.bad_reads[entry["study_id"]] = f"{type(error).__name__}: {error}"
                log.error("unreadable cache file for study %s (%s); using the next study", entry["study_id"], error)
        raise RuntimeError(
            f"{self.max_bad_reads} consecutive unreadable cache files from {self.cache_dir}: rebuild the cache"
        )


def dataset_from_config(
    data_cfg: DictConfig,
    split: str,
    shuffle_regions: bool = False,
    seed: int = 0,
    region_set: str | None = None,
    compact: bool = False,
) -> CachedRegionDataset:
    """A split of the cache that a ``data`` config names, at its preprocessing, LFD setting and region set
    (``region_set`` None: ``data.region_set``; training and generation build theirs here). Regions in
    canonical order unless ``shuffle_regions`` (training with RRA), drawn from (``seed``, epoch, index);
    ``compact``: integer samples (training, whose loop expands them on the device)."""
    return CachedRegionDataset(
        data_cfg.cache_dir,
        split,
        preprocessing_config(data_cfg),
        lfd=data_cfg.lfd,
        shuffle_regions=shuffle_regions,
        seed=seed,
        region_set=region_set or data_cfg.get("region_set", "reported"),
        compact=compact,
    )
