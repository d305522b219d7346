"""Faster generation gives the tokens of the plain path: LoRA merged, batches sorted by prompt length, compiled decoding.

Tiny geometry in float32 on the CPU. The LoRA B matrices are drawn at random (peft starts them at zero),
so that the adapter changes what the model writes and a merge that lost it would show.
"""

from __future__ import annotations

import csv

import pytest
import torch
from test_model_helpers import random_sample, tiny_llm, tiny_model

from reg2rg.inference import generate_predictions
from reg2rg.models.lora_merge import lora_layers, merged_lora

REGION_COUNTS = (2, 1, 3, 1, 2)  # prompts of three lengths, out of order
TOKENS = dict(max_new_tokens=10, min_new_tokens=10)  # forced length: every position is compared


def adapted_model(**llm: object):
    model = tiny_model(llm=tiny_llm(**llm)).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model


def samples():
    return [random_sample(count, seed=index) for index, count in enumerate(REGION_COUNTS)]


def token_ids(model, batch, **options):
    return [generation.token_ids for generation in model.generate_reports(batch, **TOKENS, **options)]


def test_merged_lora_writes_the_unmerged_tokens_and_leaves_the_weights_as_they_were():
    model = adapted_model()
    plain = token_ids(model, samples())
    with model.llm.disable_adapter():
        assert token_ids(model, samples()) != plain  # the adapter matters to what is written
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with merged_lora(model) as merged:
        assert merged == len(lora_layers(model)) == 4  # q_proj and v_proj of 2 layers
        query = model.llm.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight
        assert not torch.equal(query, before["llm.base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"])
        assert token_ids(model, samples()) == plain
    assert all(torch.equal(tensor, before[name]) for name, tensor in model.state_dict().items())


def test_bfloat16_base_weights_come_back_bit_for_bit():
    model = adapted_model(dtype="bfloat16")
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with merged_lora(model):
        pass
    assert all(torch.equal(tensor, before[name]) for name, tensor in model.state_dict().items())


def test_a_model_without_lora_is_left_alone():
    model = tiny_model(llm=tiny_llm(tuning="full"))
    with merged_lora(model) as merged:
        assert merged == 0


class StudyList:
    """A split of in-memory studies with the parts of CachedRegionDataset that generation reads."""

    split = "valid"

    def __init__(self, studies):
        self.studies = studies
        self.entries = [{"study_id": study["study_id"]} for study in studies]

    def __len__(self):
        return len(self.studies)

    def __getitem__(self, index):
        return self.studies[index]

    def region_order(self, index):
        return self.studies[index]["regions"]


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_sorted_batches_write_what_one_study_at_a_time_writes_in_the_split_order(tmp_path, monkeypatch):
    model = adapted_model()
    alone = {sample["study_id"]: model.generate_reports([sample], **TOKENS)[0].text for sample in samples()}
    batches = []
    generate = model.generate_reports

    def recording(batch, **options):
        batches.append([sample["study_id"] for sample in batch])
        return generate(batch, **options)

    monkeypatch.setattr(model, "generate_reports", recording)
    dataset, out = StudyList(samples()), tmp_path / "predictions.csv"
    generate_predictions(model, dataset, out, batch_size=2, settings=TOKENS)
    # longest prompt first (3 regions, then 2, then 1), the split's order among equals
    assert batches == [["study_2", "study_0"], ["study_4", "study_1"], ["study_3"]]
    rows = _rows(out)
    assert [row["AccNum"] for row in rows] == [entry["study_id"] for entry in dataset.entries]
    assert {row["AccNum"]: row["Pred_combined_report"] for row in rows} == alone


def test_an_interrupted_sorted_run_resumes_to_the_same_file(tmp_path, monkeypatch):
    model, dataset = adapted_model(), StudyList(samples())
    complete = tmp_path / "complete.csv"
    generate_predictions(model, dataset, complete, batch_size=2, settings=TOKENS)

    generate, calls = model.generate_reports, []

    def crashing(batch, **options):
        calls.append(batch)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return generate(batch, **options)

    monkeypatch.setattr(model, "generate_reports", crashing)
    out = tmp_path / "predictions.csv"
    with pytest.raises(KeyboardInterrupt):
        generate_predictions(model, dataset, out, batch_size=2, settings=TOKENS)
    assert [row["AccNum"] for row in _rows(out)] == ["study_2", "study_0"]  # the first batch, in generation order
    monkeypatch.setattr(model, "generate_reports", generate)
    generate_predictions(model, dataset, out, batch_size=2, settings=TOKENS)
    assert out.read_bytes() == complete.read_bytes()


@pytest.mark.slow
def test_compiled_decoding_writes_the_plain_tokens():
    """Static KV cache + torch.compile (inductor on the CPU; about a minute to compile here)."""
    from torch._dynamo.utils import counters

    model = adapted_model()
    plain = token_ids(model, samples()[:2])
    graphs = counters["stats"]["unique_graphs"]
    with merged_lora(model):
        assert token_ids(model, samples()[:2], compile_decode=True) == plain
    assert counters["stats"]["unique_graphs"] > graphs  # the decoding step ran compiled
