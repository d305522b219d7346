"""CTRG-Chest-548K: volumes plus a whole-report table; region reports and masks are produced first.

The release has neither region masks nor region reports. The paper ran SAT for the masks and
split each report into regions with an LLM; until region reports exist (a RadGenome-format CSV,
``region_report_csv``) every study is skipped with kind ``no_region_report``.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from reg2rg.data.errors import SkipLog
from reg2rg.data.readers.common import (
    RegionReports,
    StudyIndex,
    StudyText,
    build_record,
    check_study_id,
    find_duplicates,
    read_region_reports,
    read_table,
    resolve,
    scan_mask_folder,
    volume_id,
)
from reg2rg.data.records import StudyRecord

log = logging.getLogger(__name__)

SPLITS = ("train", "valid")  # the paper's random 8:2 split; "valid" is the test set


class CTRGReader:
    """Reads one split of CTRG-Chest-548K into a ``StudyIndex``.

    Args:
        root: dataset folder; the relative paths below resolve against it.
        report_table: CSV with one row per study.
        id_column: study id column of ``report_table`` (a trailing .nii/.nii.gz is dropped).
        report_column: whole-report column of ``report_table``.
        volume_pattern: volume path with an ``{id}`` field, e.g. ``volumes/{id}.nii.gz``
            (a DICOM series folder works too).
        mask_root: folder of SAT outputs ``seg_<id>/<region>.nii.gz``.
        region_report_csv: region reports in RadGenome's format (``Volumename, Anatomy, Sentence``).
        seed: seed of the random split (ids sorted, then shuffled with it).
        train_fraction: share of the studies in ``train``; the rest is ``valid``.
        policy: bad-input policy, "skip" or "strict".
        encoding: text encoding of the CSVs.
    """

    def __init__(
        self,
        root: str | Path,
        report_table: str | Path,
        id_column: str,
        report_column: str,
        volume_pattern: str,
        mask_root: str | Path,
        region_report_csv: str | Path | None = None,
        seed: int = 0,
        train_fraction: float = 0.8,
        policy: str = "skip",
        encoding: str = "utf-8",
    ):
        try:
            usable = "{id}" in volume_pattern and bool(volume_pattern.format(id="x"))
        except (KeyError, IndexError, ValueError):
            usable = False
        if not usable:
            raise ValueError(f"volume_pattern must contain '{{id}}' and no other field, got {volume_pattern!r}")
        if not 0.0 < train_fraction < 1.0:
            raise ValueError(f"train_fraction must be between 0 and 1, got {train_fraction}")
        SkipLog(policy)  # validates the policy name
        self.root = Path(root)
        self.report_table = resolve(report_table, self.root)
        self.id_column = id_column
        self.report_column = report_column
        self.volume_pattern = volume_pattern
        self.mask_root = resolve(mask_root, self.root)
        self.region_report_csv = resolve(region_report_csv, self.root) if region_report_csv else None
        self.seed = seed
        self.train_fraction = train_fraction
        self.policy = policy
        self.encoding = encoding

    def split_ids(self, ids: Iterable[str]) -> dict[str, list[str]]:
        """The seeded random split of ``ids``: sorted, shuffled, the first ``train_fraction`` is train."""
        shuffled = sorted(set(ids))
        random.Random(self.seed).shuffle(shuffled)
        n_train = round(len(shuffled) * self.train_fraction)
        return {"train": sorted(shuffled[:n_train]), "valid": sorted(shuffled[n_train:])}

    def read(self, split: str) -> StudyIndex:
        if split not in SPLITS:
            raise ValueError(f"unknown CTRG split {split!r}; expected one of {SPLITS}")
        index = StudyIndex(skips=SkipLog(self.policy))
        table = read_table(self.report_table, (self.id_column, self.report_column), self.encoding)
        ids = [volume_id(name) for name in table[self.id_column]]
        reports = dict(zip(ids, table[self.report_column]))
        first_row: dict[str, int] = {}
        for row, sid in enumerate(ids, start=1):
            first_row.setdefault(sid, row)
        if "" in reports:
            index.ignored["row without a study id"] += ids.count("")
        duplicates = find_duplicates(self.report_table, ((sid, f"row {row + 1}") for row, sid in enumerate(ids) if sid))
        region = self._region_reports(set(ids), index.ignored)
        orphans = len(self.volumes_on_disk().keys() - set(ids))
        if orphans:
            index.ignored[f"volume without a row in {self.report_table.name}"] += orphans
        for study_id in self.split_ids(sid for sid in ids if sid)[split]:
            problem = (
                duplicates.get(study_id)
                or check_study_id(study_id, self.report_table, f"row {first_row[study_id]}")
                or region.problems.get(study_id)
            )
            if problem is not None:
                index.skips.record(study_id, problem)
                continue
            split_text = region.texts.get(study_id, StudyText())
            text = StudyText(reports[study_id].strip() or split_text.report, split_text.regions)
            index.add(study_id, self._record, split, study_id, text, index.ignored)
        return index.log_summary(self.report_table, split)

    def volumes_on_disk(self) -> dict[str, Path]:
        """Study id -> volume of every file or folder that ``volume_pattern`` matches."""
        folder, _, name = self.volume_pattern.rpartition("/")
        matcher = re.compile(re.escape(name).replace(re.escape("{id}"), "(.+)"))
        base = self.root / folder
        if "{id}" in folder or not base.is_dir():
            return {}
        return {match[1]: base / entry for entry in sorted(os.listdir(base)) if (match := matcher.fullmatch(entry))}

    def _region_reports(self, known_ids: set[str], ignored: Counter) -> RegionReports:
        if self.region_report_csv is None:
            log.warning(
                "%s: no region_report_csv, so every study will be skipped (no_region_report): split the reports into "
                "the 10 regions first (the paper used an LLM), see data/README.md",
                self.report_table,
            )
            return RegionReports()
        reports = read_region_reports(self.region_report_csv, ignored, self.encoding, known_ids)
        unknown = len(reports.texts.keys() - known_ids)
        if unknown:
            ignored["region reports of a study not in the report table"] += unknown
        return reports

    def _record(self, split: str, study_id: str, text: StudyText, ignored: Counter) -> StudyRecord:
        source = self.region_report_csv or self.report_table
        volume = self.root / self.volume_pattern.format(id=study_id)
        folder = self.mask_root / f"seg_{study_id}"
        return build_record(study_id, split, text, source, volume, lambda: scan_mask_folder(folder, ignored), ignored)
