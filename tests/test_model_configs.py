"""The Hydra model and llm configs compose and instantiate (tiny encoder overrides, no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from test_model_helpers import TINY_ENCODERS, random_sample, tiny_tokenizer

from reg2rg.models import LLMConfig, Reg2RG
from reg2rg.text import PromptTemplate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def compose_model(llm: str, overrides: list[str] = ()):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(overrides=["+model=reg2rg", f"+llm={llm}", *overrides])


def encoder_overrides() -> list[str]:
    return [f"model.{part}.{key}={value}" for part in TINY_ENCODERS for key, value in TINY_ENCODERS[part].items()]


@pytest.mark.parametrize("llm, tuning", [("llama2_7b_chat", "lora"), ("gpt2", "lora"), ("tiny_llama", "full")])
def test_llm_configs_instantiate(llm, tuning):
    config = instantiate(compose_model(llm).llm)
    assert isinstance(config, LLMConfig) and config.tuning == tuning


def test_model_config_defaults_are_the_paper_and_the_official_wording():
    model = compose_model("llama2_7b_chat").model
    assert PromptTemplate(**model.prompt) == PromptTemplate()
    assert model.perceiver.num_latents == 32 and model.mask_encoder.dim == 255 and model.vision_encoder.depth == 12
    assert model.use_global and model.use_texture and model.use_geometry and model.rra


def test_model_config_instantiates_a_working_model():
    config = compose_model("tiny_llama", [*encoder_overrides(), "model.use_geometry=false"])
    model = instantiate(config.model, tokenizer=tiny_tokenizer())
    assert isinstance(model, Reg2RG) and model.layout.region_tokens == 32
    assert json.loads(json.dumps(model.config))["llm"]["architecture"]["model_type"] == "llama"  # checkpoint-ready
    assert model(**model.collator()([random_sample(2)])).loss.isfinite()
