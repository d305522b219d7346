"""The evaluation benchmark runs end to end on a few pairs (the full 1,564-pair run is scripts/benchmark.py)."""

import json

import numpy as np
import pytest

from reg2rg.benchmarks.evaluation import run, synthetic_pairs
from reg2rg.evaluation.cider import MIN_CIDER_STUDIES
from reg2rg.evaluation.text import split_regions, strip_region_prefixes


def test_synthetic_pairs_have_radgenome_shape():
    references, predictions = synthetic_pairs(20)
    assert len(references) == len(predictions) == 20
    assert all(len(split_regions(text)) == 10 for text in references + predictions)
    assert 185 <= sum(len(strip_region_prefixes(t).split()) for t in references) / 20 <= 230


@pytest.mark.slow
def test_run_reports_both_timings(tmp_path):
    result = run(n_pairs=MIN_CIDER_STUDIES, json_path=tmp_path / "evaluation.json")  # fewer: no CIDEr to compare
    assert result["ours_s"] > 0 and result["reference_s"] > 0
    # ours and the reference agree on scores that say something: the pairs share some words, not all
    assert all(0 < mean < 1 for name, mean in result["reg2rg_means"].items() if name != "CIDEr")
    assert result["max_abs_score_difference"] < 1e-9
    assert set(result["ours_stages_s"]) == {"ce", "nlg_reg2rg", "regions"}
    assert json.loads((tmp_path / "evaluation.json").read_text())["n_pairs"] == MIN_CIDER_STUDIES


def test_the_reference_path_is_a_real_scorer():
    """The benchmark's reference (the official per-call way) gives a report against itself full marks and the
    benchmark's predictions less, so its agreement with ours above is that of two working scorers."""
    from reg2rg.benchmarks.evaluation import _official_nlg

    references, predictions = ([strip_region_prefixes(text) for text in texts] for texts in synthetic_pairs(3))
    exact = [0, 1, 2, 3, 5, 6, 7]  # BLEU-1..4, ROUGE-1, ROUGE-2, ROUGE-L (REG2RG_METRICS order)
    assert np.allclose(_official_nlg(references, references)[:, exact], 1.0)
    assert (_official_nlg(references, predictions)[:, exact] < 1.0).all()
