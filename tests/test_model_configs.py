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


def test_the_demo_encoders_start_with_tokens_that_vary_with_the_image():
    """A random resampler with N(0, 1) latents, or a mask encoder averaging 4 x 4 x 4 mostly uniform patches,
    hands the LLM nearly the same tokens for every image (docs/training.md: they moved 6-8% here)."""
    import torch
    from omegaconf import OmegaConf

    from reg2rg.models.region_tokens import VisualTokenEncoder

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        model = compose("train").model  # the default experiment: the demo
    parts = {
        part: OmegaConf.to_container(model[part], resolve=True)
        for part in ("vision_encoder", "perceiver", "mask_encoder")
    }
    torch.manual_seed(0)
    encoder = VisualTokenEncoder(64, **parts).eval()
    masks = torch.zeros(2, 1, 64, 64, 32)
    masks[0, :, 20:36, 20:36, 10:20] = 1
    masks[1, :, 16:42, 16:40, 8:24] = 1  # the same region, larger
    volumes = torch.rand(2, 1, 64, 64, 32) * 2 - 1
    with torch.no_grad():
        tokens = encoder([1, 1], image=volumes, texture=volumes, geometry=masks).reshape(
            2, -1, 64
        )  # (2, 8 + 8 + 1, 64)
    texture, geometry = tokens[:, 8:16], tokens[:, 16]
    assert (texture[0] - texture[1]).norm() / texture[0].norm() > 0.2
    assert (geometry[0] - geometry[1]).norm() / geometry[0].norm() > 0.2
