"""Reg2RG as a model family of the shared training run: the region cache, its tokenizer corpus, and the
held-out generation scored by ``reg2rg.evaluation``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed
from omegaconf import DictConfig, OmegaConf

from reg2rg.data.dataset import CachedRegionDataset, dataset_from_config
from reg2rg.data.prepare import prepare_dataset
from reg2rg.evaluation.report import terminal_summary
from reg2rg.models import Reg2RG
from reg2rg.models.decoding import decoding_options
from reg2rg.text import PromptTemplate

from .family import Family
from .generation import EVALUATION_DIR, generate_and_evaluate

log = logging.getLogger(__name__)


def prepare(cfg: DictConfig, splits: list[str]) -> dict[str, dict[str, Any]]:
    """Generate the synthetic data if asked and absent, and bring the cache of ``splits`` up to date."""
    log.info("cache: %s", cfg.data.cache_dir)
    return prepare_dataset(cfg.data, splits, workers=cfg.data_workers)


def dataset(cfg: DictConfig, split: str, training: bool = False) -> CachedRegionDataset:
    """A split of the cache. Training shuffles region orders (with RRA), drawn from (seed, epoch, index), reads
    the reported regions (as the official training) and gives compact samples (the trainer makes them float32
    on the device); evaluation reads ``data.region_set`` in canonical order."""
    return dataset_from_config(
        cfg.data,
        split,
        shuffle_regions=training and cfg.model.rra,
        seed=cfg.seed,
        region_set="reported" if training else None,
        compact=training,
    )


def tokenizer_corpus(cfg: DictConfig, train_set: CachedRegionDataset) -> list[str]:
    """What the LLM reads per training study, the fixed prompt wording included, so that merges follow it."""
    template = PromptTemplate(**OmegaConf.to_container(cfg.model.prompt, resolve=True))
    prompt = f"{template.global_context}{template.instruction}"
    return [
        f"{prompt} {template.target(list(reports), list(reports.values()))}"
        for reports in (entry["region_reports"] for entry in train_set.entries)
    ]


def evaluate(cfg: DictConfig, model: Reg2RG, run_dir: Path, checkpoint: Path | None) -> dict[str, Any]:
    """Generate and score the evaluation split; prints the summary tables and returns metrics.json's content."""
    settings = cfg.evaluation
    options, used = decoding_options(
        settings.decoding, OmegaConf.to_container(settings.generation, resolve=True), cfg.llm.get("name_or_path")
    )
    log.info("%s; batch size %d; seed %d", used, settings.batch_size, cfg.seed)
    set_seed(cfg.seed)  # a sampling decoder draws the same reports again
    evaluation = generate_and_evaluate(
        model,
        dataset(cfg, settings.split),
        run_dir,
        settings.batch_size,
        cfg.trainer.num_workers,
        options,
        list(settings.protocols),
        checkpoint,
        merge_lora=settings.get("merge_lora", True),
    )
    print(terminal_summary(evaluation, run_dir / EVALUATION_DIR))
    return evaluation.metrics()


FAMILY = Family(prepare=prepare, dataset=dataset, tokenizer_corpus=tokenizer_corpus, evaluate=evaluate)
