"""``write_dataset``: synthetic studies on disk in exactly the RadGenome-ChestCT layout.

    <root>/train_preprocessed/train_3/train_3a/train_3_a_1.nii.gz          int16 HU, RAS affine
    <root>/train_region_mask/seg_train_3_a_1/<region>.nii.gz                 uint8 0/1, one per region
    <root>/radgenome_files/train_region_report.csv                           Volumename, Anatomy, Sentence
    <root>/multi_abnormality_labels/train_predicted_labels.csv               VolumeName + 18 labels
(``valid_...`` and ``validation_region_report.csv`` for the valid split.) Study ``i`` is patient
``i + 1``, scan ``a``, reconstruction 1. Every file is written to a temporary name in its folder
and renamed, gzip streams carry no timestamp, so equal configs give byte-identical files.

Resuming: each study also leaves ``<root>/.synthetic/<split>/<id>.json`` (its reports, labels,
findings and a fingerprint of the config); a study whose record matches and whose files all
exist is not generated again. Studies beyond ``n_train``/``n_valid`` from an earlier, larger run
stay on disk but are not listed in the CSVs.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from reg2rg.constants import CT_RATE_LABELS, REGIONS
from reg2rg.data.synthetic.config import SyntheticConfig, as_config
from reg2rg.data.synthetic.perturb import perturb_masks
from reg2rg.data.synthetic.reports import REPORT_ORDER
from reg2rg.data.synthetic.study import PERTURBATION, make_study, study_rng
from reg2rg.files import atomic_write_bytes

GENERATOR_VERSION = 1  # bump when the phantom changes, so that resumed datasets are regenerated
REPORT_CSV = {"train": "train_region_report.csv", "valid": "validation_region_report.csv"}
LABEL_CSV = {"train": "train_predicted_labels.csv", "valid": "valid_predicted_labels.csv"}
RECORDS = ".synthetic"


def study_id(split: str, index: int) -> str:
    """``("train", 2)`` -> ``"train_3_a_1"``."""
    return f"{split}_{index + 1}_a_1"


def volume_path(root: Path, split: str, index: int) -> Path:
    patient = f"{split}_{index + 1}"
    return root / f"{split}_preprocessed" / patient / f"{patient}a" / f"{study_id(split, index)}.nii.gz"


def mask_folder(root: Path, split: str, index: int) -> Path:
    return root / f"{split}_region_mask" / f"seg_{study_id(split, index)}"


def write_dataset(
    root: str | Path, cfg: SyntheticConfig | Mapping, on_study: Callable[[str], None] | None = None
) -> dict:
    """Write (or complete) the dataset; ``on_study(study_id)`` is called after each study.

    Returns a summary: ``root``, studies per split, ``generated`` / ``reused`` counts and how
    often each finding (``findings``) and each CT-RATE label (``labels``) occurs.
    """
    cfg = as_config(cfg)
    root = Path(root)
    key = _fingerprint(cfg)
    findings, labels, done = Counter(), Counter(), Counter()
    for split, n in (("train", cfg.n_train), ("valid", cfg.n_valid)):
        report_rows, label_rows = [], []
        for index in range(n):
            record, fresh = _study_record(root, cfg, split, index, key)
            done["generated" if fresh else "reused"] += 1
            name = f"{study_id(split, index)}.nii.gz"
            report_rows.append([name, "", record["report"]])
            report_rows += [[name, region, text] for region, text in record["region_reports"].items()]
            label_rows.append([name, *(record["labels"][label] for label in CT_RATE_LABELS)])
            findings.update(f["name"] for f in record["findings"])
            labels.update(label for label, value in record["labels"].items() if value)
            if on_study is not None:
                on_study(study_id(split, index))
        _write_csv(root / "radgenome_files" / REPORT_CSV[split], ["Volumename", "Anatomy", "Sentence"], report_rows)
        _write_csv(root / "multi_abnormality_labels" / LABEL_CSV[split], ["VolumeName", *CT_RATE_LABELS], label_rows)
    return {
        "root": str(root),
        "train": cfg.n_train,
        "valid": cfg.n_valid,
        "generated": done["generated"],
        "reused": done["reused"],
        "findings": dict(sorted(findings.items())),
        "labels": {label: labels[label] for label in CT_RATE_LABELS},
    }


def dataset_matches(root: str | Path, cfg: SyntheticConfig | Mapping) -> bool:
    """Whether ``root`` holds exactly the studies ``cfg`` describes (their records carry its fingerprint)."""
    cfg, root = as_config(cfg), Path(root)
    key = _fingerprint(cfg)
    for split, n in (("train", cfg.n_train), ("valid", cfg.n_valid)):
        if any(_finished_record(root, split, index, key) is None for index in range(n)):
            return False
        reports = root / "radgenome_files" / REPORT_CSV[split]
        if not reports.is_file():
            return False
        with open(reports, encoding="utf-8", newline="") as handle:
            listed = {row[0] for row in csv.reader(handle)} - {"Volumename"}
        if len(listed) != n:
            return False
    return True


def summary_line(summary: dict) -> str:
    """One line: where, how many studies, and the finding counts."""
    found = ", ".join(f"{name} {n}" for name, n in sorted(summary["findings"].items(), key=lambda kv: -kv[1]))
    return (
        f"{summary['root']}: {summary['train']} train + {summary['valid']} valid studies "
        f"({summary['generated']} generated, {summary['reused']} reused); findings: {found or 'none'}"
    )


def _study_record(root: Path, cfg: SyntheticConfig, split: str, index: int, key: str) -> tuple[dict, bool]:
    """The study's record, from a matching earlier run or freshly generated and written; (record, fresh)."""
    record = _finished_record(root, split, index, key)
    if record is not None:
        return record, False
    volume, masks = volume_path(root, split, index), mask_folder(root, split, index)
    study = make_study(cfg, cfg.seed, index, split)
    atomic_write_bytes(volume, _nifti_bytes(study.volume, study.affine))
    written = perturb_masks(study.masks, cfg.perturbation, study_rng(cfg.seed, split, index, PERTURBATION))
    for region in REGIONS:
        atomic_write_bytes(masks / f"{region}.nii.gz", _nifti_bytes(written[region].astype(np.uint8), study.affine))
    record = {
        "key": key,
        "region_reports": {
            region: study.region_reports[region] for region in REPORT_ORDER if region in study.region_reports
        },
        "report": study.report,
        "labels": study.labels,
        "findings": [dataclasses.asdict(f) for f in study.findings],
        "female": study.female,
    }
    atomic_write_bytes(
        _record_path(root, split, index), json.dumps(record, indent=1).encode("utf-8")
    )  # last: marks the study complete
    return record, True


def _record_path(root: Path, split: str, index: int) -> Path:
    return root / RECORDS / split / f"{study_id(split, index)}.json"


def _finished_record(root: Path, split: str, index: int, key: str) -> dict | None:
    """The study's record if it was written with settings ``key`` and its volume and every region mask
    are on disk; None when it must be (re)generated."""
    path = _record_path(root, split, index)
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    masks = mask_folder(root, split, index)
    files = [volume_path(root, split, index), *(masks / f"{region}.nii.gz" for region in REGIONS)]
    return record if record.get("key") == key and all(p.is_file() for p in files) else None


def _fingerprint(cfg: SyntheticConfig) -> str:
    content = json.dumps({"version": GENERATOR_VERSION, **cfg.content_key()}, sort_keys=True, default=list)
    return hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]


def _nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """A gzipped NIfTI-1 file (scanner qform and sform = ``affine``, mm units, no gzip timestamp)."""
    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return gzip.compress(image.to_bytes(), compresslevel=1, mtime=0)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))
