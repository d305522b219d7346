"""ISRG-CT lesion metrics against MONAI's."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance
from scipy import ndimage

from reg2rg.isrg.metrics import accuracy, dice, hd95
from reg2rg.isrg.summary import comparison_markdown, split_metrics


def _blobs(seed: int, shape=(20, 24, 28)):
    rng = np.random.default_rng(seed)
    return [ndimage.gaussian_filter(rng.random(shape), 2) > t for t in (0.52, 0.51)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.8, 0.8)])
def test_hd95_and_dice_equal_monai(seed, spacing):
    prediction, target = _blobs(seed)
    as_tensor = [torch.from_numpy(m)[None, None] for m in (prediction, target)]
    expected = compute_hausdorff_distance(*as_tensor, include_background=True, percentile=95, spacing=spacing)
    assert hd95(prediction, target, spacing) == pytest.approx(expected.item(), rel=1e-5)
    assert dice(prediction, target) == pytest.approx(compute_dice(*as_tensor, include_background=True).item())


def test_a_mask_touching_the_border_matches_monai_and_identical_masks_score_perfectly():
    target = np.zeros((12, 12, 12), bool)
    target[0:6, 3:9, 5:12] = True
    prediction = np.roll(target, 2, axis=1)
    expected = compute_hausdorff_distance(
        torch.from_numpy(prediction)[None, None], torch.from_numpy(target)[None, None], percentile=95
    )
    assert hd95(prediction, target) == pytest.approx(expected.item(), rel=1e-5)
    assert hd95(target, target) == 0.0 and dice(target, target) == 1.0


def test_an_empty_prediction_has_no_finite_hd95_and_zero_dice():
    _, target = _blobs(0)
    assert hd95(np.zeros_like(target), target) == float("inf")
    assert dice(np.zeros_like(target), target) == 0.0


def test_accuracy_per_attribute():
    predicted = np.array([[0, 1, 2, 0, 1], [1, 1, 2, 1, 1]])
    labels = np.array([[0, 0, 2, 1, 1], [1, 1, 0, 1, 0]])
    assert accuracy(predicted, labels).tolist() == [1.0, 0.5, 0.5, 0.5, 0.5]


def _records(dsc_per_click, predicted):
    """Two studies of one type with the given per-click DSC, predicted attributes at every click, labels 0."""
    return [
        {"lesion_type": "t", "dsc": d, "hd95": [1.0] * len(d), "predicted": [p] * len(d), "attributes": [0] * 5}
        for d, p in zip(dsc_per_click, predicted)
    ]


def _two_runs():
    majority = np.zeros(5, dtype=int)
    first = _records([[0.5, 0.7], [0.7, 0.9]], [[0, 0, 0, 0, 0], [0, 1, 1, 1, 1]])
    second = _records([[0.1, 0.2], [0.3, 0.4]], [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    return [
        {"method": method, "clicks": 2, "table_click": 2, "valid": split_metrics(records, majority, 2)}
        for method, records in (("ISRG-CT (Full)", first), ("UNet", second))
    ]


def test_a_comparison_puts_each_run_beside_the_others_and_the_majority_class_once():
    table = comparison_markdown(_two_runs())
    assert "| valid | ISRG-CT (Full) | 0.600 | 0.800 | 1.00 |" in table
    assert "| valid | UNet | 0.200 | 0.300 | 1.00 |" in table
    assert "| valid | ISRG-CT (Full) | 1.000 | 0.500 | 0.500 | 0.500 | 0.500 | 0.600 |" in table
    assert "| valid | UNet | 0.000 | 0.000 | 0.000 | 0.000 | 0.000 | 0.000 |" in table
    assert table.count("majority class") == 1 and "zeroshot" not in table


def test_compare_script_names_runs_by_label_and_writes_table_and_plot(tmp_path):
    folders = []
    for index, metrics in enumerate(_two_runs()):
        folder = tmp_path / f"run{index}" / "evaluation"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(metrics))
        folders.append(str(folder.parent))
    script = Path(__file__).parents[1] / "scripts" / "compare_isrg.py"
    out = tmp_path / "comparison"
    command = [sys.executable, str(script), *folders, "--labels", "seed 0", "seed 1", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| valid | seed 1 | 0.200 | 0.300 | 1.00 |" in (out / "comparison.md").read_text()
    assert (out / "per_click.png").stat().st_size > 0
    missing = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True)
    assert missing.returncode != 0 and "metrics.json: not found" in missing.stderr
