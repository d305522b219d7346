"""MedRegion-CT as a model family of the shared training run (``family: medregion``): the testbed and its feature
cache, the tokenizer corpus, and the held-out generation scored by ``reg2rg.medregion.evaluation``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from reg2rg.files import atomic_write_bytes
from reg2rg.medregion.collate import TokenPlan
from reg2rg.medregion.dataset import MedRegionDataset, prepare_features
from reg2rg.medregion.evaluation import score, summary_markdown
from reg2rg.medregion.inference import generate_reports
from reg2rg.medregion.model import MedRegionCT
from reg2rg.medregion.prompt import target_text
from reg2rg.training.family import Family
from reg2rg.training.generation import EVALUATION_DIR

log = logging.getLogger(__name__)


def prepare(cfg: DictConfig, splits: list[str]) -> dict[str, dict[str, Any]]:
    return prepare_features(OmegaConf.to_container(cfg.data, resolve=True), splits)


def dataset(cfg: DictConfig, split: str, training: bool = False) -> MedRegionDataset:
    return MedRegionDataset(cfg.data.cache_dir, split)


def tokenizer_corpus(cfg: DictConfig, train_set: MedRegionDataset) -> list[str]:
    """Each training study's prompt text (attributes included, placeholders left out) and target."""
    plan = TokenPlan(depth=0, regions=6, per_region=0, use_mask=False, use_attributes=True)
    return [
        f"{plan.prompt({**entry, 'present': [True] * 6})}\n{target_text(entry['region_reports'])}"
        for entry in train_set.entries
    ]


def evaluate(cfg: DictConfig, model: MedRegionCT, run_dir: Path, checkpoint: Path | None) -> dict[str, Any]:
    """Generate the evaluation split's reports, write them and their scores under ``run_dir/evaluation``."""
    split = dataset(cfg, cfg.evaluation.split)
    size = int(cfg.evaluation.batch_size)
    max_new_tokens = int(cfg.evaluation.generation.get("max_new_tokens") or 256)
    predictions = []
    for start in range(0, len(split), size):
        samples = [split[i] for i in range(start, min(start + size, len(split)))]
        predictions += generate_reports(model, samples, max_new_tokens)
    metrics = score(predictions, split.entries)
    metrics["checkpoint"] = str(checkpoint) if checkpoint else None
    folder = run_dir / EVALUATION_DIR
    rows = [
        {"study_id": e["study_id"], "prediction": p["text"], "reference": target_text(e["region_reports"])}
        for p, e in zip(predictions, split.entries, strict=True)
    ]
    atomic_write_bytes(folder / "predictions.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8"))
    atomic_write_bytes(folder / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode("utf-8"))
    summary = summary_markdown(metrics)
    atomic_write_bytes(folder / "summary.md", summary.encode("utf-8"))
    print(summary)
    return metrics


FAMILY = Family(prepare=prepare, dataset=dataset, tokenizer_corpus=tokenizer_corpus, evaluate=evaluate)
