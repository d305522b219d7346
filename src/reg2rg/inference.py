"""Batched report generation for a dataset split into the official predictions CSV.

Columns: ``AccNum, GT_combined_report, Pred_combined_report`` (region prefixes kept, as in
the authors' files). Rows are appended batch by batch and flushed, so an interrupted run
resumes where it stopped: studies already in the CSV are skipped, and a last line cut off by
a crash is dropped. The generation settings go to ``<csv>.settings.json`` beside it.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

COLUMNS = ("AccNum", "GT_combined_report", "Pred_combined_report")


def _finished_ids(path: Path) -> set[str]:
    """Study ids already written; truncates a last row that a crash left without its newline."""
    if not path.is_file():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
        log.warning("%s: dropped an incomplete last row left by an interrupted run", path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames and tuple(reader.fieldnames) != COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames} are not {list(COLUMNS)}; choose another output file")
        return {row["AccNum"] for row in reader}


def generate_predictions(model, dataset, output: str | Path, batch_size: int = 4, num_workers: int = 0,
                         settings: Mapping[str, Any] | None = None, metadata: Mapping[str, Any] | None = None) -> Path:
    """Generate a report for every study of ``dataset`` (canonical region order) into ``output``.

    ``settings`` are ``Reg2RG.generate`` options (greedy by default); ``metadata`` (checkpoint,
    data, split) is recorded in the sidecar file with them.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    settings = dict(settings or {})
    done = _finished_ids(output)
    todo = [i for i, entry in enumerate(dataset.entries) if entry["study_id"] not in done]
    sidecar = {"settings": settings, **(metadata or {}), "studies": len(dataset), "resumed_with": len(done)}
    Path(f"{output}.settings.json").write_text(json.dumps(sidecar, indent=2, default=str))
    if not todo:
        log.info("%s already holds all %d studies", output, len(dataset))
        return output
    loader = DataLoader(Subset(dataset, todo), batch_size=batch_size, num_workers=num_workers, collate_fn=list)
    new_file = not output.is_file() or output.stat().st_size == 0
    with open(output, "a", newline="", encoding="utf-8") as f, tqdm(total=len(todo), desc="generate", unit="study") as bar:
        writer = csv.writer(f)
        if new_file:
            writer.writerow(COLUMNS)
        for samples in loader:
            with torch.inference_mode():
                generations = model.generate_reports(samples, **settings)
            for sample, generation in zip(samples, generations):
                truth = model.template.target(sample["regions"], sample["region_reports"], rra=True)
                writer.writerow((sample["study_id"], truth, generation.text))
            f.flush()
            os.fsync(f.fileno())
            bar.update(len(samples))
    return output


def generate_from_config(cfg) -> Path:
    """``scripts/generate.py``: checkpoint + data config + split -> predictions CSV."""
    from reg2rg.data.dataset import CachedRegionDataset
    from reg2rg.data.prepare import prepare_dataset, preprocessing_config
    from reg2rg.models import from_pretrained

    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = from_pretrained(cfg.checkpoint, device=device)
    prepare_dataset(cfg.data, [cfg.split], workers=cfg.num_workers or 1, synthesize=False)  # generate reads what is there
    dataset = CachedRegionDataset(cfg.data.cache_dir, cfg.split, preprocessing_config(cfg.data), lfd=cfg.data.lfd, shuffle_regions=False)
    metadata = {"checkpoint": str(cfg.checkpoint), "data": cfg.data.name, "split": cfg.split, "device": device}
    return generate_predictions(model, dataset, cfg.output, cfg.batch_size, cfg.num_workers, dict(cfg.generation), metadata)
