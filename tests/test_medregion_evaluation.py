"""Scoring MedRegion-CT reports against the testbed's truth."""

from __future__ import annotations

import pytest

from reg2rg.medregion.evaluation import nodule_statement, score, study_checks, summary_markdown
from reg2rg.medregion.prompt import parse_target, target_text
from reg2rg.medregion.reports import region_reports

CHAMBERS = {"left_atrium": 50.0, "right_atrium": 50.0, "left_ventricle": 50.0, "right_ventricle": 50.0}
TRUTH = {
    "organs_ml": CHAMBERS,
    "nodules": [
        {"location": "left_lower_lobe", "diameter_mm": 12.0, "first_voxel": [60, 30, 4]},
        {"location": "right_upper_lobe", "diameter_mm": 20.0, "first_voxel": [20, 50, 20]},
        {"location": "left_lower_lobe", "diameter_mm": 11.0, "first_voxel": [62, 20, 5]},
    ],
    "cysts": [{"location": "liver", "diameter_mm": 20.0}],
    "effusion": {"side": "left", "volume_ml": 80.0},
}
NONE = {"organs_ml": CHAMBERS, "nodules": [], "cysts": [], "effusion": None}


def test_reports_state_the_truth_and_parse_back():
    reports = region_reports(TRUTH)
    # Right to left (the first voxel's x), each lobe once.
    assert reports["lung"] == "Three nodules in the right upper lobe and the left lower lobe. Left pleural effusion."
    assert reports["abdomen"] == "A cyst in the liver." and reports["heart"] == "Heart size is normal."
    assert region_reports(NONE)["lung"] == "No lung nodule. No pleural effusion."
    assert nodule_statement(reports["lung"]) == (3, frozenset({"right_upper_lobe", "left_lower_lobe"}))
    assert nodule_statement("No lung nodule.") == (0, frozenset())
    assert nodule_statement("The lungs are clear.") is None


def test_checks_and_scores():
    perfect = parse_target(target_text(region_reports(TRUTH)))
    assert all(study_checks(perfect, TRUTH).values())
    wrong_lobe = {
        **perfect,
        "lung": "Three nodules in the right upper lobe and the left upper lobe. Left pleural effusion.",
    }
    checks = study_checks(wrong_lobe, TRUTH)
    assert checks["nodule_count"] and not checks["nodule_lobes"] and not checks["nodule_count_and_lobes"]
    assert checks["effusion_side"]
    entries = [{"region_reports": region_reports(t), "truth": t} for t in (TRUTH, NONE)]
    predictions = [
        {"text": target_text(region_reports(TRUTH)), "regions": perfect},
        {
            "text": "[Lung]: One nodule in the right middle lobe.",
            "regions": {"lung": "One nodule in the right middle lobe."},
        },
    ]
    metrics = score(predictions, entries)
    assert metrics["findings"]["nodule_count_and_lobes"] == 0.5 and metrics["findings"]["heart"] == 0.5
    assert metrics["regions"]["heart"]["exact"] == 0.5 and metrics["regions"]["lung"]["exact"] == 0.5
    # The rule labeler: the first study's nodule, effusion found; the second's invented nodule a false positive.
    assert metrics["ce"]["Lung nodule F1"] == pytest.approx(2 / 3)
    assert metrics["ce"]["Pleural effusion F1"] == 1.0
    assert "| nodule_count_and_lobes | 0.500 |" in summary_markdown(metrics)
