"""ISRG-CT through the shared trainer (family: isrg): phantoms prepared, a few steps, a checkpoint the session
loads, and the click-by-click evaluation files."""

import json

import numpy as np
import pytest
from test_training_helpers import compose_train

from reg2rg.isrg.session import InteractiveSession, load_isrg_model
from reg2rg.isrg.studies import load_studies
from reg2rg.training import train

# a few phantoms, 2 steps, 2 clicks (test_isrg_baselines.py uses them too)
TINY_RUN = [
    "data.phantoms.n_train=8",
    "data.phantoms.n_valid=4",
    "data.phantoms.n_zeroshot=2",
    "trainer.max_steps=2",
    "evaluation.clicks=2",
    "evaluation.table_click=2",
    "logger=none",
]
TINY = [
    "model.dim=16",
    "model.encoder_dim=16",
    "model.encoder_depth=2",
    "model.global_attn_indexes=[1]",
    "model.encoder_heads=2",
    "model.decoder_heads=2",
    *TINY_RUN,
]


@pytest.mark.slow
def test_isrg_demo_trains_checkpoints_and_evaluates(tmp_path):
    cfg = compose_train(
        ["experiment=isrg_demo", f"data.cache_dir={tmp_path / 'cache'}", f"output_dir={tmp_path / 'run'}", *TINY]
    )
    result = train(cfg)
    assert result["exit_code"] == 0 and result["step"] == 2
    evaluation = tmp_path / "run" / "evaluation"
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics == result["metrics"] and metrics["method"] == "ISRG-CT (Full)"
    assert len(metrics["valid"]["dsc"]) == 2 and metrics["zeroshot"]["studies"] == 2
    assert (evaluation / "per_click.png").stat().st_size > 0 and "Table 3 layout" in (
        evaluation / "summary.md"
    ).read_text()
    model = load_isrg_model(result["checkpoint"])
    study = load_studies(tmp_path / "cache", "valid")[0]
    click = np.argwhere(study.label)[len(np.argwhere(study.label)) // 2]
    session = InteractiveSession(model, study.volume_hu, np.eye(4))
    assert session.click(*click).mask.shape == study.volume_hu.shape
