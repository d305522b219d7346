"""RadGenome-ChestCT (CT-RATE volumes + SAT region masks + region report CSVs), layout in data/README.md."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from reg2rg.constants import CT_RATE_LABELS
from reg2rg.data.errors import SkipLog, StudyError
from reg2rg.data.readers.common import (
    StudyIndex,
    StudyText,
    build_record,
    read_region_reports,
    read_table,
    resolve,
    scan_mask_folder,
    volume_id,
)
from reg2rg.data.records import StudyRecord

SPLITS = ("train", "valid")  # the official split; "valid" is the test set of the paper
REPORT_CSVS = {"train": "train_region_report.csv", "valid": "validation_region_report.csv"}


class RadGenomeReader:
    """Reads one split of RadGenome-ChestCT into a ``StudyIndex``.

    Args:
        root: dataset folder with ``<split>_preprocessed/``, ``radgenome_files/`` and, optionally,
            ``multi_abnormality_labels/`` (CT-RATE's predicted labels).
        policy: bad-input policy, "skip" (count and leave out bad studies) or "strict" (raise).
        mask_root: folder holding ``<split>_region_mask/``; defaults to ``root``.
        report_csv: a region report CSV to use instead of ``radgenome_files/<split csv>``; its
            rows are matched to the split by the volume name prefix (``train_``/``valid_``).
            Relative ``mask_root`` and ``report_csv`` resolve against ``root``.
        encoding: text encoding of the CSVs.
    """

    def __init__(
        self,
        root: str | Path,
        policy: str = "skip",
        mask_root: str | Path | None = None,
        report_csv: str | Path | None = None,
        encoding: str = "utf-8",
    ):
        SkipLog(policy)  # validates the policy name
        self.root = Path(root)
        self.policy = policy
        self.mask_root = resolve(mask_root, self.root) if mask_root else self.root
        self.report_csv = resolve(report_csv, self.root) if report_csv else None
        self.encoding = encoding

    def read(self, split: str) -> StudyIndex:
        if split not in SPLITS:
            raise ValueError(f"unknown RadGenome split {split!r}; expected one of {SPLITS}")
        if not self.root.is_dir():
            raise StudyError(
                self.root,
                "RadGenome-ChestCT root folder not found: expected the dataset/ folder holding "
                "radgenome_files/ and <split>_preprocessed/ (see data/README.md)",
                kind="missing",
            )
        index = StudyIndex(skips=SkipLog(self.policy))
        csv = self.report_csv or self.root / "radgenome_files" / REPORT_CSVS[split]
        volumes = self.volumes_on_disk(split)
        reports = read_region_reports(csv, index.ignored, self.encoding, known_ids=volumes)
        labels = self._labels(split, index.ignored)
        for study_id, error in reports.problems.items():
            if study_id.startswith(f"{split}_"):
                index.skips.record(study_id, error)
        for study_id, text in reports.texts.items():
            if not study_id.startswith(f"{split}_"):
                index.ignored["volume of another split"] += 1
            elif study_id not in reports.problems:
                index.add(study_id, self._record, split, study_id, text, csv, labels.get(study_id), index.ignored)
        for study_id, volume in volumes.items():
            if study_id not in reports.texts and study_id not in reports.problems:
                problem = f"no row in the report CSV {csv}: the study has no report; add its rows or remove the volume"
                index.skips.record(study_id, StudyError(volume, problem, kind="no_report"))
        return index.log_summary(csv, split)

    def volumes_on_disk(self, split: str) -> dict[str, Path]:
        """Study id -> volume file of every ``<split>_preprocessed/<patient>/<scan>/<name>.nii.gz``."""
        folder = self.root / f"{split}_preprocessed"
        return {volume_id(path.name): path for path in sorted(folder.glob("*/*/*.nii.gz"))}

    def volume_path(self, split: str, study_id: str) -> Path:
        """``train_1_a_1`` -> ``<root>/train_preprocessed/train_1/train_1a/train_1_a_1.nii.gz``."""
        parts = study_id.split("_")
        if len(parts) != 4 or not all(parts):
            raise ValueError(f"volume name '{study_id}.nii.gz' is not <split>_<patient>_<scan>_<reconstruction>.nii.gz")
        prefix, patient, scan, _ = parts
        patient_folder = f"{prefix}_{patient}"
        return self.root / f"{split}_preprocessed" / patient_folder / f"{patient_folder}{scan}" / f"{study_id}.nii.gz"

    def mask_folder(self, split: str, study_id: str) -> Path:
        return self.mask_root / f"{split}_region_mask" / f"seg_{study_id}"

    def _record(
        self, split: str, study_id: str, text: StudyText, csv: Path, labels: dict[str, int] | None, ignored: Counter
    ) -> StudyRecord:
        try:
            volume = self.volume_path(split, study_id)
        except ValueError as error:
            raise StudyError(csv, str(error), kind="bad_name") from error
        folder = self.mask_folder(split, study_id)
        return build_record(
            study_id, split, text, csv, volume, lambda: scan_mask_folder(folder, ignored), ignored, labels
        )

    def _labels(self, split: str, ignored: Counter) -> dict[str, dict[str, int]]:
        """CT-RATE's 18 predicted labels per study id, when the label CSV is there."""
        path = self.root / "multi_abnormality_labels" / f"{split}_predicted_labels.csv"
        if not path.exists():
            return {}
        table = read_table(path, ("VolumeName", *CT_RATE_LABELS), self.encoding)
        values = table[list(CT_RATE_LABELS)].apply(pd.to_numeric, errors="coerce")  # (studies, 18), NaN if unreadable
        valid = values.isin((0, 1)).all(axis=1)
        if not valid.all():
            ignored["label row with values other than 0/1"] += int((~valid).sum())
        return {
            volume_id(name): dict(zip(CT_RATE_LABELS, map(int, row)))
            for name, row, ok in zip(table["VolumeName"], values.itertuples(index=False), valid)
            if ok
        }
