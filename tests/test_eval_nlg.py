"""Protocol "reg2rg": prefixes stripped, per-sample scores, mean/std/corpus."""

import math

import numpy as np
import pytest

from reg2rg.evaluation.cider import MIN_CIDER_STUDIES, cider
from reg2rg.evaluation.nlg import REG2RG_METRICS, reg2rg_scores

REFS = ["The region 0 is lung: the cat sat on the mat", "The region 0 is heart: No effusion. Heart is normal."]
PREDS = ["The region 0 is lung: the cat on the mat", "The region 0 is heart: No pleural effusion. heart normal."]


@pytest.fixture(scope="module")
def scores():
    return reg2rg_scores(REFS, PREDS)


def test_per_sample_table_and_hand_values(scores):
    assert list(scores.per_sample.columns) == list(REG2RG_METRICS)
    # pair 1 after stripping: BLEU-1 = exp(-0.2), ROUGE-1 = ROUGE-L = 10/11 (see test_eval_bleu / test_eval_rouge)
    assert scores.per_sample.loc[0, "BLEU-1"] == pytest.approx(math.exp(-0.2))
    assert scores.per_sample.loc[0, "ROUGE-L"] == pytest.approx(10 / 11)
    assert scores.per_sample.loc[1, "BLEU-1"] == pytest.approx(0.75)


def test_summary_mean_std_and_corpus(scores):
    summary = scores.summary()
    bleu1 = np.array([math.exp(-0.2), 0.75])
    assert summary["BLEU-1"].mean == pytest.approx(bleu1.mean())
    assert summary["BLEU-1"].std == pytest.approx(bleu1.std())  # population std, as numpy's default
    assert summary["BLEU-1"].corpus == pytest.approx(math.exp(1 - 13 / 12) * 11 / 13)
    assert summary["METEOR"].corpus == pytest.approx(summary["METEOR"].mean)


def test_cider_is_not_a_number_below_the_minimum_of_studies(scores):
    """Two pairs: CIDEr's IDF weights would come from two references; it is NaN, None in metrics.json."""
    assert len(REFS) < MIN_CIDER_STUDIES
    assert scores.per_sample["CIDEr"].isna().all() and math.isnan(scores.corpus["CIDEr"])
    assert scores.summary()["CIDEr"].as_dict() == {"mean": None, "std": None, "corpus": None}
    assert scores.summary()["BLEU-1"].as_dict()["mean"] == pytest.approx((math.exp(-0.2) + 0.75) / 2)


def test_cider_from_the_minimum_of_studies_on():
    """Ten studies of ten different sentences: a copy scores pycocoevalcap's CIDEr, here 10 for each study."""
    references = [f"finding {i} seen in segment {i} of the lung" for i in range(MIN_CIDER_STUDIES)]
    scores = reg2rg_scores(references, references)
    summary = scores.summary()["CIDEr"]
    assert summary.corpus == pytest.approx(summary.mean) and summary.std == pytest.approx(0.0, abs=1e-12)
    assert scores.per_sample["CIDEr"].to_numpy() == pytest.approx(cider(references, references)[1])
    assert summary.mean == pytest.approx(10.0)  # cosine 1 at each order, times 10


def test_prefixes_do_not_change_scores(scores):
    bare = reg2rg_scores([r.split(": ", 1)[1] for r in REFS], [p.split(": ", 1)[1] for p in PREDS])
    assert bare.per_sample.equals(scores.per_sample)


def test_rejects_mismatched_or_empty_inputs():
    with pytest.raises(ValueError, match="2 references but 1"):
        reg2rg_scores(REFS, PREDS[:1])
    with pytest.raises(ValueError, match="no report pairs"):
        reg2rg_scores([], [])
