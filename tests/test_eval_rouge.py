"""ROUGE-1/2/L F-measures equal rouge_score's RougeScorer (no stemmer), with a bit-parallel LCS."""

import random

import pytest
from rouge_score.rouge_scorer import RougeScorer, _lcs_table

from reg2rg.evaluation.rouge import lcs_length, rouge_f


def test_hand_computed_rouge():
    # reference "the cat sat on the mat", prediction "the cat on the mat":
    #   ROUGE-1: 5 of 5 predicted and 5 of 6 reference unigrams -> F = 2 * 1 * 5/6 / (1 + 5/6) = 10/11
    #   ROUGE-2: 3 of 4 and 3 of 5 bigrams -> F = 2 * 0.75 * 0.6 / 1.35 = 2/3
    #   ROUGE-L: LCS "the cat on the mat" = 5 -> 10/11
    assert rouge_f("the cat sat on the mat", "the cat on the mat") == pytest.approx((10 / 11, 2 / 3, 10 / 11))


def test_equals_rouge_score_on_constructed_reports():
    rng = random.Random(1)
    words = "No pleural effusion. Heart-size is normal; 3.5 mm nodule in the RIGHT lobe, seen (IM 12) the".split()
    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    for _ in range(200):
        reference = " ".join(rng.choice(words) for _ in range(rng.randint(0, 50)))
        prediction = " ".join(rng.choice(words) for _ in range(rng.randint(0, 50)))
        expected = scorer.score(reference, prediction)
        assert rouge_f(reference, prediction) == (
            expected["rouge1"].fmeasure,
            expected["rouge2"].fmeasure,
            expected["rougeL"].fmeasure,
        )


def test_bit_parallel_lcs_equals_dynamic_programming():
    rng = random.Random(2)
    for _ in range(500):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == (_lcs_table(a, b)[-1][-1] if a and b else 0)
