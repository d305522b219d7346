"""The MedRegion-CT data: studies with their attributes and cached visual features, as a torch Dataset.

``prepare_features`` writes, per split, ``<cache_dir>/<split>.jsonl`` (one entry per study: ``study_id``,
``region_reports``, ``attributes`` and, for the testbed, ``truth``) and ``<cache_dir>/<split>/<study_id>.safetensors``
(the ``StudyFeatures`` tensors). ``<cache_dir>/settings.json`` records the data settings; a split cached with
others is encoded again. The encoder is frozen, so its features are computed once per study. The studies come
from the testbed (``data.testbed``; written on first use) or a dataset reader (``data.reader``;
``reg2rg.medregion.sources``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from reg2rg.files import atomic_path, atomic_write_bytes
from reg2rg.medregion.features import EncoderSettings, SliceEncoder, study_features
from reg2rg.medregion.phantom import PhantomConfig
from reg2rg.medregion.sources import ReaderSource, SourceStudy, testbed_studies
from reg2rg.medregion.testbed import study_id, write_testbed

log = logging.getLogger(__name__)

SETTINGS = "settings.json"


def phantom_config(testbed: Mapping[str, Any]) -> PhantomConfig:
    return PhantomConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in dict(testbed["phantom"]).items()})


def prepare_features(data: Mapping[str, Any], splits: list[str]) -> dict[str, dict[str, Any]]:
    """Write the testbed (when its studies are missing) and the feature cache of ``splits``.

    ``data``: the ``data`` config section (configs/data/medregion_*.yaml) as a plain dict. Returns, per split,
    ``{"usable", "studies", "skipped": {problem: count}}``."""
    cache = Path(data["cache_dir"])
    encoder_settings = EncoderSettings(**data["slice_encoder"])
    settings = {**{k: v for k, v in data.items() if k != "slice_encoder"}, "slice_encoder": encoder_settings.record()}
    recorded = json.loads((cache / SETTINGS).read_text()) if (cache / SETTINGS).is_file() else None
    encoder: SliceEncoder | None = None
    reports = {}
    for split in splits:
        index = cache / f"{split}.jsonl"
        if recorded == settings and index.is_file() and _complete(cache, split, data):
            count = len(index.read_text(encoding="utf-8").splitlines())
            reports[split] = {"usable": count, "studies": count, "skipped": {}}
            continue
        encoder = encoder or encoder_settings.build()
        if "testbed" in data:
            _write_testbed_split(data["testbed"], split)
            studies, skips = testbed_studies(data, split), None
        else:
            studies = ReaderSource(data, split)
            skips = studies.skips
        log.info("encoding the %s studies into %s", split, cache)
        count = _encode_split(cache, split, studies, encoder, encoder_settings.volume_shape)
        skipped = skips.counts() if skips is not None else {}
        reports[split] = {"usable": count, "studies": count + sum(skipped.values()), "skipped": skipped}
    atomic_write_bytes(cache / SETTINGS, json.dumps(settings, indent=2).encode("utf-8"))
    return reports


def _write_testbed_split(testbed: Mapping[str, Any], split: str) -> None:
    root, count = Path(testbed["folder"]), int(testbed[f"n_{split}"])
    if not all((root / split / study_id(split, i) / "study.json").is_file() for i in range(count)):
        log.info("writing %d %s studies of the testbed to %s", count, split, root)
        write_testbed(root, phantom_config(testbed), int(testbed["seed"]), {split: count})


def _complete(cache: Path, split: str, data: Mapping[str, Any]) -> bool:
    """Whether every study of the split's index has its features (the testbed: every study of the split)."""
    ids = [json.loads(line)["study_id"] for line in (cache / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    if "testbed" in data and ids != [study_id(split, i) for i in range(int(data["testbed"][f"n_{split}"]))]:
        return False
    return all((cache / split / f"{name}.safetensors").is_file() for name in ids)


def _encode_split(
    cache: Path, split: str, studies: Iterable[SourceStudy], encoder: SliceEncoder, shape: tuple[int, int, int]
) -> int:
    lines = []
    for study in studies:
        features = study_features(encoder, study.volume.array, study.region_masks, shape)
        with atomic_path(cache / split / f"{study.study_id}.safetensors") as temporary:
            save_file({k: v.contiguous() for k, v in features.tensors().items()}, temporary)
        entry = {"study_id": study.study_id, "region_reports": study.region_reports, "attributes": study.attributes}
        lines.append(json.dumps(entry | ({"truth": study.truth} if study.truth is not None else {})))
    atomic_write_bytes(cache / f"{split}.jsonl", "".join(line + "\n" for line in lines).encode("utf-8"))
    return len(lines)


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
