"""The training-step benchmark, at tiny geometry on the CPU (its figures at 7B geometry need a GPU)."""

from __future__ import annotations

import json

import torch

from reg2rg.benchmarks import step
from reg2rg.benchmarks.geometry import TINY, build_model, reference_loss


def test_a_sample_is_a_real_prompt_and_the_reference_pads_it():
    torch.manual_seed(0)
    model = build_model(TINY, dtype="float32")
    sample = step.training_sample(model, TINY, torch.Generator().manual_seed(0))
    ids = sample["input_ids"][0]
    assert ids.shape == (TINY.sample_tokens,) and ids[-1] == model.special_ids.eos
    assert int((ids == model.special_ids.placeholder).sum()) == model.layout.total(TINY.regions)
    prompt = len(model.collator().prompt_ids(TINY.regions))
    assert (sample["labels"][0, :prompt] == step.IGNORE_INDEX).all() and (
        sample["labels"][0, prompt:] == ids[prompt:]
    ).all()
    padded = step.padded(sample, TINY.reference_length, model.special_ids.pad)
    assert padded["input_ids"].shape == (1, TINY.reference_length)
    assert int(padded["attention_mask"].sum()) == TINY.sample_tokens
    assert (padded["labels"][0, TINY.sample_tokens :] == step.IGNORE_INDEX).all()
    assert torch.equal(padded["image"], sample["image"])
    # the reference loss on the padded sample is the loss of the sample itself (padding is masked out),
    # up to float32 rounding of the one-hot product and the longer attention
    with torch.no_grad():
        ours = model(**sample).loss
        reference = reference_loss(model, padded)
    assert torch.allclose(ours, reference, rtol=1e-4, atol=0)


def test_both_designs_train_and_are_timed(tmp_path):
    figures = step.run(geometry="tiny", steps=2, warmup=1, json_path=str(tmp_path / "step.json"))
    assert json.loads((tmp_path / "step.json").read_text()) == figures
    assert figures["activation_checkpointing"] and figures["zero_stage"] is None
    assert figures["ours"]["padded_tokens_per_sample"] == TINY.sample_tokens
    assert figures["reference"]["padded_tokens_per_sample"] == TINY.reference_length
    for design in ("ours", "reference"):
        assert figures[design]["tokens_per_sample"] == TINY.sample_tokens
        assert figures[design]["samples_per_s"] > 0 and figures[design]["peak_memory_gib"] is None
        assert figures[design]["gradient_norm"] > 0  # the design trains
