"""Report pairs to evaluate, from lists or a predictions CSV, with every bad row named and counted.

Policy (docs/evaluation.md): a missing file or column, an unreadable CSV or no usable row at all
raises ``ValueError`` with the fix. Row problems never stop the evaluation and never pass silently;
each kind is counted (metrics.json "input") and reported once with example ids:

- ``empty_reference``: ground truth empty or missing -> row left out (nothing to score against);
- ``empty_prediction``: prediction empty or missing -> kept and scored 0 on every metric;
- ``empty_id``: no id -> kept, named "row <n>" (its row number, from 1);
- ``duplicate_id``: an id seen before -> later rows left out;
- ``non_utf8``: undecodable bytes -> replaced by U+FFFD, row kept;
- ``reference_without_region_prefix`` / ``prediction_without_region_prefix``: no "The region <i> is
  <area>:" header -> kept; whole-report metrics are unaffected, region recognition counts the
  prediction's regions as missed and region-level tables skip it.
"""

from __future__ import annotations

import codecs
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reg2rg.evaluation.text import has_region_prefix

log = logging.getLogger(__name__)

ID_COLUMN, GT_COLUMN, PRED_COLUMN = "AccNum", "GT_combined_report", "Pred_combined_report"
REPLACEMENT_CHARACTER = "\ufffd"
EXAMPLES = 5

PROBLEMS: dict[str, str] = {
    "empty_reference": "ground truth empty or missing: row left out",
    "empty_prediction": "prediction empty or missing: kept, scored 0",
    "empty_id": "id empty: kept, named by its row number",
    "duplicate_id": "id seen in an earlier row: row left out",
    "non_utf8": "bytes that are not UTF-8, replaced by U+FFFD: kept",
    "reference_without_region_prefix": "ground truth without any region prefix: kept, no region-level scores",
    "prediction_without_region_prefix": "prediction without any region prefix: kept, its regions count as missed",
}


@dataclass
class ReportPairs:
    """Validated pairs plus what was wrong with the input (``problems[kind] -> example ids``)."""

    ids: list[str]
    references: list[str]
    predictions: list[str]
    rows: int
    problems: dict[str, list[str]] = field(default_factory=dict)

    def problem_counts(self) -> dict[str, int]:
        return {kind: len(ids) for kind, ids in self.problems.items()}

    def messages(self) -> list[str]:
        """One line per problem kind: what was done and the first few ids."""
        lines = []
        for kind, ids in self.problems.items():
            examples = ", ".join(ids[:EXAMPLES]) + (", ..." if len(ids) > EXAMPLES else "")
            lines.append(f"{kind} ({len(ids)} rows): {PROBLEMS[kind]} (ids {examples})")
        return lines

    def metrics(self) -> dict:
        return {"rows": self.rows, "evaluated": len(self.ids), "problems": self.problem_counts()}


def _text(value: object) -> str:
    """A cell as text: None and NaN are empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def validate_pairs(
    references: Sequence[object],
    predictions: Sequence[object],
    ids: Sequence[object] | None = None,
    problems: dict[str, list[str]] | None = None,
) -> ReportPairs:
    """Apply the row policy to parallel lists; ``problems`` may carry ones found while reading."""
    ids = [_text(i) for i in (ids if ids is not None else range(len(references)))]
    if not len(references) == len(predictions) == len(ids):
        raise ValueError(f"got {len(references)} references, {len(predictions)} predictions and {len(ids)} ids")
    found: dict[str, list[str]] = {kind: list(rows) for kind, rows in (problems or {}).items()}
    for row, sample_id in enumerate(ids):
        if not sample_id:
            ids[row] = f"row {row + 1}"
            found.setdefault("empty_id", []).append(ids[row])
    kept = ReportPairs([], [], [], rows=len(ids))
    seen: set[str] = set()
    for sample_id, reference, prediction in zip(ids, map(_text, references), map(_text, predictions)):
        checks = {
            "duplicate_id": sample_id in seen,
            "empty_reference": not reference,
            "empty_prediction": bool(reference) and not prediction,
            "reference_without_region_prefix": bool(reference) and not has_region_prefix(reference),
            "prediction_without_region_prefix": bool(prediction) and not has_region_prefix(prediction),
        }
        for kind in (kind for kind, failed in checks.items() if failed):
            found.setdefault(kind, []).append(sample_id)
        seen.add(sample_id)
        if checks["duplicate_id"] or checks["empty_reference"]:
            continue
        kept.ids.append(sample_id)
        kept.references.append(reference)
        kept.predictions.append(prediction)
    kept.problems = {kind: found[kind] for kind in PROBLEMS if kind in found}
    for message in kept.messages():
        log.warning(message)
    if not kept.ids:
        raise ValueError(f"no report pair can be evaluated: {'; '.join(kept.messages()) or 'the input is empty'}")
    return kept


def read_predictions(
    path: str | Path, id_column: str = ID_COLUMN, gt_column: str = GT_COLUMN, pred_column: str = PRED_COLUMN
) -> ReportPairs:
    """Read a predictions CSV (the official columns by default) and validate its rows."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"predictions file {path} does not exist")
    raw = path.read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        log.warning("%s is UTF-16 encoded (it starts with a UTF-16 byte-order mark): read as UTF-16", path)
        raw = raw.decode("utf-16").encode("utf-8")
    elif raw[:2000].count(b"\x00") > len(raw[:2000]) // 4:
        raise ValueError(f"{path} looks UTF-16 or UTF-32 encoded without a byte-order mark: save it as UTF-8")
    try:
        text, garbled_file = raw.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        text, garbled_file = raw.decode("utf-8-sig", errors="replace"), True
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"{path} is not a readable CSV: {error}") from error
    missing = [column for column in (gt_column, pred_column) if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} has no column {missing}; its columns are {list(frame.columns)} "
            "(choose others with gt_column=... pred_column=...)"
        )
    if id_column in frame.columns:
        ids = frame[id_column].tolist()
    else:
        log.warning("%s has no id column %r; rows are identified by their number", path, id_column)
        ids = [str(i) for i in range(len(frame))]
    problems = None
    if garbled_file:
        texts = zip(frame[gt_column], frame[pred_column])
        problems = {"non_utf8": [str(i) for i, row in zip(ids, texts) if REPLACEMENT_CHARACTER in "".join(row)]}
    return validate_pairs(frame[gt_column].tolist(), frame[pred_column].tolist(), ids, problems)
