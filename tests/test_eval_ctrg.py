"""Reproduce the Reg2RG authors' published CTRG-Chest-548K means from their own predictions (when present).

The file is the authors' results/Reg2RG_ctrg/ctrg_combined_reports_rm_region_text.csv (public Reg2RG
repository); it is not shipped here. Point REG2RG_CTRG_CSV at a local copy to run this test.
"""

import os
from pathlib import Path

import pytest

from reg2rg.evaluation.inputs import read_predictions
from reg2rg.evaluation.nlg import reg2rg_scores

PUBLISHED = {"BLEU-1": 0.4963, "BLEU-4": 0.3204, "METEOR": 0.4971, "ROUGE-L": 0.4776}
CSV = Path(os.environ.get("REG2RG_CTRG_CSV", "data/reference/ctrg_combined_reports_rm_region_text.csv"))


@pytest.mark.skipif(not CSV.is_file(), reason=f"the authors' CTRG predictions are not at {CSV} (set REG2RG_CTRG_CSV)")
def test_published_ctrg_means_are_reproduced():
    pairs = read_predictions(CSV, gt_column="GT_whole_report", pred_column="Pred_whole_report")
    summary = reg2rg_scores(pairs.references, pairs.predictions).summary()
    assert {name: round(summary[name].mean, 4) for name in PUBLISHED} == PUBLISHED
