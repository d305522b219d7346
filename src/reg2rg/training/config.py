"""From the Hydra config to the parts of a run any family shares: the prepared data, the tokenizer, the model."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from transformers import PreTrainedTokenizerBase

from reg2rg.text import load_tokenizer, train_tokenizer

from .distributed import from_main_process
from .family import Family
from .startup import splits

log = logging.getLogger(__name__)

PREPARE_TIMEOUT = timedelta(hours=24)  # how long the other processes wait for the main one's data preparation


def prepare_data(cfg: DictConfig, accelerator: Accelerator, family: Family) -> None:
    """Bring the family's data up to date for the run's splits (main process only), e.g. generate the synthetic
    data and build the cache.

    The other processes wait for a key in the rendezvous store, up to ``PREPARE_TIMEOUT``: a first build
    of a real cache takes hours, far past a collective's timeout (NCCL: 10 min).
    """
    if not cfg.prepare_data:
        return
    several = accelerator.num_processes > 1
    ready = f"reg2rg/data-prepared/{from_main_process(accelerator, secrets.token_hex(8))}" if several else ""
    if accelerator.is_main_process:
        for split, report in family.prepare(cfg, splits(cfg)).items():
            log.info(
                "%s: %d of %d studies usable (skipped: %s)",
                split,
                report["usable"],
                report["studies"],
                report["skipped"] or "none",
            )
        if several:
            rendezvous_store().set(ready, "1")
    elif several:
        rendezvous_store().wait([ready], PREPARE_TIMEOUT)


def rendezvous_store() -> torch.distributed.Store:
    """The key-value store the processes met through (torchrun's or the env:// TCPStore)."""
    return torch.distributed.distributed_c10d._get_default_store()


def trained_with(cfg: DictConfig) -> dict[str, Any]:
    """What every checkpoint of the run records besides the model: the data settings (the whole ``data``
    section), the fidelity mode and the evaluation's decoding; ``scripts/generate.py`` and the viewers
    take them from the checkpoint."""
    evaluation = cfg.evaluation
    return {
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "fidelity": cfg.get("fidelity"),
        "evaluation": {
            "decoding": evaluation.decoding,
            "generation": OmegaConf.to_container(evaluation.generation, resolve=True),
            "batch_size": evaluation.batch_size,
            "merge_lora": evaluation.get("merge_lora", True),
            "seed": cfg.seed,
        },
    }


def build_tokenizer(
    cfg: DictConfig, family: Family, train_set: Any, run_dir: Path, resume_dir: Path | None, accelerator: Accelerator
) -> PreTrainedTokenizerBase | None:
    """The run's tokenizer: the checkpoint's when resuming; a new one trained on the family's corpus of the
    training split when the LLM brings none (the tiny random LLaMA), saved under ``run_dir/tokenizer``; else
    None (the LLM's own, or a family without text)."""
    if family.tokenizer_corpus is None:
        return None
    if resume_dir is not None:
        return load_tokenizer(str(resume_dir))
    if cfg.llm.tokenizer or cfg.llm.name_or_path:
        return None
    saved = run_dir / "tokenizer"
    if accelerator.is_main_process:
        tokenizer = train_tokenizer(family.tokenizer_corpus(cfg, train_set), cfg.tokenizer_vocab_size)
        tokenizer.save_pretrained(saved)
        log.info("trained a %d-token tokenizer on %d training reports -> %s", len(tokenizer), len(train_set), saved)
    accelerator.wait_for_everyone()
    return load_tokenizer(str(saved))


def build_model(cfg: DictConfig, tokenizer: PreTrainedTokenizerBase | None) -> nn.Module:
    """``cfg.model`` instantiated (with ``tokenizer`` when given, else the LLM's own); the LLM's own code
    runs only with the ``trust_remote_code=true`` flag."""
    return instantiate(
        cfg.model,
        trust_remote_code=cfg.trust_remote_code,
        **({"tokenizer": tokenizer} if tokenizer is not None else {}),
    )
