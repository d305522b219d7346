"""The mechanism study's diagnostics (studies/mechanism/diagnostics.py): the image-swap check (a model that
reads its images pays for another study's), the linear probe on the visual tokens of one region and the
teacher-forced decision scores of its reports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_model_helpers import random_sample, tiny_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies" / "mechanism"))  # as its scripts import it: from their own folder

from diagnostics import VISUAL_KEYS, image_swap_losses  # noqa: E402 - after the path insert


def test_a_model_reading_images_pays_for_a_swap():
    model = tiny_model()
    samples = [random_sample(3, seed=seed) for seed in range(4)]
    losses = image_swap_losses(model.train(), samples, batch_size=3)
    assert losses["studies"] == 4 and losses["own"] != pytest.approx(losses["swapped"], abs=1e-6)
    assert model.training  # its mode is restored


def test_studies_with_the_same_images_lose_nothing_in_a_swap():
    samples = [random_sample(3, seed=seed) for seed in range(3)]
    same = [{**s, **{key: samples[0][key] for key in VISUAL_KEYS}} for s in samples]
    losses = image_swap_losses(tiny_model(), same)
    assert losses["own"] == pytest.approx(losses["swapped"], rel=1e-6)


def test_only_studies_with_the_same_regions_are_swapped():
    samples = [random_sample(3, seed=0), random_sample(2, seed=1), random_sample(3, seed=2)]
    assert image_swap_losses(tiny_model(), samples)["studies"] == 2
    with pytest.raises(ValueError, match="same regions"):
        image_swap_losses(tiny_model(), samples[:2])


def test_region_tokens_follow_the_layout():
    from diagnostics import region_token_features

    model = tiny_model()
    samples = [random_sample(3, seed=seed) for seed in range(2)]
    layout, width = model.visual.layout, model.visual.fc.out_features
    lung = region_token_features(model, samples, samples[0]["regions"][1])
    assert lung.shape == (2, layout.region_tokens * width)
    assert region_token_features(model, samples, "global").shape == (2, layout.global_tokens * width)
    whole = model.visual.eval()([3], samples[0]["image"][None], samples[0]["texture"], samples[0]["geometry"]).detach()
    second = whole[layout.global_tokens + layout.region_tokens : layout.global_tokens + 2 * layout.region_tokens]
    assert torch.equal(torch.from_numpy(lung[0]), second.flatten())
    with pytest.raises(ValueError, match="no region 'spleen'"):
        region_token_features(model, samples, "spleen")
    with pytest.raises(ValueError, match="no global tokens"):
        region_token_features(tiny_model(use_global=False), samples, "global")


def test_linear_probe_finds_a_feature_that_is_there_and_not_one_that_is_not():
    from diagnostics import linear_probe

    rng = np.random.default_rng(0)
    x, x_test = rng.normal(size=(200, 20)), rng.normal(size=(200, 20))
    readable = linear_probe(x, x[:, 3] > 0, x_test, x_test[:, 3] > 0)
    assert readable["test"] > 0.9 and readable["train"] > 0.9 and readable["auc"] > 0.95
    noise = linear_probe(x, rng.random(200) > 0.5, x_test, rng.random(200) > 0.5)
    assert noise["test"] < 0.65 and 0.5 <= noise["majority"] <= 0.6


def test_input_readability_tells_which_input_shows_a_finding():
    from diagnostics import input_readability

    def study(seed: int, present: int) -> dict:
        sample = random_sample(3, seed=seed)
        sample["texture"][1, :, :4, :4, :4] += 2.0 * present  # only region 1's crop shows it
        return {**sample, "labels": {"Cardiomegaly": present}}

    train, valid = [study(i, i % 2) for i in range(60)], [study(100 + i, i % 2) for i in range(40)]
    region = train[0]["regions"][1]
    auc = input_readability(train, valid, region, "Cardiomegaly", pool=(2, 2, 2))
    assert set(auc) == set(VISUAL_KEYS)
    assert auc["texture"] == 1.0 and auc["geometry"] < 0.8 and auc["image"] < 0.8
    assert input_readability(train, valid, train[0]["regions"][0], "Cardiomegaly", pool=(2, 2, 2))["texture"] < 0.8
    with pytest.raises(ValueError, match="some with and some without 'Cardiomegaly'"):
        input_readability(train, valid[::2], region, "Cardiomegaly")
    with pytest.raises(ValueError, match="has no region 'spleen'"):
        input_readability(train, valid, "spleen", "Cardiomegaly")


def test_max_pooling_shows_a_bright_spot_that_an_average_dilutes():
    from diagnostics import input_readability

    def study(seed: int, present: int) -> dict:
        sample = random_sample(2, seed=seed)
        x, y, z = np.random.default_rng(seed).integers(0, sample["texture"].shape[-3:])
        sample["texture"][1, 0, x, y, z] = 1.0 + 2.0 * present  # one voxel, anywhere in region 1's crop
        return {**sample, "labels": {"Coronary artery wall calcification": present}}

    train, valid = [study(i, i % 2) for i in range(60)], [study(100 + i, i % 2) for i in range(40)]
    region, finding = train[0]["regions"][1], "Coronary artery wall calcification"
    assert input_readability(train, valid, region, finding, pool=(2, 2, 2), reduce="max")["texture"] == 1.0
    assert input_readability(train, valid, region, finding, pool=(2, 2, 2), reduce="mean")["texture"] < 0.8
    with pytest.raises(ValueError, match="reduce must be one of"):
        input_readability(train, valid, region, finding, reduce="median")


def test_the_input_probe_script_prints_its_table(tiny_data, tmp_path):
    from test_training_helpers import data_overrides

    command = [
        sys.executable,
        "studies/mechanism/probe_inputs.py",
        *data_overrides(tiny_data),
        "n_train=12",
        "pool=[2,2,2]",
        f"hydra.run.dir={tmp_path}",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    for pooling in ("mean", "max"):
        assert re.search(
            rf"\| heart \| Cardiomegaly \| {pooling} \| [01]\.\d{{3}} \| [01]\.\d{{3}} \| [01]\.\d{{3}} \|", done.stdout
        )
    assert "| pleura | Pleural effusion | | not scored: every validation study has it |" in done.stdout


def test_a_decision_score_is_the_log_odds_where_the_wordings_part():
    from diagnostics import decision_scores

    model = tiny_model().train()
    samples = [random_sample(3, seed=seed) for seed in range(3)]
    region = samples[0]["regions"][1]
    normal, abnormal = "The lung is clear.", "The lung shows a mass."
    scores = decision_scores(model, samples, region, normal, abnormal, batch_size=2)
    assert scores.shape == (3,) and model.training  # its mode is restored
    collate = model.eval().collator()
    for sample, score in zip(samples, scores):  # batches of 2 and 1: right padding changes nothing
        as_normal, as_abnormal = (
            {**sample, "region_reports": [sample["region_reports"][0], text, sample["region_reports"][2]]}
            for text in (normal, abnormal)
        )
        ids, other = collate.encode(as_normal)[0], collate.encode(as_abnormal)[0]
        part = next(k for k, (a, b) in enumerate(zip(ids, other)) if a != b)
        with torch.no_grad():
            log_probs = model(**collate([as_normal])).logits[0].log_softmax(-1)
        assert score == pytest.approx(
            float(log_probs[part - 1, other[part]] - log_probs[part - 1, ids[part]]), abs=1e-5
        )
    with pytest.raises(ValueError, match="no region 'spleen'"):
        decision_scores(model, samples, "spleen", normal, abnormal)
    with pytest.raises(ValueError, match="are the same"):
        decision_scores(model, samples, region, normal, normal)


def test_decision_auc_ranks_positives_over_negatives():
    from diagnostics import decision_auc

    assert decision_auc(np.array([2.0, 3.0, -1.0, 0.0]), np.array([1, 1, 0, 0])) == 1.0
    assert decision_auc(np.array([-2.0, 3.0, -1.0, 0.0]), np.array([1, 1, 0, 0])) == 0.5
    assert decision_auc(np.zeros(4), np.array([1, 0, 1, 0])) == 0.5  # the same score for every study
    with pytest.raises(ValueError, match="positive and negative"):
        decision_auc(np.zeros(2), np.array([1, 1]))


def test_a_swap_takes_one_input_of_one_region_from_a_study_with_the_other_label():
    from diagnostics import swap_region_input

    samples = [random_sample(3, seed=seed) for seed in range(4)]
    labels = np.array([1, 1, 0, 1])
    region = samples[0]["regions"][1]
    swapped = swap_region_input(samples, labels, region, "geometry")
    for i, donor in enumerate((2, 2, 3, 2)):  # the next study with the other label, cyclically
        assert torch.equal(swapped[i]["geometry"][1], samples[donor]["geometry"][1])
        assert torch.equal(swapped[i]["geometry"][[0, 2]], samples[i]["geometry"][[0, 2]])
        assert swapped[i]["texture"] is samples[i]["texture"] and swapped[i]["image"] is samples[i]["image"]
    assert not torch.equal(samples[0]["geometry"][1], samples[2]["geometry"][1])  # the input is untouched
    images = swap_region_input(samples, labels, region, "image")
    assert [s["image"] is samples[d]["image"] for s, d in zip(images, (2, 2, 3, 2))] == [True] * 4
    with pytest.raises(ValueError, match="both labels"):
        swap_region_input(samples, np.ones(4), region, "texture")
    with pytest.raises(ValueError, match="part must be one of"):
        swap_region_input(samples, labels, region, "mask")


def test_probes_read_a_finished_run(tiny_data, tmp_path):
    from diagnostics import decisions_run, probe_run
    from test_training_helpers import compose_train, tiny_overrides

    from reg2rg.training import train

    run = tmp_path / "run"
    train(compose_train([*tiny_overrides(tiny_data, run), "trainer.epochs=1"]))
    result = probe_run(str(run), "lung", "Pleural effusion", n_train=12)
    assert result["checkpoint"].endswith("checkpoint-3")  # 12 studies, batches of 4
    assert 0 <= result["test"] <= 1 and 0.5 <= result["majority"] <= 1 and 0 <= result["train"] <= 1
    with pytest.raises(ValueError, match="unknown finding 'Pneumothorax'"):
        probe_run(str(run), "lung", "Pneumothorax", n_train=2)
    decisions = decisions_run(str(run), "heart", "Cardiomegaly")  # one of the 2 validation studies has it
    assert decisions["checkpoint"] == result["checkpoint"] and decisions["auc"] in (0.0, 0.5, 1.0)
    assert (decisions["studies"], decisions["positives"]) == (2, 1)
    assert "enlarged" in decisions["abnormal"] and "normal" in decisions["normal"]
    assert set(decisions["swapped"]) == {"image", "texture", "geometry"}  # the demo's model reads all three
    assert all(auc in (0.0, 0.5, 1.0) for auc in decisions["swapped"].values())
    with pytest.raises(ValueError, match="with and without 'Pleural effusion'"):  # both have it
        decisions_run(str(run), "pleura", "Pleural effusion")
    with pytest.raises(ValueError, match="has a region 'spleen'"):
        decisions_run(str(run), "spleen", "Cardiomegaly")
