"""A generic manifest (CSV or JSONL) for bringing your own volumes, masks and reports.

One row per study. Fields (data/README.md has examples):
    study_id, split, volume        required; ids are unique across the whole manifest and plain
                                   file names (letters, digits, '.', '_', '-'; not '.' or '..')
    masks                          a folder of per-region NIfTI files (<region>.nii.gz), or
    label_map [+ mapping]          an integer label map and its class-to-region YAML
                                   (per row, or the reader's ``mapping`` for every row)
    report                         the whole report (optional)
    report_<region>                one field per region ("report_trachea_and_bronchie"), and/or
    region_reports                 (JSONL) an object {region: text}
Relative paths resolve against the manifest's folder.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from reg2rg.constants import REGIONS, canonical_region
from reg2rg.data.errors import SkipLog, StudyError
from reg2rg.data.masks import load_region_mapping
from reg2rg.data.readers.common import (
    StudyIndex,
    StudyText,
    build_record,
    check_study_id,
    find_duplicates,
    read_table,
    read_text,
    resolve,
    scan_mask_folder,
)
from reg2rg.data.records import LabelMap, MaskSource, StudyRecord
from reg2rg.data.volumes import require_file

REQUIRED = ("study_id", "split", "volume")
REGION_PREFIX = "report_"
Row = tuple[str, dict]  # (where in the manifest, e.g. "row 3" or "line 3"; the row's fields)


class ManifestReader:
    """Reads one split of a study manifest into a ``StudyIndex``.

    Args:
        path: the manifest, ``.csv`` or ``.jsonl``.
        policy: bad-input policy, "skip" or "strict".
        mapping: class-to-region YAML for every ``label_map`` row without its own ``mapping``
            (relative to the working directory, like other config paths).
        encoding: text encoding of the manifest.
    """

    def __init__(
        self, path: str | Path, policy: str = "skip", mapping: str | Path | None = None, encoding: str = "utf-8"
    ):
        SkipLog(policy)  # validates the policy name
        self.path = Path(path)
        if self.path.suffix not in (".csv", ".jsonl"):
            raise ValueError(f"manifest must be a .csv or .jsonl file, got {self.path}")
        self.policy = policy
        self.encoding = encoding
        self.classes = load_region_mapping(mapping) if mapping else None
        self._row_mappings: dict[Path, dict[str, tuple[int, ...]]] = {}

    def read(self, split: str) -> StudyIndex:
        rows = self._rows()
        duplicates = find_duplicates(self.path, ((fields["study_id"], where) for where, fields in rows))
        rows = [(where, fields) for where, fields in rows if fields["split"] == split]
        index = StudyIndex(skips=SkipLog(self.policy))
        for study_id in dict.fromkeys(fields["study_id"] for _, fields in rows if fields["study_id"] in duplicates):
            index.skips.record(study_id, duplicates[study_id])  # once per id, however many copies
        for where, fields in rows:
            if fields["study_id"] in duplicates:
                continue
            if (bad_id := check_study_id(fields["study_id"], self.path, where)) is not None:
                index.skips.record(fields["study_id"], bad_id)
            else:
                index.add(fields["study_id"], self._record, where, fields, index.ignored)
        return index.log_summary(self.path, split)

    def _rows(self) -> list[Row]:
        rows = self._jsonl_rows() if self.path.suffix == ".jsonl" else self._csv_rows()
        for where, fields in rows:
            missing = [key for key in ("study_id", "split") if not _text(fields.get(key))]
            if missing:
                raise StudyError(
                    self.path,
                    f"{where} has no {' and no '.join(missing)}; every row needs a study_id and a split",
                    kind="columns",
                )
            fields["study_id"], fields["split"] = _text(fields["study_id"]), _text(fields["split"])
        return rows

    def _csv_rows(self) -> list[Row]:
        table = read_table(self.path, REQUIRED, self.encoding)
        table.columns = [str(column).strip().lower() for column in table.columns]
        if "masks" not in table.columns and "label_map" not in table.columns:
            raise StudyError(
                self.path, f"missing column ['masks' or 'label_map']; the CSV has {list(table.columns)}", kind="columns"
            )
        return [(f"row {number}", fields) for number, fields in enumerate(table.to_dict("records"), start=1)]

    def _jsonl_rows(self) -> list[Row]:
        rows = []
        for number, line in enumerate(read_text(self.path, self.encoding).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                fields = json.loads(line)
            except json.JSONDecodeError as error:
                raise StudyError(self.path, f"line {number} is not valid JSON: {error.msg}", kind="corrupt") from error
            if not isinstance(fields, dict):
                raise StudyError(self.path, f"line {number} is not a JSON object", kind="corrupt")
            rows.append((f"line {number}", fields))
        return rows

    def _record(self, where: str, fields: dict, ignored: Counter) -> StudyRecord:
        study_id, base = fields["study_id"], self.path.parent
        volume = _text(fields.get("volume"))
        if not volume:
            raise StudyError(self.path, f"{where} (study '{study_id}') has no volume", kind="manifest_row")
        text = StudyText(_text(fields.get("report")), self._region_texts(where, fields, ignored))
        return build_record(
            study_id,
            fields["split"],
            text,
            self.path,
            resolve(volume, base),
            lambda: self._masks(where, fields, ignored),
            ignored,
        )

    def _region_texts(self, where: str, fields: dict, ignored: Counter) -> dict[str, str]:
        nested = fields.get("region_reports") or {}
        if not isinstance(nested, dict):
            raise StudyError(
                self.path, f"{where}: region_reports must be an object {{region: text}}", kind="manifest_row"
            )
        named = [(key[len(REGION_PREFIX) :], value) for key, value in fields.items() if key.startswith(REGION_PREFIX)]
        texts: dict[str, str] = {}
        for name, value in named + list(nested.items()):
            sentence = _text(value)
            if not sentence:
                continue
            region = canonical_region(str(name))
            if region is None:
                ignored[f"region report '{name}'"] += 1
            else:
                texts[region] = f"{texts[region]} {sentence}" if region in texts else sentence
        return {region: texts[region] for region in REGIONS if region in texts}

    def _masks(self, where: str, fields: dict, ignored: Counter) -> MaskSource:
        base = self.path.parent
        folder, label_map, mapping = (_text(fields.get(key)) for key in ("masks", "label_map", "mapping"))
        if bool(folder) == bool(label_map):
            raise StudyError(
                self.path,
                f"{where} (study '{fields['study_id']}'): give exactly one of `masks` (a folder of <region>.nii.gz) "
                "and `label_map` (with a mapping)",
                kind="manifest_row",
            )
        if folder:
            return scan_mask_folder(resolve(folder, base), ignored)
        path = require_file(resolve(label_map, base), what="label map", missing_kind="missing_mask")
        classes = self._row_mapping(resolve(mapping, base)) if mapping else self.classes
        if not classes:
            raise StudyError(
                path,
                "label map without a class-to-region mapping: add a `mapping` field (YAML path) to the row or set "
                "the reader's `mapping` (e.g. configs/mappings/totalsegmentator.yaml)",
                kind="no_mapping",
            )
        return LabelMap(path, classes)

    def _row_mapping(self, path: Path) -> dict[str, tuple[int, ...]]:
        if path not in self._row_mappings:
            self._row_mappings[path] = load_region_mapping(path)
        return self._row_mappings[path]


def _text(value: object) -> str:
    """A field as stripped text; missing fields and JSON nulls are ''."""
    return "" if value is None else str(value).strip()
