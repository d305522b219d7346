"""BLEU as HF evaluate's "bleu" (tensorflow/nmt compute_bleu, 13a, smooth=True): hand cases and an oracle."""

import math
import random
from collections import Counter

import numpy as np
import pytest

from reg2rg.evaluation.bleu import bleu_from_statistics, bleu_statistics, sentence_bleu, tokenize_13a


def _ngrams(tokens: list[str], max_order: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for n in range(1, max_order + 1) for i in range(len(tokens) - n + 1))


def nmt_compute_bleu(references: list[list[str]], translations: list[list[str]], max_order: int) -> float:
    """Test oracle: the published compute_bleu algorithm (one reference each, smooth=True), order by order."""
    matches, possible = [0] * max_order, [0] * max_order
    ref_len = hyp_len = 0
    for ref, hyp in zip(references, translations):
        ref_len, hyp_len = ref_len + len(ref), hyp_len + len(hyp)
        for ngram, count in (_ngrams(hyp, max_order) & _ngrams(ref, max_order)).items():
            matches[len(ngram) - 1] += count
        for n in range(1, max_order + 1):
            possible[n - 1] += max(len(hyp) - n + 1, 0)
    precisions = [(m + 1.0) / (p + 1.0) for m, p in zip(matches, possible)]
    geo_mean = math.exp(sum(math.log(p) / max_order for p in precisions))
    if ref_len == 0 or hyp_len == 0:
        return 0.0
    ratio = hyp_len / ref_len
    return geo_mean * (1.0 if ratio > 1.0 else math.exp(1 - 1 / ratio))


# Pair 1: reference "the cat sat on the mat" (6 tokens), hypothesis "the cat on the mat" (5 tokens).
#   matches/possible: 1-grams 5/5, 2-grams 3/4 (the cat, on the, the mat), 3-grams 1/3 (on the mat), 4-grams 0/2
#   smoothed p = 6/6, 4/5, 2/4, 1/3; BP = exp(1 - 6/5) = exp(-0.2)
PAIR_1 = ("the cat sat on the mat", "the cat on the mat")
BLEU_1 = [
    math.exp(-0.2),  # 0.8187
    math.exp(-0.2) * (1 * 0.8) ** (1 / 2),  # 0.7323
    math.exp(-0.2) * (1 * 0.8 * 0.5) ** (1 / 3),  # 0.6032
    math.exp(-0.2) * (1 * 0.8 * 0.5 / 3) ** (1 / 4),  # 0.4947
]
# Pair 2, two sentences, case-sensitive 13a tokens:
#   reference "No effusion . Heart is normal ." (7), hypothesis "No pleural effusion . heart normal ." (7)
#   1-grams: No, effusion, ., ., normal -> 5/7; 2-grams: "effusion .", "normal ." -> 2/6; 3-grams 0/5; 4-grams 0/4
#   smoothed p = 6/8, 3/7, 1/6, 1/5; equal lengths -> BP = exp(1 - 1) = 1
PAIR_2 = ("No effusion. Heart is normal.", "No pleural effusion. heart normal.")
BLEU_2 = [0.75, (0.75 * 3 / 7) ** (1 / 2), (0.75 * 3 / 7 / 6) ** (1 / 3), (0.75 * 3 / 7 / 6 / 5) ** (1 / 4)]
# Corpus: matches 10, 5, 1, 0 of 12, 10, 8, 6 possible; lengths 12 (hypotheses) vs 13 -> BP = exp(1 - 13/12)
CORPUS = [math.exp(1 - 13 / 12) * math.prod([11 / 13, 6 / 11, 2 / 9, 1 / 7][:n]) ** (1 / n) for n in range(1, 5)]


def test_13a_tokenization_splits_punctuation_and_keeps_case():
    assert tokenize_13a("No effusion. Heart is 3.5 mm, (IM274).") == [
        "No",
        "effusion",
        ".",
        "Heart",
        "is",
        "3.5",
        "mm",
        ",",
        "(",
        "IM274",
        ")",
        ".",
    ]


@pytest.mark.parametrize(
    "text", ["a 1-2 b, c.d 3.4 5,6 &quot;x&quot; <skipped> e-", "line-\nbreak\tand 4-\n5", "x .5 -3 , .a a. ,b"]
)
def test_word_by_word_13a_equals_sacrebleu(text):
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    assert tokenize_13a(text) == Tokenizer13a()(text).split()


def test_hand_computed_sentence_and_corpus_bleu():
    per_sample, corpus = sentence_bleu([PAIR_1[0], PAIR_2[0]], [PAIR_1[1], PAIR_2[1]])
    np.testing.assert_allclose(per_sample, [BLEU_1, BLEU_2], rtol=1e-12)
    np.testing.assert_allclose(corpus, CORPUS, rtol=1e-12)
    assert [round(x, 4) for x in BLEU_1] == [0.8187, 0.7323, 0.6032, 0.4947]


def test_matches_compute_bleu_oracle_on_random_texts():
    rng = random.Random(0)
    words = "the a lung nodule No no effusion . , heart Heart is normal mm 3 12 left right ( ) - seen".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))) for _ in range(120)]
    refs, hyps = texts[:60], texts[60:]
    per_sample, corpus = sentence_bleu(refs, hyps)
    tokens = [tokenize_13a(t) for t in refs], [tokenize_13a(t) for t in hyps]
    for n in range(1, 5):
        expected = [nmt_compute_bleu([r], [h], n) for r, h in zip(*tokens)]
        np.testing.assert_allclose(per_sample[:, n - 1], expected, rtol=1e-12)
        assert corpus[n - 1] == pytest.approx(nmt_compute_bleu(*tokens, n), rel=1e-12)


def test_empty_hypothesis_scores_zero_and_short_hypothesis_is_smoothed():
    per_sample, _ = sentence_bleu(["heart normal", "heart normal"], ["", "heart"])
    assert per_sample[0].tolist() == [0.0] * 4
    # "heart": 1-gram 1/1, higher orders 0/0 -> smoothed 1; BP = exp(1 - 2/1)
    np.testing.assert_allclose(per_sample[1], [math.exp(-1)] * 4)


def test_statistics_reject_bad_orders_and_mismatched_inputs():
    with pytest.raises(ValueError, match="max_order"):
        bleu_from_statistics(bleu_statistics(["a"], ["a"]), 5)
    with pytest.raises(ValueError, match="2 references but 1"):
        sentence_bleu(["a", "b"], ["a"])
