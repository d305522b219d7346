"""``family=medregion`` through the shared training run: the testbed, a few steps, the evaluation files."""

from __future__ import annotations

import json

import pytest
from test_training_helpers import TINY_TRAINER, compose_train

from reg2rg.training import train
from reg2rg.training.family import family_for


@pytest.mark.slow
def test_demo_experiment_trains_and_evaluates_at_test_size(tmp_path):
    cfg = compose_train(
        [
            "experiment=medregion_demo",
            f"output_dir={tmp_path / 'run'}",
            f"data.testbed.folder={tmp_path / 'testbed'}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.testbed.n_train=4",
            "data.testbed.n_valid=2",
            "data.testbed.phantom.shape=[48,48,16]",
            "data.slice_encoder.volume_shape=[84,84,8]",
            "model.depth=8",
            "model.region_tokens=6",
            "tokenizer_vocab_size=400",
            "logger=none",
            "trainer.max_steps=2",
            "evaluation.generation.max_new_tokens=8",
            *TINY_TRAINER,
        ]
    )
    assert family_for(cfg).__class__.__name__ == "Family" and cfg.family == "medregion"
    result = train(cfg)
    assert result["step"] == 2 and result["exit_code"] == 0
    assert (result["checkpoint"] / "reg2rg_modules.safetensors").is_file()
    evaluation = tmp_path / "run" / "evaluation"
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics == result["metrics"] and metrics["studies"] == 2
    assert set(metrics["findings"]) >= {"nodule_count", "nodule_lobes", "nodule_count_and_lobes"}
    assert set(metrics["regions"]) <= {"lung", "airway", "mediastinum", "heart", "osseous", "abdomen"}
    rows = [json.loads(line) for line in (evaluation / "predictions.jsonl").read_text().splitlines()]
    assert [row["study_id"] for row in rows] == ["valid_0000", "valid_0001"]
    assert rows[0]["reference"].startswith("[Lung]: ")
