"""Every experiment composes and instantiates (tiny overrides), the paper's settings hold, ablations are overrides."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from test_training_helpers import OFFLINE_PAPER, TINY_ENCODERS, TINY_MODEL, compose_train, data_overrides

from reg2rg.models import Reg2RG
from reg2rg.text import train_tokenizer
from reg2rg.training.batching import resolve_batching
from reg2rg.training.config import build_model
from reg2rg.training.deepspeed_config import deepspeed_for, fill_auto
from reg2rg.training.reg2rg_family import dataset
from reg2rg.training.trainer import TrainerConfig

TINY_GPT2 = "{model_type: gpt2, n_embd: 32, n_layer: 1, n_head: 2, n_positions: 1024}"


def tokenizer():
    return train_tokenizer(["The region 0 is lung: No nodule. The region 1 is heart: Normal."] * 4, vocab_size=300)


def paper_config(experiment: str, extra: list[str] = ()):
    return compose_train([f"experiment={experiment}", *OFFLINE_PAPER, "output_dir=unused", *extra])


@pytest.mark.parametrize("experiment, epochs, data", [("radgenome", 6, "radgenome"), ("ctrg", 10, "ctrg")])
def test_paper_experiments_carry_the_paper_settings(experiment, epochs, data):
    cfg = compose_train([f"experiment={experiment}", "output_dir=unused"])
    assert cfg.data.name == data and cfg.trainer.epochs == epochs
    assert cfg.model.vit_checkpoint.endswith("RadFM_vit3d.pth")
    assert cfg.model.perceiver_checkpoint.endswith("RadFM_perceiver_fc.pth")
    assert cfg.llm.name_or_path == "meta-llama/Llama-2-7b-chat-hf" and cfg.llm.tuning == "lora"
    assert cfg.model.rra and cfg.data.lfd
    trainer = instantiate(cfg.trainer)
    optimizer = trainer.optimizer.func
    assert optimizer.__name__ == "AdamW" and trainer.optimizer.keywords["lr"] == 5e-5
    assert trainer.lr_scheduler == "constant_with_warmup" and trainer.mixed_precision == "bf16"
    # gpu_memory=80gb: micro-batch 4 without activation checkpointing, steps grouped by length
    assert trainer.per_device_batch_size == 4 and not cfg.llm.activation_checkpointing and trainer.group_by_length
    per_device, accumulation, effective = (
        trainer.per_device_batch_size,
        trainer.gradient_accumulation_steps,
        trainer.effective_batch_size,
    )
    worlds = (1, 2, 4, 8, 16)
    geometry = [resolve_batching(per_device, accumulation, effective, w) for w in worlds]
    assert [(b.per_device, b.accumulation) for b in geometry] == [(4, 4), (4, 2), (4, 1), (2, 1), (1, 1)]
    assert all(b.effective == 16 for b in geometry)
    selected = OmegaConf.to_container(cfg.deepspeed)
    assert deepspeed_for(selected, 1) is None  # one GPU: plain Accelerate
    deepspeed = fill_auto(deepspeed_for(selected, 2), resolve_batching(1, None, 16, 2), 1.0, "bf16")
    assert deepspeed["zero_optimization"]["stage"] == 2 and deepspeed["bf16"]["enabled"] is True
    assert (
        deepspeed["train_micro_batch_size_per_gpu"],
        deepspeed["gradient_accumulation_steps"],
        deepspeed["train_batch_size"],
        deepspeed["gradient_clipping"],
    ) == (1, 8, 16, 1.0)


@pytest.mark.parametrize("experiment", ["radgenome", "ctrg"])
def test_24_gb_cards_are_one_override_away_and_deepspeed_on_one_gpu_is_asked_for_by_name(experiment):
    small = paper_config(experiment, ["gpu_memory=24gb"])
    assert instantiate(small.trainer).per_device_batch_size == 4 and small.llm.activation_checkpointing
    explicit = paper_config(experiment, ["deepspeed=zero2"])
    assert deepspeed_for(OmegaConf.to_container(explicit.deepspeed), 1)["zero_optimization"]["stage"] == 2
    assert paper_config(experiment, ["~deepspeed"]).deepspeed is None


@pytest.mark.parametrize("experiment", ["demo", "radgenome", "ctrg"])
def test_every_experiment_instantiates(experiment):
    cfg = compose_train(["output_dir=unused", *TINY_MODEL]) if experiment == "demo" else paper_config(experiment)
    assert isinstance(instantiate(cfg.trainer), TrainerConfig)
    model = build_model(cfg, tokenizer())
    assert isinstance(model, Reg2RG)
    assert model.config["llm"]["tuning"] == ("full" if experiment == "demo" else "lora")


def test_the_demo_is_the_default_and_offline():
    cfg = compose_train(["output_dir=unused"])
    assert cfg.name == "demo" and cfg.data.name == "synthetic" and cfg.deepspeed is None
    assert cfg.llm.name_or_path is None and cfg.llm.tokenizer is None and cfg.evaluation.enabled
    assert cfg.model.vision_encoder.image_size == cfg.data.preprocessing.target_size[0]
    assert cfg.trainer.mixed_precision == "no" and not cfg.model.freeze_vision_encoder


@pytest.mark.parametrize(
    "override, layout",
    [
        ("model.use_texture=false", (4, 0, 1)),
        ("model.use_geometry=false", (4, 4, 0)),
        ("model.use_global=false", (0, 4, 1)),
        ("model.rra=false", (4, 4, 1)),
    ],
)
def test_ablations_are_overrides(override, layout):
    model = build_model(paper_config("radgenome", [override]), tokenizer())
    assert (model.layout.global_tokens, model.layout.texture_tokens, model.layout.geometry_tokens) == layout


def test_gpt2_decoder_ablation():
    cfg = compose_train(
        [
            "experiment=radgenome",
            "llm=gpt2",
            "llm.name_or_path=null",
            f"+llm.architecture={TINY_GPT2}",
            "model.vit_checkpoint=null",
            "model.perceiver_checkpoint=null",
            *TINY_ENCODERS,
            "output_dir=unused",
        ]
    )
    assert build_model(cfg, tokenizer()).llm.base_model.config.model_type == "gpt2"


def test_rra_and_lfd_switch_the_data_side(tiny_data):
    on = compose_train([*data_overrides(tiny_data), "output_dir=unused"])
    off = compose_train([*data_overrides(tiny_data), "model.rra=false", "data.lfd=false", "output_dir=unused"])
    assert dataset(on, "train", True).shuffle_regions and dataset(on, "train", True).lfd
    assert not dataset(off, "train", True).shuffle_regions and not dataset(off, "train").lfd
    assert not dataset(on, "valid").shuffle_regions  # evaluation reads the canonical order


def test_resume_and_logger_options_compose():
    cfg = compose_train(["output_dir=unused", "logger=none", "resume=latest", "deepspeed=zero2"])
    assert cfg.logger.wandb is None and cfg.resume == "latest" and cfg.deepspeed.zero_optimization.stage == 2
    assert compose_train(["output_dir=unused"]).logger.wandb.project == "reg2rg"


def test_an_unknown_family_is_refused_with_the_known_ones():
    from reg2rg.training.family import family_for
    from reg2rg.training.reg2rg_family import FAMILY

    assert family_for(compose_train(["output_dir=unused"])) is FAMILY  # the default: Reg2RG
    with pytest.raises(ValueError, match=r"family='radfm' is not a model family; choose one of \['isrg', 'medregion'"):
        family_for(compose_train(["output_dir=unused", "family=radfm"]))
