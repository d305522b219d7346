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
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from reg2rg.data.cache import CACHE_VERSION, build_study, precomputed_params, read_meta, source_signature
from reg2rg.data.errors import SkipLog, StudyError
from reg2rg.data.preprocessing import PreprocessConfig
from reg2rg.data.records import StudyRecord
from reg2rg.files import atomic_write_bytes

log = logging.getLogger(__name__)


def study_file(cache_dir: Path, study_id: str) -> Path:
    return Path(cache_dir) / "studies" / f"{study_id}.npz"


def _current_meta(path: Path, record: StudyRecord, cfg: PreprocessConfig) -> dict | None:
    """The meta of a finished cache file built from the record's present source files with these parameters;
    None when it must be (re)built."""
    try:
        meta = read_meta(path)
    except Exception:  # missing, truncated or foreign: rebuild it
        return None
    source = source_signature(record)
    current = (meta.get("version") == CACHE_VERSION and meta.get("foreground_hu") == cfg.foreground_hu
               and meta.get("precomputed") == precomputed_params(cfg)
               and source is not None and meta.get("source") == source)
    return meta if current else None


def _build_one(record: StudyRecord, path: Path, cfg: PreprocessConfig, grid: str) -> tuple[str, dict]:
    """Worker: ('built', meta) or ('skipped', error fields); never raises for bad input."""
    import torch

    torch.set_num_threads(1)
    try:
        return "built", build_study(record, path, cfg, grid)
    except StudyError as error:
        return "skipped", {"path": error.path, "problem": error.problem, "kind": error.kind}


def _source_bytes(record: StudyRecord) -> int:
    """Size of the study's source files (volume + masks) on disk."""
    return sum(p.stat().st_size for p in record.source_files() if p.is_file())


def build_cache(records: list[StudyRecord], cache_dir: str | Path, split: str, cfg: PreprocessConfig,
                workers: int = 1, grid: str = "resample", skips: SkipLog | None = None) -> dict:
    """Cache every record of ``split``; bad studies are skipped (or raise, under the strict policy)."""
    cache_dir = Path(cache_dir)
    skips = skips if skips is not None else SkipLog()
    start = time.perf_counter()
    todo, entries, reused = [], {}, 0
    for record in records:
        meta = _current_meta(study_file(cache_dir, record.study_id), record, cfg)
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
            finish(record, *_build_one(record, study_file(cache_dir, record.study_id), cfg, grid))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_build_one, r, study_file(cache_dir, r.study_id), cfg, grid): r for r in todo}
            for future in as_completed(futures):
                finish(futures[future], *future.result())
                bar.update()
    bar.close()

    ordered = [entries[r.study_id] for r in records if r.study_id in entries]
    write_index(cache_dir / f"{split}.jsonl", ordered)
    cache_bytes = sum(study_file(cache_dir, r.study_id).stat().st_size for r, _ in ordered)
    source_bytes = sum(_source_bytes(r) for r, _ in ordered)
    report = {
        "studies": len(records),
        "usable": len(ordered),
        "built": len(ordered) - reused,
        "reused": reused,
        "skipped": skips.counts(),
        "skips": skips.skipped,
        "dropped_regions": sum(len(meta["dropped"]) for _, meta in ordered),
        "seconds": round(time.perf_counter() - start, 2),
        "cache_bytes": cache_bytes,
        "source_bytes": source_bytes,
        "preprocessing": asdict(cfg),
    }
    _update_report(cache_dir / "preprocess_report.json", split, report)
    log.info("%s: %d usable of %d studies (%d built, %d reused); %s", split, len(ordered), len(records), report["built"], reused, skips.summary())
    return report


def write_index(path: Path, entries: list[tuple[StudyRecord, dict]]) -> None:
    """One JSON line per usable study: its cache file, usable regions, reports and labels."""
    lines = []
    for record, meta in entries:
        lines.append(json.dumps({
            "study_id": record.study_id,
            "file": f"studies/{record.study_id}.npz",
            "regions": list(meta["regions"]),
            "region_reports": record.region_reports,
            "report": record.report,
            "labels": record.labels,
        }))
    atomic_write_bytes(path, ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))


def read_index(cache_dir: str | Path, split: str) -> list[dict]:
    path = Path(cache_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no cache index for split {split!r}; run scripts/preprocess.py first")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _update_report(path: Path, split: str, report: dict) -> None:
    existing = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    existing[split] = report
    atomic_write_bytes(path, json.dumps(existing, indent=2).encode("utf-8"))
