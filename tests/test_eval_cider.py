"""CIDEr equals pycocoevalcap's Cider().compute_score (one reference per sample, whitespace tokens)."""

import random

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from reg2rg.evaluation.cider import MIN_CIDER_STUDIES, cider


def pycocoevalcap_cider(references, predictions):
    keys = range(len(references))
    score, scores = Cider().compute_score(
        {k: [r] for k, r in zip(keys, references)}, {k: [p] for k, p in zip(keys, predictions)}
    )
    return score, np.asarray(scores)


def test_equals_pycocoevalcap_on_constructed_texts():
    rng = random.Random(4)
    words = "no pleural effusion . heart is normal nodule in the right lobe , 3 mm".split()
    for _ in range(40):
        n = rng.randint(1, 12)
        references = [" ".join(rng.choices(words, k=rng.randint(1, 25))) for _ in range(n)]
        predictions = [" ".join(rng.choices(words, k=rng.randint(0, 25))) for _ in range(n)]
        corpus, per_sample = cider(references, predictions)
        expected_corpus, expected = pycocoevalcap_cider(references, predictions)
        np.testing.assert_allclose(per_sample, expected, rtol=1e-10, atol=1e-12)
        assert corpus == pytest.approx(expected_corpus, rel=1e-10, abs=1e-12)


def test_identical_texts_and_disjoint_texts():
    corpus, per_sample = cider(["a b c", "d e f", "a b d"], ["a b c", "x y z", "a b"])
    assert per_sample[1] == 0.0 and per_sample[0] > per_sample[2] > 0
    assert corpus == pytest.approx(per_sample.mean())


def test_one_study_scores_zero_even_for_a_copy():
    """Why the evaluation reports no CIDEr below MIN_CIDER_STUDIES: IDF = log(1) - log(1) = 0 for every n-gram."""
    assert pycocoevalcap_cider(["heart is normal"], ["heart is normal"])[0] == 0.0
    corpus, per_sample = cider(["heart is normal"], ["heart is normal"])
    assert corpus == 0.0 and per_sample.tolist() == [0.0]
    assert MIN_CIDER_STUDIES == 10


def test_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="matching non-empty"):
        cider(["a"], [])
