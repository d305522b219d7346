"""The language model: pretrained (local path or hub id) or randomly initialised from a config, then tuned.

``tuning``: ``lora`` (paper: r 8, alpha 32, dropout 0.1 on peft's default targets, q_proj and
v_proj for LLaMA: 4.19 M parameters for LLaMA2-7B), ``full`` (every LLM weight trains; the tiny
demo model) or ``frozen``. The vocabulary embedding never trains under ``lora``; the added marker
tokens have their own embeddings in the model (see ``splice.py``), so the LLM vocabulary is unchanged.

Python code that comes with a model (``trust_remote_code``) never runs because a config asks for it:
only the caller's ``trust_remote_code=True`` (the command-line flag of the scripts) allows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

TUNINGS = ("lora", "full", "frozen")
REMOTE_CODE = "trust_remote_code"
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class LLMConfig:
    """Where the LLM comes from and how it trains (the ``llm`` config group)."""

    name_or_path: str | None = None  # local folder or hub id; its frozen weights re-load from here
    architecture: dict[str, Any] | None = None  # or a transformers config ({"model_type": "llama", ...}), random init
    tokenizer: str | None = None  # tokenizer folder or hub id; defaults to name_or_path
    dtype: str = "auto"  # auto: bfloat16 on a GPU that supports it, else float32
    tuning: str = "lora"  # lora | full | frozen
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_target_modules: list[str] | None = None  # None: peft's default for the architecture
    activation_checkpointing: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # more loading keywords (revision, attn_implementation)

    def __post_init__(self) -> None:
        if (self.name_or_path is None) == (self.architecture is None):
            raise ValueError("give the LLM exactly one of name_or_path (pretrained) or architecture (random init)")
        if self.architecture is not None and "model_type" not in self.architecture:
            raise ValueError("llm.architecture needs a model_type (e.g. 'llama' or 'gpt2')")
        if self.tuning not in TUNINGS:
            raise ValueError(f"llm.tuning must be one of {TUNINGS}, got {self.tuning!r}")
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise ValueError(f"llm.dtype must be 'auto' or one of {tuple(DTYPES)}, got {self.dtype!r}")
        if REMOTE_CODE in self.extra:
            raise ValueError(
                "llm.extra.trust_remote_code is not accepted: a model's own Python code runs only with the "
                "trust_remote_code=true flag of scripts/train.py or scripts/generate.py"
            )

    @property
    def tokenizer_source(self) -> str | None:
        return self.tokenizer or self.name_or_path

    def torch_dtype(self) -> torch.dtype:
        if self.dtype != "auto":
            return DTYPES[self.dtype]
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32


def build_llm(
    config: LLMConfig, tokenizer: PreTrainedTokenizerBase, trust_remote_code: bool = False
) -> PreTrainedModel:
    """Load or initialise the LLM, set which weights train, and switch on activation checkpointing.

    ``trust_remote_code``: let transformers run the Python code that comes with the model (always passed,
    so transformers never asks at the terminal either).
    """
    dtype = config.torch_dtype()
    if trust_remote_code:
        log.warning(
            "trust_remote_code=true: the Python code that comes with the LLM %s may run",
            config.name_or_path or config.architecture["model_type"],
        )
    if config.name_or_path is not None:
        model = AutoModelForCausalLM.from_pretrained(
            config.name_or_path, dtype=dtype, trust_remote_code=trust_remote_code, **config.extra
        )
    else:
        special = {
            "vocab_size": tokenizer.vocab_size,  # the base vocabulary: added marker tokens never reach the LLM
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
        architecture = AutoConfig.for_model(**{**special, **config.architecture})
        model = AutoModelForCausalLM.from_config(
            architecture, dtype=dtype, trust_remote_code=trust_remote_code, **config.extra
        )
    if config.activation_checkpointing and model.supports_gradient_checkpointing:
        set_activation_checkpointing(model, True)
    model.requires_grad_(config.tuning == "full")
    if config.tuning == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            task_type="CAUSAL_LM",
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.lora_target_modules,
        )
        model = get_peft_model(model, lora)
    return model


def set_activation_checkpointing(model: PreTrainedModel, enabled: bool) -> None:
    """Activation checkpointing (non-reentrant) on or off; transformers 5.17 names it gradient checkpointing."""
    if hasattr(model, "activation_checkpointing_enable"):
        if enabled:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif enabled:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


def activation_checkpointing(model: PreTrainedModel) -> bool:
    """Whether activation checkpointing is on (either transformers name)."""
    if hasattr(model, "activation_checkpointing_enable"):
        return bool(model.is_activation_checkpointing)
    return bool(model.is_gradient_checkpointing)
