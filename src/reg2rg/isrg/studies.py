"""The lesion studies of a run, prepared once into ``data.cache_dir`` (one ``<split>.npz`` per split) and read
back by the dataset and the evaluation.

``data.source``: ``phantoms`` (reg2rg.isrg.phantoms: train, valid and the held-out zeroshot split) or a dataset
folder read by reg2rg.isrg.readers (``msd`` or ``kits23``, with the attribute CSV). A split's file records the
settings it was made with; other settings make it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_path
from .data import LesionStudy
from .phantoms import phantom_split

log = logging.getLogger(__name__)

EVALUATION_SPLITS = ("valid", "zeroshot")  # the zeroshot split only where the source has one


def settings_digest(data: Mapping[str, Any], split: str) -> str:
    wanted = {"source": data["source"], "split": split, "phantoms": data.get("phantoms"), "root": data.get("root")}
    wanted |= {"reader": data.get("reader"), "cube": data.get("cube"), "spacing": data.get("spacing")}
    return hashlib.sha256(json.dumps(wanted, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_studies(data: Mapping[str, Any], splits: list[str]) -> dict[str, dict[str, Any]]:
    """Write each split's studies unless its file is current; {split: {"usable", "studies", "skipped"}}."""
    cache = Path(data["cache_dir"])
    report = {}
    for split in splits:
        path = cache / f"{split}.npz"
        digest = settings_digest(data, split)
        if path.is_file():
            with np.load(path) as stored:
                if str(stored["digest"]) == digest:
                    report[split] = json.loads(str(stored["report"]))
                    continue
        studies, skipped, total = _read_split(data, split)
        report[split] = {"usable": len(studies), "studies": total, "skipped": skipped}
        if studies:
            _write(path, studies, digest, report[split])
        log.info("%s: %d lesion studies -> %s", split, len(studies), path)
    return report


def load_studies(cache_dir: str | Path, split: str) -> list[LesionStudy]:
    """The studies of a prepared split; a clear error when it was never prepared."""
    path = Path(cache_dir) / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the {split} split was not prepared (train with prepare_data=true)")
    with np.load(path) as stored:
        return [
            LesionStudy(str(i), v.astype(np.float32), label.astype(bool), a, str(t), tuple(float(s) for s in sp))
            for i, v, label, a, t, sp in zip(
                stored["study_ids"],
                stored["volumes"],
                stored["labels"],
                stored["attributes"],
                stored["lesion_types"],
                stored["spacings"],
            )
        ]


def _read_split(data: Mapping[str, Any], split: str) -> tuple[list[LesionStudy], dict[str, int], int]:
    if data["source"] == "phantoms":
        settings = data["phantoms"]
        count = settings[f"n_{split}"]
        phantoms = phantom_split(split, count, settings["seed"])
        studies = [
            LesionStudy(f"{split}_{i:04d}", p.volume_hu, p.label, p.attributes, p.lesion_type)
            for i, p in enumerate(phantoms)
        ]
        return studies, {}, count
    from .readers import read_lesion_split

    return read_lesion_split(data, split)


def _write(path: Path, studies: list[LesionStudy], digest: str, report: dict) -> None:
    arrays = {
        "volumes": np.stack([np.round(s.volume_hu).astype(np.int16) for s in studies]),
        "labels": np.stack([s.label.astype(bool) for s in studies]),
        "attributes": np.stack([np.asarray(s.attributes, np.int64) for s in studies]),
        "study_ids": np.array([s.study_id for s in studies]),
        "lesion_types": np.array([s.lesion_type for s in studies]),
        "spacings": np.array([s.spacing for s in studies], np.float64),
        "digest": np.array(digest),
        "report": np.array(json.dumps(report)),
    }
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)
