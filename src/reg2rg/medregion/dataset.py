"""The MedRegion-CT data: testbed studies, their attributes and cached visual features, as a torch Dataset.

``prepare_features`` writes, per split, ``<cache_dir>/<split>.jsonl`` (one entry per study: ``study_id``,
``region_reports``, ``attributes``, ``truth``) and ``<cache_dir>/<split>/<study_id>.safetensors`` (the
``StudyFeatures`` tensors). ``<cache_dir>/settings.json`` records the phantom and encoder settings; a cache
made with others is rebuilt. The encoder is frozen, so its features are computed once per study.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from reg2rg.data.volumes import read_volume
from reg2rg.files import atomic_path, atomic_write_bytes
from reg2rg.medregion.features import EncoderSettings, SliceEncoder, study_features
from reg2rg.medregion.phantom import PhantomConfig
from reg2rg.medregion.regions import REGIONS
from reg2rg.medregion.study_masks import read_mask_folder, read_mask_on_grid
from reg2rg.medregion.testbed import study_id, write_testbed

log = logging.getLogger(__name__)

SETTINGS = "settings.json"


def phantom_config(testbed: Mapping[str, Any]) -> PhantomConfig:
    return PhantomConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in dict(testbed["phantom"]).items()})


def prepare_features(data: Mapping[str, Any], splits: list[str]) -> dict[str, dict[str, Any]]:
    """Write the testbed (when its studies are missing) and the feature cache of ``splits``.

    ``data``: the ``data`` config section (configs/data/medregion_testbed.yaml) as a plain dict."""
    testbed = data["testbed"]
    root, cache = Path(testbed["folder"]), Path(data["cache_dir"])
    encoder_settings = EncoderSettings(**data["slice_encoder"])
    settings = {"testbed": testbed, "slice_encoder": encoder_settings.record()}
    fresh = not (cache / SETTINGS).is_file() or json.loads((cache / SETTINGS).read_text()) != settings
    encoder: SliceEncoder | None = None
    reports = {}
    for split in splits:
        count = int(testbed[f"n_{split}"])
        if fresh or not _cached(cache, split, count):
            if not all((root / split / study_id(split, i) / "study.json").is_file() for i in range(count)):
                log.info("writing %d %s studies of the testbed to %s", count, split, root)
                write_testbed(root, phantom_config(testbed), int(testbed["seed"]), {split: count})
            encoder = encoder or encoder_settings.build()
            log.info("encoding %d %s studies into %s", count, split, cache)
            _encode_split(root, cache, split, count, encoder, encoder_settings.volume_shape)
        reports[split] = {"usable": count, "studies": count, "skipped": {}}
    atomic_write_bytes(cache / SETTINGS, json.dumps(settings, indent=2).encode("utf-8"))
    return reports


def _cached(cache: Path, split: str, count: int) -> bool:
    index = cache / f"{split}.jsonl"
    if not index.is_file():
        return False
    ids = [json.loads(line)["study_id"] for line in index.read_text(encoding="utf-8").splitlines()]
    return ids == [study_id(split, i) for i in range(count)] and all(
        (cache / split / f"{i}.safetensors").is_file() for i in ids
    )


def _encode_split(root: Path, cache: Path, split: str, count: int, encoder: SliceEncoder, shape) -> None:
    lines = []
    for index in range(count):
        name = study_id(split, index)
        folder = root / split / name
        volume = read_volume(folder / "volume.nii.gz")
        masks = [
            read_mask_on_grid(path, volume) if path.is_file() else None
            for path in (folder / "regions" / f"{region}.nii.gz" for region in REGIONS)
        ]
        features = study_features(encoder, volume.array, masks, shape)
        with atomic_path(cache / split / f"{name}.safetensors") as temporary:
            save_file({k: v.contiguous() for k, v in features.tensors().items()}, temporary)
        record = json.loads((folder / "study.json").read_text(encoding="utf-8"))
        attributes = read_mask_folder(folder / "volume.nii.gz", folder / "masks").attributes()
        lines.append(
            json.dumps(
                {
                    "study_id": name,
                    "region_reports": record["region_reports"],
                    "attributes": attributes,
                    "truth": record["truth"],
                }
            )  # fmt: skip
        )
    atomic_write_bytes(cache / f"{split}.jsonl", ("\n".join(lines) + "\n").encode("utf-8"))


class MedRegionDataset(Dataset):
    """A split of the cache: dict samples with the entry's fields and the study's feature tensors."""

    def __init__(self, cache_dir: str | Path, split: str):
        self.folder = Path(cache_dir) / split
        index = Path(cache_dir) / f"{split}.jsonl"
        if not index.is_file():
            raise FileNotFoundError(f"{index}: no cached split; run with prepare_data=true first")
        self.entries = [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines() if line]

    def __len__(self) -> int:
        return len(self.entries)

    def text_sample(self, index: int) -> dict[str, Any]:
        """The sample without its tensors, with ``present`` (what the prompt's length depends on)."""
        tensors = load_file(self.folder / f"{self.entries[index]['study_id']}.safetensors")
        return {**self.entries[index], "present": tensors["present"].tolist()}

    def __getitem__(self, index: int) -> dict[str, Any]:
        tensors = load_file(self.folder / f"{self.entries[index]['study_id']}.safetensors")
        return {**self.entries[index], **tensors}

    def set_epoch(self, epoch: int) -> None:
        """Nothing depends on the epoch (the region order is fixed)."""

    def on_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Samples are float32 already."""
        return batch

    def leave_out(self, study_ids: set[str]) -> None:
        self.entries = [entry for entry in self.entries if entry["study_id"] not in study_ids]
