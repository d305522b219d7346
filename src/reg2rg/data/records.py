"""One validated record per study: where its volume, masks and reports are."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# A study id names its cache file, so it must be a plain file name (no '.', '..', hidden file or separator).
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")
SAFE_ID_RULE = "use letters, digits, '.', '_' and '-' only, not starting with '.' (at most 200 characters)"


def unsafe_id_reason(study_id: str) -> str | None:
    """Why ``study_id`` cannot name a file in the cache folder, or None when it can."""
    if _SAFE_ID.fullmatch(study_id):
        return None
    if "/" in study_id or "\\" in study_id:
        return f"study id {study_id!r} contains a path separator"
    if study_id in (".", ".."):
        return f"study id {study_id!r} names a folder, not a study"
    if len(study_id) > 200:
        return f"study id of {len(study_id)} characters is longer than 200"
    return f"study id {study_id!r} is not a plain file name"


@dataclass(frozen=True)
class MaskFolder:
    """SAT-style masks: one binary NIfTI per region, ``files[region] -> path``."""

    folder: Path
    files: dict[str, Path]

    @property
    def location(self) -> Path:
        """Where the masks are, for messages."""
        return self.folder

    @property
    def regions(self) -> tuple[str, ...]:
        """The regions this source has a mask for."""
        return tuple(self.files)


@dataclass(frozen=True)
class LabelMap:
    """One integer label map plus ``classes[region] -> label values`` that make up each region."""

    path: Path
    classes: dict[str, tuple[int, ...]]

    @property
    def location(self) -> Path:
        """Where the masks are, for messages."""
        return self.path

    @property
    def regions(self) -> tuple[str, ...]:
        """The regions this source has a mask for."""
        return tuple(self.classes)


MaskSource = MaskFolder | LabelMap


@dataclass(frozen=True)
class StudyRecord:
    """A study as readers produce it; ``region_reports`` holds canonical region names -> non-empty text."""

    study_id: str
    split: str
    volume: Path
    masks: MaskSource
    region_reports: dict[str, str]
    report: str = ""
    labels: dict[str, int] = field(default_factory=dict)
    unmasked_regions: tuple[str, ...] = ()  # reported regions left out because they have no mask

    def mask_only_regions(self) -> tuple[str, ...]:
        """Regions with a mask but no report (the official evaluation reports them with an empty reference)."""
        return tuple(region for region in self.masks.regions if region not in self.region_reports)

    def source_files(self) -> list[Path]:
        """The files the study is read from: the volume (each file of a DICOM folder) and its region masks."""
        paths = [Path(self.volume)]
        if isinstance(self.masks, MaskFolder):
            paths += [Path(p) for p in self.masks.files.values()]
        else:
            paths.append(Path(self.masks.path))
        return [q for p in paths for q in (sorted(p.iterdir()) if p.is_dir() else [p])]
