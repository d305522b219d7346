"""Checkpoint folders other tools open: the LoRA as a PEFT adapter, our files under our own names, and the data
settings the model was trained with, which generation and the viewers take from the checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file
from test_model_helpers import random_sample, tiny_llm, tiny_model
from test_training_helpers import compose_train, tiny_overrides

from reg2rg.data.build import read_index
from reg2rg.data.cache import CachedStudy
from reg2rg.data.dataset import load_sample
from reg2rg.data.preprocessing import PreprocessConfig
from reg2rg.models import from_pretrained, save_checkpoint
from reg2rg.models.checkpoint import (
    ADAPTER,
    CONFIG,
    LEGACY_CONFIG,
    LEGACY_WEIGHTS,
    MODULES,
    read_trained_with,
    write_digests,
)
from reg2rg.training import train

SAMPLES = [random_sample(2, seed=0, regions=["heart", "lung"]), random_sample(1, seed=1)]


@pytest.fixture(scope="module")
def lora_checkpoint(tmp_path_factory):
    """A tiny model with LoRA on an LLM loaded from a folder (as LLaMA), trained a few steps, and its checkpoint."""
    folder = tmp_path_factory.mktemp("lora")
    tiny_model(seed=1, llm=tiny_llm(tuning="frozen")).llm.save_pretrained(folder / "llm")
    model = tiny_model(seed=2, llm=tiny_llm(architecture=None, name_or_path=str(folder / "llm"))).train()
    batch = model.collator()(SAMPLES)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), save_checkpoint(model, folder / "checkpoint"), folder / "llm"


def test_peft_loads_the_adapter_onto_the_base_llm_with_our_logits(lora_checkpoint):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model, checkpoint, base_folder = lora_checkpoint
    assert sorted(p.name for p in (checkpoint / ADAPTER).iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert not (checkpoint / "config.json").exists() and not (checkpoint / "model.safetensors").exists()
    assert all(model.llm.state_dict()[name].abs().sum() > 0 for name in model.llm.state_dict() if "lora_B" in name)

    peft_model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_folder), checkpoint / ADAPTER
    ).eval()
    input_ids = model.tokenizer(["The heart is enlarged.", "No nodule in the lung."], padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = peft_model(**input_ids).logits
        ours = model.llm(**input_ids).logits
    assert torch.equal(theirs, ours)

    loaded = from_pretrained(checkpoint)
    batch = model.collator()(SAMPLES)
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, model(**batch).logits)


def test_an_adapter_that_does_not_fit_is_named(lora_checkpoint, tmp_path):
    _, checkpoint, _ = lora_checkpoint
    copy = shutil.copytree(checkpoint, tmp_path / "checkpoint")
    save_file(
        {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(8, 64)},
        copy / ADAPTER / "adapter_model.safetensors",
    )
    write_digests(copy)
    with pytest.raises(ValueError, match=rf"{copy / ADAPTER}/adapter_model.safetensors does not match the LoRA layers"):
        from_pretrained(copy)
    shutil.rmtree(copy / ADAPTER)
    write_digests(copy)
    with pytest.raises(ValueError, match="adapter_model.safetensors is missing"):
        from_pretrained(copy)


def test_a_checkpoint_of_the_earlier_layout_still_loads(lora_checkpoint, tmp_path):
    model, _, _ = lora_checkpoint
    folder = tmp_path / "old"
    save_checkpoint(model, folder)
    (folder / LEGACY_CONFIG).write_text(json.dumps(json.loads((folder / CONFIG).read_text())["model"]))
    save_file({n: p.detach().contiguous() for n, p in model.persistent_parameters().items()}, folder / LEGACY_WEIGHTS)
    for name in (CONFIG, MODULES):
        (folder / name).unlink()
    shutil.rmtree(folder / ADAPTER)
    write_digests(folder)
    loaded = from_pretrained(folder)
    batch = model.collator()(SAMPLES)
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, model(**batch).logits)
    assert read_trained_with(folder) == {}


@pytest.fixture(scope="module")
def checkpoint(tiny_data, tmp_path_factory):
    """The checkpoint of one step of the tiny demo run trained without LFD."""
    cfg = compose_train(
        [*tiny_overrides(tiny_data, tmp_path_factory.mktemp("run")), "data.lfd=false", "trainer.max_steps=1"]
    )
    return train(cfg)["checkpoint"]


def _generate(checkpoint, monkeypatch, overrides: list[str]):
    """generate_from_config as scripts/generate.py calls it; returns the dataset it would generate from."""
    from hydra import compose, initialize_config_dir
    from test_training_helpers import CONFIGS

    from reg2rg import inference

    used = {}
    monkeypatch.setattr(
        inference, "generate_predictions", lambda model, dataset, *args, **kwargs: used.update(dataset=dataset)
    )
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        cfg = compose("generate", overrides=[f"checkpoint={checkpoint}", *overrides])
    inference.generate_from_config(cfg, overrides)
    return used["dataset"]


def test_a_checkpoint_records_its_data_settings_and_generation_uses_them(checkpoint, tiny_data, monkeypatch):
    trained = read_trained_with(checkpoint)
    assert trained["data"]["lfd"] is False and trained["data"]["preprocessing"]["target_size"] == [16, 16, 8]
    assert trained["fidelity"] == "clean" and trained["evaluation"]["decoding"] == "greedy"

    for overrides in ([], ["data=synthetic", f"data.root={tiny_data}", "data.preprocessing.target_size=[16,16,8]"]):
        dataset = _generate(checkpoint, monkeypatch, overrides)  # data=synthetic says lfd=true: not told otherwise
        assert dataset.lfd is False and dataset.region_set == "reported"
        assert torch.equal(dataset[0]["texture"], _no_lfd_texture(tiny_data, dataset[0]["regions"]))


def test_a_contradicting_override_is_refused(checkpoint, tiny_data, monkeypatch):
    overrides = [
        "data=synthetic",
        f"data.root={tiny_data}",
        "data.lfd=true",
        "data.preprocessing.target_size=[32,32,16]",
    ]
    with pytest.raises(ValueError) as error:
        _generate(checkpoint, monkeypatch, overrides)
    assert str(error.value).startswith(
        f"{checkpoint} holds a model trained with data.lfd=False, "
        "data.preprocessing.target_size=[16, 16, 8]; the override data.lfd=True, "
        "data.preprocessing.target_size=[32, 32, 16] contradicts it"
    )


def test_the_viewers_take_the_checkpoints_data_settings(checkpoint, tiny_data):
    from reg2rg.visualize import open_study

    study, sample = open_study(tiny_data / "cache", 0, checkpoint=checkpoint)
    study.close()
    assert torch.equal(sample["texture"], _no_lfd_texture(tiny_data, sample["regions"]))
    with pytest.raises(ValueError, match=r"trained with other data settings than asked: lfd=True \(trained: False\)"):
        open_study(tiny_data / "cache", 0, checkpoint=checkpoint, lfd=True)


def _no_lfd_texture(root, regions: list[str]) -> torch.Tensor:
    """The texture rows of the first valid study without LFD (masked uncropped volumes), at the run's size."""
    entry = read_index(root / "cache", "valid")[0]
    with CachedStudy(root / "cache" / entry["file"]) as study:
        with_lfd, without = (
            load_sample(study, entry, PreprocessConfig(target_size=(16, 16, 8)), regions, lfd=lfd)
            for lfd in (True, False)
        )
    assert not torch.equal(with_lfd["texture"], without["texture"])  # the two settings give other samples
    return without["texture"]
