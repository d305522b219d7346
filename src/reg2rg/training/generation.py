"""After training: generate the reports of a held-out split, write them as a predictions CSV and score them.

The CSV has the official columns (``AccNum``, ``GT_combined_report``, ``Pred_combined_report``), so
``scripts/evaluate.py`` (e.g. with the RadBERT labeler) can score it again later. The references are
the targets in canonical region order, region prefixes included, as the paper's evaluation reads them.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from reg2rg.data.dataset import CachedRegionDataset
from reg2rg.evaluation import Evaluation, evaluate_predictions_csv
from reg2rg.evaluation.inputs import GT_COLUMN, ID_COLUMN, PRED_COLUMN
from reg2rg.models import Reg2RG

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.csv"


def write_predictions(model: Reg2RG, dataset: CachedRegionDataset, path: Path, batch_size: int, num_workers: int,
                      generation: Mapping[str, Any]) -> Path:
    """Generate a report for every study of ``dataset`` (``generation``: ``Reg2RG.generate`` options)."""
    collator = model.collator()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=list)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([ID_COLUMN, GT_COLUMN, PRED_COLUMN])
        for samples in tqdm(loader, desc=f"generate {dataset.split}", unit="batch"):
            for sample, generated in zip(samples, model.generate_reports(samples, **generation), strict=True):
                writer.writerow([sample["study_id"], collator.target(sample), generated.text])
    return path


def generate_and_evaluate(model: Reg2RG, dataset: CachedRegionDataset, output_dir: Path, batch_size: int,
                          num_workers: int, generation: Mapping[str, Any], protocols: list[str]) -> Evaluation:
    """Predictions CSV and evaluation files (metrics.json, summary.md, tables, plots) under ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    predictions = write_predictions(model, dataset, output_dir / PREDICTIONS_FILE, batch_size, num_workers, generation)
    log.info("predictions for %d %s studies in %s", len(dataset), dataset.split, predictions)
    return evaluate_predictions_csv(predictions, output_dir / "evaluation", protocols=protocols)
