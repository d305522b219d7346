"""Forward / backward / generate, and save -> from_pretrained -> the same model."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_model_helpers import random_sample, tiny_llm, tiny_model

import reg2rg
from reg2rg.models import from_pretrained, save_checkpoint
from reg2rg.models.checkpoint import ADAPTER_WEIGHTS, CONFIG, MODULES, write_digests

SAMPLES = [
    random_sample(2, seed=0, regions=["heart", "lung"]),
    random_sample(1, seed=1, regions=["trachea and bronchie"]),
]


@pytest.fixture(scope="module")
def trained():
    """A tiny model (every LLM weight trains, short instruction) fitted to two samples of different region counts."""
    model = tiny_model(llm=tiny_llm(tuning="full"), prompt=dict(instruction="Report on each region.")).train()
    batch = model.collator()(SAMPLES)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(50):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def test_backward_reaches_exactly_the_trainable_parts():
    model = tiny_model().train()  # LoRA on the LLM
    model(**model.collator()(SAMPLES)).loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert all(grads[name] is None for name in grads.keys() - trainable)
    assert all(grads[name] is not None for name in trainable)
    assert {name.split(".")[1] for name in trainable if name.startswith("visual.")} == {
        "perceiver",
        "fc",
        "mask_encoder",
        "mask_fc",
    }
    lora = [name for name in trainable if "lora_" in name]
    assert lora and all(name.startswith("llm.") for name in lora)
    assert trainable - set(lora) - {n for n in trainable if n.startswith("visual.")} == {"splicer.markers"}
    assert all(grads[name].abs().sum() > 0 for name in trainable if "lora_B" in name)


def test_batched_left_padded_generation_reproduces_what_was_learned(trained):
    generations = trained.generate_reports(SAMPLES, max_new_tokens=60)
    targets = trained.collator()(SAMPLES)["targets"]
    assert [g.text for g in generations] == targets
    areas = [[(r.index, r.area) for r in g.regions] for g in generations]
    assert areas == [[(0, "heart"), (1, "lung")], [(0, "trachea and bronchie")]]
    assert generations[1].regions[0].report == SAMPLES[1]["region_reports"][0]
    assert trained.training  # generate() restores the mode it found


def test_sampling_options_are_exposed(trained):
    def sample(seed: int) -> str:
        torch.manual_seed(seed)
        options = dict(max_new_tokens=12, do_sample=True, temperature=5.0, top_k=100, top_p=0.99)
        return trained.generate_reports(SAMPLES[:1], **options)[0].text

    greedy = trained.generate_reports(SAMPLES[:1], max_new_tokens=12)[0].text
    assert sample(0) == sample(0) != greedy
    with pytest.raises(ValueError, match="exceed the LLM's 1024 positions"):
        trained.generate_reports(SAMPLES[:1], max_new_tokens=1024)


def test_save_then_from_pretrained_generates_the_same(trained, tmp_path):
    directory = save_checkpoint(trained, tmp_path / "checkpoint")
    assert {CONFIG, MODULES, "tokenizer.json"} <= {p.name for p in directory.iterdir()}
    # no configured source for the random LLM and ViT, and no LoRA: the modules file holds every weight
    assert load_file(directory / MODULES).keys() == dict(trained.named_parameters()).keys()
    loaded = reg2rg.from_pretrained(directory)
    assert not loaded.training
    assert loaded.generate_reports(SAMPLES, max_new_tokens=60) == trained.generate_reports(SAMPLES, max_new_tokens=60)


def test_checkpoint_of_a_pretrained_run_holds_only_what_trains(tmp_path):
    """LLM and ViT from local files (as a 7B run): the checkpoint keeps new modules + markers, and LoRA apart."""
    source = tiny_model(seed=1, llm=tiny_llm(tuning="frozen"))
    source.llm.save_pretrained(tmp_path / "llm")
    torch.save(source.visual.vision_encoder.state_dict(), tmp_path / "RadFM_vit3d.pth")
    model = tiny_model(
        seed=2,
        llm=tiny_llm(architecture=None, name_or_path=str(tmp_path / "llm")),
        vit_checkpoint=str(tmp_path / "RadFM_vit3d.pth"),
    )
    with torch.no_grad():  # move every trained weight away from its initial value
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)

    directory = save_checkpoint(model, tmp_path / "checkpoint")
    saved = load_file(directory / MODULES)
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert saved.keys() == {name for name in trained if not name.startswith("llm.")}
    assert not any(name.startswith("visual.vision_encoder.") for name in saved)
    assert len(load_file(directory / ADAPTER_WEIGHTS)) == len([name for name in trained if "lora_" in name]) > 0
    assert json.loads((directory / CONFIG).read_text())["model"]["vit_checkpoint"] == str(tmp_path / "RadFM_vit3d.pth")

    loaded = from_pretrained(directory)
    batch = model.collator()(SAMPLES)
    assert torch.equal(loaded(**batch).logits, model.eval()(**batch).logits)


def test_saving_is_atomic_and_replaces_an_old_checkpoint(trained, tmp_path):
    directory = save_checkpoint(trained, tmp_path / "checkpoint")
    before = (directory / MODULES).read_bytes()

    def crash(staging):
        (staging / "optimizer.pt").write_bytes(b"partial")
        raise RuntimeError("preempted")

    with pytest.raises(RuntimeError, match="preempted"):
        save_checkpoint(trained, directory, before_commit=crash)
    assert (directory / MODULES).read_bytes() == before and not (directory / "optimizer.pt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]  # no staging folder left behind

    save_checkpoint(trained, directory, before_commit=lambda staging: (staging / "trainer_state.json").write_text("{}"))
    assert (directory / "trainer_state.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]


def test_from_pretrained_refuses_what_does_not_fit(trained, tmp_path):
    directory = save_checkpoint(trained, tmp_path / "checkpoint")
    with pytest.raises(ValueError, match="unknown config keys \\['use_colour'\\]"):
        from_pretrained(directory, use_colour=True)
    state = load_file(directory / MODULES)
    state.pop("splicer.markers")
    save_file(state, directory / MODULES)
    write_digests(directory)  # a checkpoint written so, not one damaged since
    with pytest.raises(ValueError, match="missing \\(1\\): splicer.markers"):
        from_pretrained(directory)
    (directory / MODULES).unlink()
    torch.save({}, directory / "pytorch_model.bin")
    with pytest.raises(
        FileNotFoundError, match=f"{directory} is not a complete reg2rg checkpoint: {MODULES} is missing"
    ):
        from_pretrained(directory)
    (directory / CONFIG).unlink()
    with pytest.raises(FileNotFoundError, match=f"{directory} is not a reg2rg checkpoint: {CONFIG} is missing"):
        from_pretrained(directory)
