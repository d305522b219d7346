"""What the study readers share: the index they return and their cheap checks.

Readers only look at what is cheap to check (files exist and are not empty, CSV columns and rows,
text decodes, ids are unique plain file names); decoding volumes and masks happens later, in
preprocessing.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reg2rg.constants import REGIONS, canonical_region
from reg2rg.data.errors import SkipLog, StudyError
from reg2rg.data.records import SAFE_ID_RULE, MaskFolder, MaskSource, StudyRecord, unsafe_id_reason
from reg2rg.data.volumes import NIFTI_SUFFIXES, require_file, require_folder

log = logging.getLogger(__name__)

REGION_REPORT_COLUMNS = ("Volumename", "Anatomy", "Sentence")  # RadGenome's region report CSV


@dataclass
class StudyIndex:
    """One split as a reader sees it: the studies that passed the cheap checks, the skipped ones,
    and how often each unused name was met (``ignored``, e.g. ``"anatomy 'left lung'": 812``)."""

    records: list[StudyRecord] = field(default_factory=list)
    skips: SkipLog = field(default_factory=SkipLog)
    ignored: Counter = field(default_factory=Counter)

    def add(self, study_id: str, build: Callable[..., StudyRecord], *args) -> None:
        """Append ``build(*args)``; a ``StudyError`` (or a file that cannot be read) is recorded as a skip
        (raised under policy strict)."""
        try:
            self.records.append(build(*args))
        except StudyError as error:
            self.skips.record(study_id, error)
        except OSError as error:
            self.skips.record(
                study_id,
                StudyError(error.filename or study_id, f"cannot be read ({error.strerror})", kind="unreadable"),
            )

    def summary(self) -> str:
        text = f"{len(self.records)} studies kept, {self.skips.summary()}"
        if self.ignored:
            shown = self.ignored.most_common(10)
            text += "; ignored " + ", ".join(f"{name} ({n}x)" for name, n in shown)
            if len(self.ignored) > len(shown):
                text += f" and {len(self.ignored) - len(shown)} more names"
        return text

    def log_summary(self, source: str | Path, split: str) -> StudyIndex:
        log.info("%s [%s]: %s", source, split, self.summary())
        return self


@dataclass(frozen=True)
class StudyText:
    """A study's report: the whole text and the sentences of each canonical region."""

    report: str = ""
    regions: dict[str, str] = field(default_factory=dict)


def volume_id(name: str) -> str:
    """Study id of a volume file name: ``"train_1_a_1.nii.gz"`` -> ``"train_1_a_1"`` (a name with a folder keeps
    it, and ``check_study_id`` refuses it)."""
    name = name.strip()
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def check_study_id(study_id: str, source: str | Path, where: str) -> StudyError | None:
    """A ``bad_id`` error naming ``source`` and ``where`` (e.g. "row 3") when ``study_id`` cannot name a cache file."""
    reason = unsafe_id_reason(study_id)
    return None if reason is None else StudyError(source, f"{where}: {reason}; {SAFE_ID_RULE}", kind="bad_id")


def resolve(path: str | Path, base: Path) -> Path:
    """``path`` itself when absolute, else relative to ``base``."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else base / path


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """A whole text file; bytes that are not ``encoding`` raise a StudyError saying how to fix them."""
    data = require_file(path).read_bytes()
    try:
        return data.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise StudyError(
            path,
            f"not valid {encoding} text (byte 0x{data[error.start]:02x} on line {line}); it is probably Latin-1 or "
            "Windows-1252: re-save it as UTF-8 (iconv -f latin1 -t utf-8 in.csv > out.csv) "
            "or set the reader's `encoding` (e.g. latin-1)",
            kind="encoding",
        ) from error


@dataclass(frozen=True)
class CsvRow:
    """One CSV record and the physical lines of the file it spans (1-based, inclusive)."""

    first_line: int
    last_line: int
    fields: list[str]


def read_csv_rows(path: Path, encoding: str = "utf-8") -> tuple[list[str], list[CsvRow]]:
    """The header and the records of a CSV (blank lines skipped); a file the csv module cannot parse raises."""
    reader = csv.reader(io.StringIO(read_text(path, encoding), newline=""))
    rows, line = [], 0
    try:
        for fields in reader:
            first, line = line + 1, reader.line_num
            if fields:
                rows.append(CsvRow(first, line, fields))
    except csv.Error as error:
        raise StudyError(
            path,
            f"cannot parse the CSV after line {line}: {error} (an unterminated quote makes a field run on)",
            kind="corrupt",
        ) from error
    if not rows:
        raise StudyError(path, "cannot parse the CSV: it has no header line", kind="corrupt")
    return rows[0].fields, rows[1:]


def _column_positions(path: Path, header: list[str], required: Sequence[str]) -> dict[str, int]:
    """Where each ``required`` column is (matched case-insensitively, spaces around names ignored)."""
    by_key = {column.strip().lower(): position for position, column in enumerate(header)}
    missing = [column for column in required if column.lower() not in by_key]
    if missing:
        raise StudyError(path, f"missing column(s) {missing}; the CSV has {header}", kind="columns")
    return {column: by_key[column.lower()] for column in required}


def read_table(path: Path, required: Sequence[str], encoding: str = "utf-8") -> pd.DataFrame:
    """A CSV as strings ('' for empty cells and for the missing trailing cells of a short row);
    ``required`` columns are matched case-insensitively and renamed to the spelling given. Missing
    columns raise, naming them; so does a row with more fields than the header."""
    header, rows = read_csv_rows(path, encoding)
    positions = _column_positions(path, header, required)
    long_rows = [row for row in rows if len(row.fields) > len(header)]
    if long_rows:
        row = long_rows[0]
        raise StudyError(
            path,
            f"line {row.first_line} has {len(row.fields)} fields but the header has {len(header)} ({len(long_rows)} such rows): "
            "quote fields that contain commas",
            kind="corrupt",
        )
    names = list(header)
    for name, position in positions.items():
        names[position] = name
    return pd.DataFrame([row.fields + [""] * (len(header) - len(row.fields)) for row in rows], columns=names, dtype=str)


def _cell(row: CsvRow, position: int) -> str:
    return row.fields[position] if position < len(row.fields) else ""


@dataclass
class RegionReports:
    """A RadGenome-format region report CSV, read."""

    texts: dict[str, StudyText] = field(default_factory=dict)  # study id -> text, in first-appearance order
    problems: dict[str, StudyError] = field(default_factory=dict)  # study id -> why its rows cannot be used


def read_region_reports(
    path: Path, ignored: Counter, encoding: str = "utf-8", known_ids: Iterable[str] = ()
) -> RegionReports:
    """RadGenome-format region reports (``Volumename, Anatomy, Sentence``) keyed by study id.

    An empty Anatomy is the whole report; anatomy names are normalised to the 10 regions and
    the others (sub-anatomies such as 'left lung') are counted in ``ignored``. Several rows of
    one region are joined with a space; a row repeating an earlier one of its study (same
    anatomy and sentence) is dropped, counted and logged. Studies keep their first-appearance order.

    A study gets a ``problems`` entry instead of trusted text when its id cannot name a file
    (``bad_id``) or when one of its rows is damaged (``corrupt``): a row with another number of
    fields than the header, or a quoted field that runs over lines holding rows of studies (an
    unterminated quote: those rows are lost). Rows count as rows of studies when their first field
    ends in .nii/.nii.gz or is a study id of this CSV or of ``known_ids``.
    """
    header, rows = read_csv_rows(path, encoding)
    name_at, anatomy_at, sentence_at = _column_positions(path, header, REGION_REPORT_COLUMNS).values()
    known = {volume_id(_cell(row, name_at)) for row in rows} | set(known_ids)
    out = RegionReports()
    texts: dict[str, tuple[list[str], dict[str, list[str]]]] = {}  # id -> (whole sentences, region -> sentences)
    seen: set[tuple[str, str, str]] = set()
    duplicate_lines = []
    for row in rows:
        study = volume_id(_cell(row, name_at))
        if not study:
            ignored["row without Volumename"] += 1
            continue
        damage, victims = _row_damage(row, len(header), known)
        if damage:
            lines = (
                f"line {row.first_line}"
                if row.first_line == row.last_line
                else f"lines {row.first_line}-{row.last_line}"
            )
            for victim in dict.fromkeys([study, *victims]):
                out.problems.setdefault(victim, StudyError(path, f"{lines}: {damage}", kind="corrupt"))
            continue
        if (error := check_study_id(study, path, f"line {row.first_line}")) is not None:
            out.problems.setdefault(study, error)
            continue
        whole, regions = texts.setdefault(study, ([], {}))
        anatomy, sentence = _cell(row, anatomy_at).strip(), _cell(row, sentence_at).strip()
        if not sentence:
            continue
        if (study, anatomy.lower(), sentence) in seen:
            duplicate_lines.append(row.first_line)
            continue
        seen.add((study, anatomy.lower(), sentence))
        if not anatomy:
            whole.append(sentence)
        elif (region := canonical_region(anatomy)) is not None:
            regions.setdefault(region, []).append(sentence)
        else:
            ignored[f"anatomy '{anatomy}'"] += 1
    if duplicate_lines:
        ignored["duplicate report row (dropped)"] += len(duplicate_lines)
        shown = ", ".join(map(str, duplicate_lines[:10])) + (" ..." if len(duplicate_lines) > 10 else "")
        log.warning(
            "%s: %d rows repeat an earlier row of their study (same anatomy and sentence) and are dropped: lines %s",
            path,
            len(duplicate_lines),
            shown,
        )
    out.texts = {
        study: StudyText(
            " ".join(whole), {region: " ".join(regions[region]) for region in REGIONS if region in regions}
        )
        for study, (whole, regions) in texts.items()
    }
    return out


def _row_damage(row: CsvRow, n_columns: int, known: set[str]) -> tuple[str | None, list[str]]:
    """(what is wrong with a report CSV row, ids of the studies whose rows it swallowed); (None, []) when it is fine."""
    swallowed = []
    for text in row.fields:
        for line in text.splitlines()[1:]:
            first = next(csv.reader([line]), [""])[0].strip() if line.strip() else ""
            if first and (first.endswith(NIFTI_SUFFIXES) or volume_id(first) in known):
                swallowed.append(volume_id(first))
    if swallowed:
        return (
            f"a quoted field runs over {row.last_line - row.first_line + 1} lines and holds {len(swallowed)} rows of "
            f"studies {sorted(set(swallowed))} (an unterminated quote?): those rows are lost; fix the quote"
        ), swallowed
    if len(row.fields) != n_columns:
        fix = "quote fields that contain commas" if len(row.fields) > n_columns else "a field is missing"
        return f"the row has {len(row.fields)} fields but the header has {n_columns}: {fix}", []
    return None, []


def scan_mask_folder(folder: Path, ignored: Counter) -> MaskFolder:
    """The region files of a SAT-style folder (``<region>.nii.gz``, spaces or underscores).

    Other files are counted in ``ignored``; a missing folder or one without any region file
    is a ``missing_mask`` error, a zero-size region file an ``empty_file`` error.
    """
    require_folder(folder, what="mask folder", missing_kind="missing_mask")
    files: dict[str, Path] = {}
    for name in sorted(os.listdir(folder)):
        region = canonical_region(volume_id(name)) if name.endswith(NIFTI_SUFFIXES) else None
        if region is None:
            ignored[f"mask file '{name}'"] += 1
            continue
        if region in files:
            raise StudyError(
                folder, f"two mask files for region '{region}': {files[region].name} and {name}", kind="duplicate"
            )
        files[region] = require_file(folder / name, what=f"mask of region '{region}'", missing_kind="missing_mask")
    if not files:
        raise StudyError(
            folder,
            f"no region mask file in the folder (expected <region>.nii.gz for regions {list(REGIONS)})",
            kind="missing_mask",
        )
    return MaskFolder(folder, {region: files[region] for region in REGIONS if region in files})


def build_record(
    study_id: str,
    split: str,
    text: StudyText,
    text_source: Path,
    volume: Path,
    masks: Callable[[], MaskSource],
    ignored: Counter,
    labels: dict[str, int] | None = None,
) -> StudyRecord:
    """The checks every reader runs, cheapest first: region text, volume file, masks.

    ``masks`` is called only once the text and the volume passed. Region reports without a
    mask are dropped and counted in ``ignored``; a study left with none is skipped.
    """
    if not text.regions:
        raise StudyError(
            text_source,
            f"study '{study_id}' has no report sentence for any of the regions {list(REGIONS)}; "
            "region-guided training needs region reports (see data/README.md)",
            kind="no_region_report",
        )
    require_file(volume, what="volume")
    source = masks()
    region_reports = {region: report for region, report in text.regions.items() if region in source.regions}
    for region in text.regions.keys() - region_reports.keys():
        ignored[f"report of region '{region}' without a mask"] += 1
    if not region_reports:
        raise StudyError(
            source.location, f"none of the reported regions {list(text.regions)} has a mask", kind="missing_mask"
        )
    unmasked = tuple(region for region in text.regions if region not in region_reports)
    return StudyRecord(study_id, split, volume, source, region_reports, text.report, labels or {}, unmasked)


def find_duplicates(source: Path, keys: Iterable[tuple[str, str]]) -> dict[str, StudyError]:
    """A ``duplicate`` error for each study id that occurs more than once among ``(id, where)`` pairs.

    Every copy of such a study is skipped: which one is right cannot be told, and an id in two
    splits would leak test data into training.
    """
    places: dict[str, list[str]] = {}
    for key, where in keys:
        places.setdefault(key, []).append(where)
    return {
        key: StudyError(
            source,
            f"study id '{key}' appears {len(where)} times ({', '.join(where)}); ids must be unique",
            kind="duplicate",
        )
        for key, where in places.items()
        if len(where) > 1
    }
