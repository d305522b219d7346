"""After training: generate the reports of a held-out split, write them as a predictions CSV and score them.

The CSV has the official columns (``AccNum``, ``GT_combined_report``, ``Pred_combined_report``), so
``scripts/evaluate.py`` (e.g. with the RadBERT labeler) can score it again later. The references are
the targets in canonical region order, region prefixes included as the paper's evaluation reads them
(without them for a model trained without RRA).
It is written by ``reg2rg.inference.generate_predictions``: a run whose evaluation was interrupted
continues it (with ``resume=latest``), and predictions of other weights are begun afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reg2rg.data.dataset import CachedRegionDataset
from reg2rg.evaluation import Evaluation, evaluate_predictions_csv
from reg2rg.inference import generate_predictions
from reg2rg.models import Reg2RG
from reg2rg.models.checkpoint import checkpoint_record

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.csv"
EVALUATION_DIR = "evaluation"


def generate_and_evaluate(
    model: Reg2RG,
    dataset: CachedRegionDataset,
    output_dir: Path,
    batch_size: int,
    num_workers: int,
    generation: Mapping[str, Any],
    protocols: list[str],
    checkpoint: Path | None = None,
    merge_lora: bool = True,
) -> Evaluation:
    """Predictions CSV of ``checkpoint``'s model and evaluation files (metrics.json, summary.md, tables, plots).

    ``merge_lora``: generate with LoRA merged into the LLM's weights (restored exactly afterwards).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    metadata = checkpoint_record(checkpoint) if checkpoint else {}
    predictions = generate_predictions(
        model,
        dataset,
        output_dir / PREDICTIONS_FILE,
        batch_size,
        num_workers,
        dict(generation),
        metadata,
        restart_if_changed=True,
        merge_lora=merge_lora,
    )
    log.info("predictions for %d %s studies in %s", len(dataset), dataset.split, predictions)
    return evaluate_predictions_csv(predictions, output_dir / EVALUATION_DIR, protocols=protocols)
