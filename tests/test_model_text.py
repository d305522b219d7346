"""Prompts, RRA targets, tokenization with labels, the padding collate and the region-report parser."""

from __future__ import annotations

import pytest
import torch
from test_model_helpers import random_sample, tiny_tokenizer

from reg2rg.constants import IGNORE_INDEX
from reg2rg.text import PLACEHOLDER, PromptTemplate, Reg2RGCollator, TokenLayout, parse_region_reports, train_tokenizer

PAPER = TokenLayout(global_tokens=32, texture_tokens=32, geometry_tokens=1)
INSTRUCTION = (
    "Given the provided global and regional information from this CT scan, please generate a comprehensive "
    "medical report for each region. First, identify the anatomical area corresponding to each region, then "
    "provide detailed information about these anatomical structures and any abnormalities that are essential. "
    "You can refer to the global information as the context and take it as a supplement when generating each "
    "region report."
)


def test_prompt_has_the_official_wording():
    v = PLACEHOLDER
    expected = (
        f"The global information is provided as the context: <image>{v * 32}</image>. "
        f"The region 0 is <region>{v * 33}</region>. "
        f"The region 1 is <region>{v * 33}</region>. " + INSTRUCTION
    )
    assert PromptTemplate().prompt(2, PAPER) == expected


def test_rra_target_and_plain_target():
    template = PromptTemplate()
    regions, reports = ["lung", "trachea and bronchie"], ["No nodule. ", "Patent."]
    expected = "The region 0 is lung: No nodule. The region 1 is trachea and bronchie: Patent."
    assert template.target(regions, reports) == expected
    assert template.target(regions, reports, rra=False) == "No nodule. Patent."
    with pytest.raises(ValueError, match="2 regions but 1"):
        template.target(regions, reports[:1])


def test_parser_reads_back_every_region_of_a_target():
    template = PromptTemplate(first_region_index=1)
    regions = ["abdomen", "trachea and bronchie", "heart"]
    reports = ["Liver normal: no lesion.", "Patent. Trachea midline.", "Cardiomegaly."]
    parsed = template.parse(template.target(regions, reports))
    expected = [(i + 1, area, report) for i, (area, report) in enumerate(zip(regions, reports))]
    assert [(r.index, r.area, r.report) for r in parsed] == expected


def test_parser_is_robust_to_free_text():
    text = "Preamble. The region 3 is normal. The region 4 is lung:no nodule.\nThe region 5 is pleura: "
    parsed = [(r.index, r.area, r.report) for r in parse_region_reports(text)]
    assert parsed == [(4, "lung", "no nodule."), (5, "pleura", "")]
    assert parse_region_reports("Lungs are clear. Heart normal.") == []
    custom = parse_region_reports("Region #2 (heart) -> big", prefix="Region #{i} ({area}) -> ")
    assert [(r.index, r.area, r.report) for r in custom] == [(2, "heart", "big")]


def test_train_tokenizer_round_trips_any_text():
    tokenizer = train_tokenizer(["The region 0 is lung: no nodule."] * 10, vocab_size=300)
    text = "Ünïcode & numbers 12.5 mm — never seen."
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    with pytest.raises(ValueError, match="at least 259"):
        train_tokenizer(["x"], vocab_size=100)


def test_tokenization_labels_only_the_report_and_eos():
    collator = Reg2RGCollator(tiny_tokenizer(), PAPER)
    sample = random_sample(3, seed=1)
    ids, labels = collator.encode(sample)
    prompt = collator.prompt_ids(3)
    assert ids[: len(prompt)] == prompt
    assert ids.count(collator.ids.placeholder) == 32 + 3 * 33
    assert labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    assert labels[len(prompt) :] == ids[len(prompt) :]
    assert ids[-1] == collator.ids.eos
    report = collator.tokenizer.decode(ids[len(prompt) :], skip_special_tokens=True)
    assert report == collator.target(sample)
    assert [r.area for r in parse_region_reports(report)] == sample["regions"]


def test_collate_pads_to_the_longest_and_concatenates_ragged_regions():
    collator = Reg2RGCollator(tiny_tokenizer(), PAPER)
    samples = [random_sample(1, seed=0), random_sample(4, seed=1), random_sample(2, seed=2)]
    lengths = [len(collator.encode(s)[0]) for s in samples]
    batch = collator(samples)
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    for row, length in enumerate(lengths):  # right padding: real tokens first
        assert batch["attention_mask"][row, :length].all()
        assert (batch["input_ids"][row, length:] == collator.ids.pad).all()
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()
    assert batch["region_counts"].tolist() == [1, 4, 2]
    assert batch["image"].shape == (3, 1, 32, 32, 16)
    assert batch["texture"].shape == batch["geometry"].shape == (7, 1, 32, 32, 16)
    assert torch.equal(batch["texture"][1:5], samples[1]["texture"])
    assert batch["regions"][1] == samples[1]["regions"] and batch["study_ids"] == ["study_0", "study_1", "study_2"]


def test_inference_collate_left_pads_prompts_without_labels():
    collator = Reg2RGCollator(tiny_tokenizer(), PAPER, inference=True)
    batch = collator([random_sample(1, seed=0), random_sample(3, seed=1)])
    assert "labels" not in batch
    short = collator.prompt_ids(1)
    assert batch["input_ids"][0, -len(short) :].tolist() == short
    assert batch["attention_mask"][0].tolist() == [0] * (batch["input_ids"].shape[1] - len(short)) + [1] * len(short)
    assert batch["targets"][1].startswith("The region 0 is abdomen: ")


def test_collate_stacks_only_the_volumes_the_layout_uses():
    geometry_only = TokenLayout(global_tokens=0, texture_tokens=0, geometry_tokens=1)
    sample = random_sample(2)
    del sample["texture"]  # a data side that skips unused volumes is fine
    batch = Reg2RGCollator(tiny_tokenizer(), geometry_only)([sample])
    assert "image" not in batch and "texture" not in batch and batch["geometry"].shape[0] == 2


def test_collate_rejects_inconsistent_samples_and_truncates_targets():
    collator = Reg2RGCollator(tiny_tokenizer(), PAPER)
    broken = random_sample(3)
    broken["region_reports"] = broken["region_reports"][:2]
    with pytest.raises(ValueError, match="study_0: 3 regions but lengths {'region_reports': 2}"):
        collator([broken])
    prompt = len(collator.prompt_ids(2))
    truncated = Reg2RGCollator(tiny_tokenizer(), PAPER, max_length=prompt + 5)([random_sample(2)])
    assert truncated["input_ids"].shape[1] == prompt + 5
    with pytest.raises(ValueError, match="no room"):
        Reg2RGCollator(tiny_tokenizer(), PAPER, max_length=prompt).prompt_ids(2)
