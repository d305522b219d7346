"""The ISRG-CT baselines (a MONAI UNet and a 3D CNN attribute classifier): click maps, learning a lesion from
clicks, and a run through the shared trainer whose checkpoint the session loads."""

import json
import math

import numpy as np
import pytest
import torch
from test_isrg_training import TINY_RUN
from test_training_helpers import compose_train

from reg2rg.isrg.baselines import UNetBaselines, click_maps
from reg2rg.isrg.prompts import NEGATIVE, PAD, POSITIVE
from reg2rg.isrg.session import InteractiveSession, load_isrg_model
from reg2rg.isrg.studies import load_studies
from reg2rg.training import train

TINY = dict(crop_size=16, unet_channels=(8, 16), residual_units=1, classifier_channels=(8,))


def test_click_maps_put_each_label_in_its_channel():
    points = torch.tensor([[[3, 4, 5], [10, 10, 10], [15, 0, 15]]])
    labels = torch.tensor([[POSITIVE, NEGATIVE, PAD]])
    maps = click_maps(points, labels, 16, sigma=2.0)
    assert maps.shape == (1, 2, 16, 16, 16)
    assert maps[0, 0, 3, 4, 5] == 1 and maps[0, 1, 10, 10, 10] == 1
    assert maps[0, 0, 10, 10, 10] < 1e-5 and maps[0, 1, 3, 4, 5] < 1e-5
    assert math.isclose(maps[0, 0, 3, 4, 7].item(), math.exp(-0.5), rel_tol=1e-6)  # 2 voxels = one sigma away
    assert maps[0, :, 15, 0, 15].max() < 1e-5  # a padding point draws nothing


def test_the_unet_baseline_learns_a_bright_cube_from_clicks():
    torch.manual_seed(0)
    model = UNetBaselines(**TINY, train_clicks=2)
    image = torch.randn(4, 1, 16, 16, 16) * 0.3
    mask = torch.zeros(4, 16, 16, 16, dtype=torch.bool)
    for i, start in enumerate((2, 4, 6, 8)):
        mask[i, start : start + 6, start : start + 6, 4:10] = True
    image[:, 0][mask] += 1.0
    attributes = torch.tensor([[0, 1, 2, 0, 1], [1, 0, 1, 1, 0]] * 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(80):
        loss = model(image, mask, attributes).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        centre = torch.tensor([[[5, 5, 7]]])
        logits, attribute_logits = model.decode(model.encode(image[:1]), centre, torch.tensor([[POSITIVE]]), None)
    predicted = logits[0] > 0
    dice = 2 * (predicted & mask[0]).sum() / (predicted.sum() + mask[0].sum())
    assert dice > 0.9
    assert [int(x.argmax()) for x in attribute_logits] == attributes[0].tolist()


@pytest.mark.slow
def test_baselines_train_evaluate_and_load_through_the_shared_run(tmp_path):
    overrides = [
        "experiment=isrg_demo",
        "model=isrg_baseline",
        "model.unet_channels=[8,16,32]",
        "model.classifier_channels=[8]",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"output_dir={tmp_path / 'run'}",
        *TINY_RUN,
    ]
    result = train(compose_train(overrides))
    assert result["exit_code"] == 0 and result["step"] == 2
    metrics = json.loads((tmp_path / "run" / "evaluation" / "metrics.json").read_text())
    assert metrics["method"] == UNetBaselines.method and len(metrics["valid"]["dsc"]) == 2
    model = load_isrg_model(result["checkpoint"])
    assert isinstance(model, UNetBaselines) and model.config["unet_channels"] == [8, 16, 32]
    study = load_studies(tmp_path / "cache", "valid")[0]
    click = np.argwhere(study.label)[0]
    result = InteractiveSession(model, study.volume_hu, np.eye(4)).click(*click)
    assert result.mask.shape == study.volume_hu.shape and result.report
