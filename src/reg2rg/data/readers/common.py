"""What the study readers share: the index they return and their cheap checks.

Readers only look at what is cheap to check (files exist and are not empty, CSV columns, text
decodes, ids are unique); decoding volumes and masks happens later, in preprocessing.
"""

from __future__ import annotations

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
from reg2rg.data.records import MaskFolder, MaskSource, StudyRecord
from reg2rg.data.volumes import NIFTI_SUFFIXES, require_file

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
        """Append ``build(*args)``; a ``StudyError`` is recorded as a skip (raised under policy strict)."""
        try:
            self.records.append(build(*args))
        except StudyError as error:
            self.skips.record(study_id, error)

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
    """Study id of a volume file name: ``"train_1_a_1.nii.gz"`` -> ``"train_1_a_1"``."""
    name = os.path.basename(name.strip())
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


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


def read_table(path: Path, required: Sequence[str], encoding: str = "utf-8") -> pd.DataFrame:
    """A CSV as strings ('' for empty cells); ``required`` columns are matched case-insensitively
    and renamed to the spelling given. Missing columns raise, naming them."""
    try:
        table = pd.read_csv(io.StringIO(read_text(path, encoding)), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise StudyError(path, f"cannot parse the CSV: {error}", kind="corrupt") from error
    by_key = {str(column).strip().lower(): column for column in table.columns}
    missing = [column for column in required if column.lower() not in by_key]
    if missing:
        raise StudyError(path, f"missing column(s) {missing}; the CSV has {list(table.columns)}", kind="columns")
    return table.rename(columns={by_key[column.lower()]: column for column in required})


def read_region_reports(path: Path, ignored: Counter, encoding: str = "utf-8") -> dict[str, StudyText]:
    """RadGenome-format region reports (``Volumename, Anatomy, Sentence``) keyed by study id.

    An empty Anatomy is the whole report; anatomy names are normalised to the 10 regions and
    the others (sub-anatomies such as 'left lung') are counted in ``ignored``. Several rows of
    one region are joined with a space. Studies keep their first-appearance order.
    """
    table = read_table(path, REGION_REPORT_COLUMNS, encoding)
    texts: dict[str, tuple[list[str], dict[str, list[str]]]] = {}  # id -> (whole sentences, region -> sentences)
    for name, anatomy, sentence in zip(table["Volumename"], table["Anatomy"], table["Sentence"]):
        study = volume_id(name)
        if not study:
            ignored["row without Volumename"] += 1
            continue
        whole, regions = texts.setdefault(study, ([], {}))
        anatomy, sentence = anatomy.strip(), sentence.strip()
        if not sentence:
            continue
        if not anatomy:
            whole.append(sentence)
        elif (region := canonical_region(anatomy)) is not None:
            regions.setdefault(region, []).append(sentence)
        else:
            ignored[f"anatomy '{anatomy}'"] += 1
    return {
        study: StudyText(" ".join(whole), {region: " ".join(regions[region]) for region in REGIONS if region in regions})
        for study, (whole, regions) in texts.items()
    }


def scan_mask_folder(folder: Path, ignored: Counter) -> MaskFolder:
    """The region files of a SAT-style folder (``<region>.nii.gz``, spaces or underscores).

    Other files are counted in ``ignored``; a missing folder or one without any region file
    is a ``missing_mask`` error, a zero-size region file an ``empty_file`` error.
    """
    if not folder.is_dir():
        raise StudyError(folder, "mask folder not found (check mask_root and the layout in data/README.md)", kind="missing_mask")
    files: dict[str, Path] = {}
    for name in sorted(os.listdir(folder)):
        region = canonical_region(volume_id(name)) if name.endswith(NIFTI_SUFFIXES) else None
        if region is None:
            ignored[f"mask file '{name}'"] += 1
            continue
        if region in files:
            raise StudyError(folder, f"two mask files for region '{region}': {files[region].name} and {name}", kind="duplicate")
        files[region] = require_file(folder / name, what=f"mask of region '{region}'", missing_kind="missing_mask")
    if not files:
        raise StudyError(folder, f"no region mask file in the folder (expected <region>.nii.gz for regions {list(REGIONS)})", kind="missing_mask")
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
        raise StudyError(source.location, f"none of the reported regions {list(text.regions)} has a mask", kind="missing_mask")
    return StudyRecord(study_id, split, volume, source, region_reports, text.report, labels or {})


def find_duplicates(source: Path, keys: Iterable[tuple[str, str]]) -> dict[str, StudyError]:
    """A ``duplicate`` error for each study id that occurs more than once among ``(id, where)`` pairs.

    Every copy of such a study is skipped: which one is right cannot be told, and an id in two
    splits would leak test data into training.
    """
    places: dict[str, list[str]] = {}
    for key, where in keys:
        places.setdefault(key, []).append(where)
    return {
        key: StudyError(source, f"study id '{key}' appears {len(where)} times ({', '.join(where)}); ids must be unique", kind="duplicate")
        for key, where in places.items()
        if len(where) > 1
    }
