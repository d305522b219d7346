"""ISRG-CT as a model family of the shared training run (``family: isrg``): lesion studies prepared into the
cache, lesion-centred crops for the trainer, and the click-by-click evaluation of the seen and held-out types."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ..training.family import Family
from ..training.generation import EVALUATION_DIR
from .data import LesionCrops
from .evaluation import evaluate_clicks
from .interactive import ClickTrainedModel
from .metrics import majority_classes
from .studies import EVALUATION_SPLITS, load_studies, prepare_studies
from .summary import split_metrics, summary_markdown, write_evaluation

log = logging.getLogger(__name__)


def prepare(cfg: DictConfig, splits: list[str]) -> dict[str, dict[str, Any]]:
    wanted = list(dict.fromkeys([*splits, *(EVALUATION_SPLITS if cfg.evaluation.enabled else ())]))
    data = OmegaConf.to_container(cfg.data, resolve=True)
    if data["source"] != "phantoms":
        wanted.remove("zeroshot")  # a dataset folder has no held-out lesion types
    return prepare_studies(data, wanted)


def dataset(cfg: DictConfig, split: str, training: bool = False) -> LesionCrops:
    studies = load_studies(cfg.data.cache_dir, split)
    return LesionCrops(studies, cfg.model.crop_size, training, cfg.data.jitter, cfg.seed)


def evaluate(cfg: DictConfig, model: ClickTrainedModel, run_dir: Path, checkpoint: Path | None) -> dict[str, Any]:
    """Click through the evaluation split (and the zeroshot split, when prepared); write run_dir/evaluation."""
    settings = cfg.evaluation
    clicks, table_click = int(settings.clicks), int(settings.table_click)
    majority = majority_classes(np.stack([s.attributes for s in load_studies(cfg.data.cache_dir, "train")]))
    metrics: dict[str, Any] = {"method": model.method, "clicks": clicks, "table_click": table_click}
    records = {}
    for split in [settings.split, "zeroshot"]:
        if split == "zeroshot" and not (Path(cfg.data.cache_dir) / "zeroshot.npz").is_file():
            continue
        records[split] = evaluate_clicks(model, load_studies(cfg.data.cache_dir, split), clicks)
        metrics[split] = split_metrics(records[split], majority, table_click)
    metrics["checkpoint"] = str(checkpoint) if checkpoint else None
    write_evaluation(run_dir / EVALUATION_DIR, metrics, records)
    print(summary_markdown(metrics))
    return metrics


FAMILY = Family(prepare=prepare, dataset=dataset, tokenizer_corpus=None, evaluate=evaluate)
