"""Build the preprocessing cache for a dataset split: parallel, resumable, never a half file.

Layout of a cache folder::

    <cache_dir>/studies/<study_id>.npz     one per usable study (see cache.py)
    <cache_dir>/<split>.jsonl              the split's index: file, region reports, labels
    <cache_dir>/preprocess_report.json     per split: built / reused / skipped (with reasons)
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from reg2rg.data.cache import CACHE_VERSION, build_study, precomputed_params, read_meta, source_signature
from reg2rg.data.errors import MAX_VOXELS, SkipLog, StudyError
from reg2rg.data.preprocessing import PreprocessConfig
from reg2rg.data.records import SAFE_ID_RULE, StudyRecord, unsafe_id_reason
from reg2rg.files import atomic_write_bytes

log = logging.getLogger(__name__)


def study_file(cache_dir: str | Path, study_id: str) -> Path:
    """``<cache_dir>/studies/<study_id>.npz``; an id that is not a plain file name (it could lead out of the
    cache folder) is a ``bad_id`` StudyError."""
    studies = Path(cache_dir) / "studies"
    reason = unsafe_id_reason(study_id)
    if reason is not None:
        raise StudyError(studies, f"{reason}, so it cannot name a cache file: {SAFE_ID_RULE}", kind="bad_id")
    return studies / f"{study_id}.npz"


def _current_meta(path: Path, record: StudyRecord, cfg: PreprocessConfig, grid: str) -> tuple[dict | None, str | None]:
    """(meta, None) for a finished cache file of this record, built from its present source files with these
    parameters; else (None, damage) and it must be (re)built: ``damage`` is "unreadable" or "another study"
    (logged with the file), None when the file is absent or out of date."""
    if not path.is_file():
        return None, None
    try:
        meta = read_meta(path)
    except Exception as error:  # noqa: BLE001 - truncated, damaged or not a cache file: rebuild it
        log.warning("%s: unreadable cache file (%s: %s); rebuilding it", path, type(error).__name__, error)
        return None, "unreadable"
    if meta.get("study_id") != record.study_id:
        log.warning(
            "%s: the cache file holds study %r, not %r; rebuilding it", path, meta.get("study_id"), record.study_id
        )
        return None, "another study"
    source = source_signature(record)
    current = (
        meta.get("version") == CACHE_VERSION
        and meta.get("foreground_hu") == cfg.foreground_hu
        and meta.get("precomputed") == precomputed_params(cfg)
        and source is not None
        and meta.get("source") == source
        and not (grid == "reject" and meta.get("resampled"))
    )
    return (meta, None) if current else (None, None)


def _build_one(record: StudyRecord, path: Path, cfg: PreprocessConfig, grid: str, max_voxels: int) -> tuple[str, dict]:
    """Worker: ('built', meta) or ('skipped', error fields); never raises for one study's problem."""
    import torch

    torch.set_num_threads(1)
    try:
        return "built", build_study(record, path, cfg, grid, max_voxels)
    except StudyError as error:
        return "skipped", {"path": error.path, "problem": error.problem, "kind": error.kind}
    except Exception as error:  # noqa: BLE001 - whatever else one study's files cause, the build goes on
        log.debug("study %s failed", record.study_id, exc_info=True)
        problem = (
            f"{type(error).__name__} while preprocessing the study (volume {record.volume}, masks "
            f"{record.masks.location}): {error}"
        )
        return "skipped", {"path": str(record.volume), "problem": problem, "kind": "error"}


def _source_bytes(record: StudyRecord) -> int:
    """Size of the study's source files (volume + masks) on disk."""
    return sum(p.stat().st_size for p in record.source_files() if p.is_file())


def build_cache(
    records: list[StudyRecord],
    cache_dir: str | Path,
    split: str,
    cfg: PreprocessConfig,
    workers: int = 1,
    grid: str = "reject",
    skips: SkipLog | None = None,
    max_voxels: int = MAX_VOXELS,
    ignored: Mapping[str, int] | None = None,
) -> dict:
    """Cache every record of ``split``; bad studies are skipped (or raise, under the strict policy).

    ``skips`` may already hold the reader's skips: they count among the split's studies in the report.
    ``grid``: masks on another grid are rejected ("reject") or resampled ("resample", counted in the report).
    ``max_voxels``: NIfTI headers claiming more voxels are rejected before decoding.
    ``ignored``: the reader's counts of unused names, written to the report.
    """
    cache_dir = Path(cache_dir)
    skips = skips if skips is not None else SkipLog()
    skipped_by_reader = len(skips.skipped)
    start = time.perf_counter()
    todo, entries, reused, damaged = [], {}, 0, Counter()
    for record in records:
        try:
            path = study_file(cache_dir, record.study_id)
        except StudyError as error:
            skips.record(record.study_id, error)
            continue
        meta, damage = _current_meta(path, record, cfg, grid)
        if damage is not None:
            damaged[damage] += 1
        if meta is not None:
            entries[record.study_id] = (record, meta)
            reused += 1
        else:
            todo.append(record)

    def finish(record: StudyRecord, status: str, result: dict) -> None:
        if status == "built":
            entries[record.study_id] = (record, result)
        else:
            skips.record(record.study_id, StudyError(result["path"], result["problem"], result["kind"]))

    bar = tqdm(total=len(todo), desc=f"preprocess {split}", unit="study", disable=not todo)
    if workers <= 1:
        for record in todo:
            finish(record, *_build_one(record, study_file(cache_dir, record.study_id), cfg, grid, max_voxels))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {
                pool.submit(_build_one, r, study_file(cache_dir, r.study_id), cfg, grid, max_voxels): r for r in todo
            }
            for future in as_completed(futures):
                finish(futures[future], *future.result())
                bar.update()
    bar.close()

    ordered = [entries[r.study_id] for r in records if r.study_id in entries]
    write_index(cache_dir / f"{split}.jsonl", ordered)
    cache_bytes = sum(study_file(cache_dir, r.study_id).stat().st_size for r, _ in ordered)
    source_bytes = sum(_source_bytes(r) for r, _ in ordered)
    left_out = {
        record.study_id: {**{region: "no mask file" for region in record.unmasked_regions}, **meta["dropped"]}
        for record, meta in ordered
        if record.unmasked_regions or meta["dropped"]
    }
    resampled = {record.study_id: meta["resampled"] for record, meta in ordered if meta["resampled"]}
    report = {
        "studies": len(records) + skipped_by_reader,
        "usable": len(ordered),
        "built": len(ordered) - reused,
        "reused": reused,
        "skipped_by_reader": skipped_by_reader,
        "skipped": skips.counts(),
        "skips": skips.skipped,
        "damaged_cache_files_rebuilt": dict(damaged),
        "dropped_regions": sum(len(meta["dropped"]) for _, meta in ordered),
        "regions_left_out": left_out,
        "grid": grid,
        "resampled": {"studies": len(resampled), "masks": sum(map(len, resampled.values())), "regions": resampled},
        "ignored": dict(ignored or {}),
        "seconds": round(time.perf_counter() - start, 2),
        "cache_bytes": cache_bytes,
        "source_bytes": source_bytes,
        "preprocessing": asdict(cfg),
    }
    _update_report(cache_dir / "preprocess_report.json", split, report)
    notes = "".join(
        [
            f"; {report['resampled']['masks']} masks of {len(resampled)} studies resampled to their volume grid"
            if resampled
            else "",
            f"; damaged cache files rebuilt: {dict(damaged)}" if damaged else "",
        ]
    )
    log.info(
        "%s: %d usable of %d studies (%d built, %d reused); %s%s",
        split,
        len(ordered),
        report["studies"],
        report["built"],
        reused,
        skips.summary(),
        notes,
    )
    return report


def write_index(path: Path, entries: list[tuple[StudyRecord, dict]]) -> None:
    """One JSON line per usable study: its cache file, usable regions, reports and labels."""
    lines = []
    for record, meta in entries:
        lines.append(
            json.dumps(
                {
                    "study_id": record.study_id,
                    "file": _index_file(record.study_id),
                    "regions": list(meta["regions"]),
                    "region_reports": record.region_reports,
                    "report": record.report,
                    "labels": record.labels,
                }
            )
        )
    atomic_write_bytes(path, ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))


def _index_file(study_id: str) -> str:
    """A study's cache file as the index names it, relative to the cache folder."""
    return f"studies/{study_id}.npz"


def read_index(cache_dir: str | Path, split: str) -> list[dict]:
    """The split's index entries; an entry whose file is not its study's own cache file is an error."""
    path = Path(cache_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no cache index for split {split!r}; run scripts/preprocess.py first")
    entries = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            entry = json.loads(line)
            study_id = str(entry.get("study_id"))
            if unsafe_id_reason(study_id) is not None or entry.get("file") != _index_file(study_id):
                raise ValueError(
                    f"{path}: line {number} names file {entry.get('file')!r} for study {study_id!r}; "
                    f"expected {_index_file(study_id)!r}: the index was edited or damaged; rebuild the cache"
                )
            entries.append(entry)
    return entries


def _update_report(path: Path, split: str, report: dict) -> None:
    existing = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    existing[split] = report
    atomic_write_bytes(path, json.dumps(existing, indent=2).encode("utf-8"))
