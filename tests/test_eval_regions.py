"""Region recognition with full area names, and region-level NLG and CE tables."""

import numpy as np
import pytest

from reg2rg.evaluation.regions import RegionPairs, recognize_regions, region_ce_table, region_nlg_table
from reg2rg.evaluation.rules import RuleLabeler

GT = [
    "The region 0 is lung: Emphysema in both lungs. The region 1 is trachea and bronchie: Trachea is open. "
    "The region 2 is heart: The heart is enlarged.",
    "The region 0 is pleura: No pleural effusion. The region 1 is lung: A nodule in the right upper lobe.",
    "No region prefix here.",
]
PRED = [
    # region 1 names "trachea" only: wrong with full names (the official first-word comparison called it right)
    "The region 0 is lung: Emphysema in the lungs. The region 1 is trachea: Trachea is open. "
    "The region 2 is heart: Cardiomegaly.",
    "The region 0 is lung: Small pleural effusion. The region 1 is lung: A nodule in the left upper lobe.",
    "The region 0 is lung: Clear lungs.",
]


def test_recognition_counts_full_names():
    recognition = recognize_regions(GT, PRED)
    table = recognition.table
    # lung: TP 2 (sample 0 region 0, sample 1 region 1), FP 1 (pleura called lung); pleura: FN 1; trachea: FN 1
    assert table.loc["lung", ["precision", "recall", "support"]].tolist() == pytest.approx([2 / 3, 1.0, 2])
    assert table.loc["pleura", ["precision", "recall", "support"]].tolist() == [0.0, 0.0, 1]
    assert table.loc["trachea and bronchie", "recall"] == 0.0 and table.loc["heart", "f1"] == 1.0
    assert table.loc["micro", ["precision", "recall"]].tolist() == pytest.approx([3 / 4, 3 / 5])
    np.testing.assert_allclose(recognition.sample_accuracy, [2 / 3, 1 / 2, np.nan])
    assert recognition.metrics()["sample_accuracy"] == pytest.approx({"mean": 7 / 12, "std": 1 / 12, "n": 2})


def test_region_pairs_keep_regions_present_in_both():
    pairs = RegionPairs.split(GT, PRED)
    assert pairs.regions == ["heart", "lung"]
    assert pairs.samples == {"heart": [0], "lung": [0, 1]}
    # sample 1 calls two regions "lung": their texts are joined
    assert pairs.predictions["lung"] == [
        "Emphysema in the lungs.",
        "Small pleural effusion. A nodule in the left upper lobe.",
    ]


def test_region_tables():
    pairs = RegionPairs.split(GT, PRED)
    nlg = region_nlg_table(pairs)
    assert nlg.index.tolist() == ["heart", "lung", "micro", "macro"] and nlg["n"].tolist() == [1, 2, 3, 3]
    assert nlg.loc["micro", "BLEU-1"] == pytest.approx(
        np.mean([nlg.loc["heart", "BLEU-1"]] + [nlg.loc["lung", "BLEU-1"]] * 2)
    )
    ce = region_ce_table(pairs, RuleLabeler())
    # heart: cardiomegaly in both; lung: emphysema and nodule in both (TP 2), pleural effusion only predicted (FP 1)
    assert ce.loc["heart", ["precision", "recall", "f1", "support"]].tolist() == [1.0, 1.0, 1.0, 1]
    assert ce.loc["lung", ["precision", "recall", "support"]].tolist() == pytest.approx([2 / 3, 1.0, 2])
    assert ce.loc["micro", ["n", "support"]].tolist() == [3, 3]
