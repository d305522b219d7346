"""Model families: what a system brings to the shared training run (``family:`` in ``configs/train.yaml``).

Reg2RG, MedRegion-CT and ISRG-CT share the trainer, its data order, checkpoints, resume and signal handling.
Each family module (the ``FAMILIES`` table) holds a ``FAMILY``: how its data is prepared and read, what a new
tokenizer is trained on, and how a trained model is evaluated. Its model is ``cfg.model`` instantiated.

What the trainer asks of a family's model (an ``nn.Module``):
    ``model(**batch).loss``                      the training loss of a collated batch
    ``model.collator(max_length=...)``           the collate function; ``.max_length`` (tokens, or None) and, for
                                                 a text model, ``.training_lengths(samples)``
    ``model.max_positions``                      the longest sequence it takes (None: no limit)
    ``model.persistent_parameters()``, ``model.config``, and ``model.llm`` / ``model.tokenizer`` where it has
                                                 them: what ``reg2rg.models.save_checkpoint`` writes
And of its training split (a torch ``Dataset`` of dict samples with a ``study_id``):
    ``entries``                                  one dict per sample with its ``study_id`` (the resume digest)
    ``set_epoch(epoch)``                         draws that depend on the epoch (region orders)
    ``on_device(batch)``                         a batch after it reached the device (compact -> float32)
    ``text_sample(i)``, ``leave_out(ids)``       for a text model: lengths without images; dropping studies
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

FAMILIES = {
    "reg2rg": "reg2rg.training.reg2rg_family",
    "medregion": "reg2rg.medregion.family",
    "isrg": "reg2rg.isrg.family",
}


@dataclass(frozen=True)
class Family:
    """How one system's runs prepare, read and evaluate their data."""

    # (cfg, splits) -> {split: {"usable": int, "studies": int, "skipped": {reason: count}}}; main process only
    prepare: Callable[[DictConfig, list[str]], dict[str, dict[str, Any]]]
    # (cfg, split, training) -> the split; ``training``: the trainer's samples (shuffled orders, compact arrays)
    dataset: Callable[[DictConfig, str, bool], Any]
    # (cfg, train_set) -> the texts a tokenizer is trained on when the LLM brings none; None: no text model
    tokenizer_corpus: Callable[[DictConfig, Any], list[str]] | None
    # (cfg, model, run_dir, checkpoint) -> the metrics; writes run_dir/evaluation (main process only)
    evaluate: Callable[[DictConfig, Any, Path, Path | None], dict[str, Any]]


def family_for(cfg: DictConfig) -> Family:
    """The ``FAMILY`` of ``cfg.family``; an unknown name is refused with the known ones."""
    name = cfg.get("family", "reg2rg")
    if name not in FAMILIES:
        raise ValueError(f"family={name!r} is not a model family; choose one of {sorted(FAMILIES)}")
    return importlib.import_module(FAMILIES[name]).FAMILY
