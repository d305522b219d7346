"""The evaluation benchmark runs end to end on a few pairs (the full 1,564-pair run is scripts/benchmark.py)."""

import json

from reg2rg.benchmarks.evaluation import run, synthetic_pairs
from reg2rg.evaluation.cider import MIN_CIDER_STUDIES
from reg2rg.evaluation.text import split_regions, strip_region_prefixes


def test_synthetic_pairs_have_radgenome_shape():
    references, predictions = synthetic_pairs(20)
    assert len(references) == len(predictions) == 20
    assert all(len(split_regions(text)) == 10 for text in references + predictions)
    assert 185 <= sum(len(strip_region_prefixes(t).split()) for t in references) / 20 <= 230


def test_run_reports_both_timings(tmp_path):
    result = run(n_pairs=MIN_CIDER_STUDIES, json_path=tmp_path / "evaluation.json")  # fewer: no CIDEr to compare
    assert result["ours_s"] > 0 and result["reference_s"] > 0
    assert result["speedup"] == result["reference_s"] / result["ours_s"]
    assert result["max_abs_score_difference"] < 1e-9
    assert set(result["ours_stages_s"]) == {"ce", "nlg_reg2rg", "regions"}
    assert json.loads((tmp_path / "evaluation.json").read_text())["n_pairs"] == MIN_CIDER_STUDIES
