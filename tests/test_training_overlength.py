"""A report longer than the LLM's positions never stops training: it is cut (trainer.overlength=truncate, the
default) or left out (skip), and each such study is logged by id with the count."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
from test_model_helpers import random_sample, tiny_model
from test_training_helpers import compose_train, tiny_overrides

from reg2rg.training import train
from reg2rg.training.checkpointing import STATE_FILE

LONG_STUDY = "train_1_a_1"
LLM_POSITIONS = 2048  # the training tests' tiny LLaMA


def test_training_lengths_are_the_uncut_sequence_lengths():
    model = tiny_model()
    samples = [random_sample(2, seed=0), random_sample(5, seed=1)]
    collate = model.collator()
    assert collate.training_lengths(samples) == [len(collate.encode(s)[0]) for s in samples]
    cut = model.collator(max_length=collate.training_lengths(samples)[0] - 3)
    assert len(cut.encode(samples[0])[0]) == cut.max_length
    with pytest.raises(ValueError, match=r"exceed the LLM's 1024 positions \(batch of studies study_0, study_1\)"):
        model(
            **model.collator()(
                [{**s, "region_reports": [" ".join(["word"] * 800)] * len(s["regions"])} for s in samples]
            )
        )


@pytest.fixture
def data_with_a_long_report(tiny_data, tmp_path) -> Path:
    """The training data with one study whose heart report runs to some 12,000 words."""
    root = tmp_path / "data"
    shutil.copytree(tiny_data / "cache", root / "cache")
    index = root / "cache" / "train.jsonl"
    entries = [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines()]
    long_entry = next(e for e in entries if e["study_id"] == LONG_STUDY)
    long_entry["region_reports"]["heart"] = " ".join(["The heart contour is enlarged."] * 3000)
    index.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    return root


def run(data: Path, output_dir: Path, *extra: str) -> dict:
    return train(compose_train([*tiny_overrides(data, output_dir), "trainer.max_steps=3", *extra]))


def test_a_far_too_long_report_is_cut_and_counted(data_with_a_long_report, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        result = run(data_with_a_long_report, tmp_path / "run")  # one epoch: every study is seen
    assert result["step"] == 3
    assert re.search(
        rf"study {LONG_STUDY}: \d+ tokens exceed max_length={LLM_POSITIONS}; its report is cut", caplog.text
    )
    assert (
        f"1 of 12 training studies exceed max_length={LLM_POSITIONS} tokens (trainer.overlength=truncate)"
        in caplog.text
    )


def test_skip_leaves_over_long_studies_out(data_with_a_long_report, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        result = run(data_with_a_long_report, tmp_path / "run", "trainer.overlength=skip", "trainer.max_length=1500")
    assert re.search(rf"study {LONG_STUDY}: \d+ tokens exceed max_length=1500; left out of training", caplog.text)
    assert "1 of 12 training studies exceed max_length=1500 tokens (trainer.overlength=skip)" in caplog.text
    state = json.loads((result["checkpoint"] / STATE_FILE).read_text())
    assert state["steps_per_epoch"] == 2  # 11 studies left, effective batch 4


def test_an_unknown_policy_is_refused(data_with_a_long_report, tmp_path):
    with pytest.raises(ValueError, match="trainer.overlength must be one of \\('truncate', 'skip'\\), got 'drop'"):
        run(data_with_a_long_report, tmp_path / "run", "trainer.overlength=drop")
