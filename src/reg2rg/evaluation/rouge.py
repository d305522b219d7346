"""ROUGE-1/2/L F-measures equal to ``rouge_score.RougeScorer(use_stemmer=False).score(reference, prediction)``.

Same tokenizer (rouge_score's default: lower-case, alphanumeric runs) and the same formulas; the
longest common subsequence is computed bit-parallel (Hyyro 2004, one big-integer step per token)
instead of rouge_score's quadratic table, which dominates its cost on ~200-word reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

ROUGE_TYPES: tuple[str, ...] = ("ROUGE-1", "ROUGE-2", "ROUGE-L")


@lru_cache(maxsize=1)
def _tokenizer():
    from rouge_score.tokenizers import DefaultTokenizer

    return DefaultTokenizer(use_stemmer=False)


def rouge_tokenize(text: str) -> list[str]:
    return _tokenizer().tokenize(text)


def f_measure(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def ngram_f(reference: Sequence[str], prediction: Sequence[str], n: int) -> float:
    """ROUGE-n F-measure: clipped n-gram overlap over the prediction's and the reference's n-grams."""
    ref_ngrams = Counter(zip(*(reference[i:] for i in range(n))))
    pred_ngrams = Counter(zip(*(prediction[i:] for i in range(n))))
    overlap = sum((ref_ngrams & pred_ngrams).values())
    precision = overlap / max(sum(pred_ngrams.values()), 1)
    recall = overlap / max(sum(ref_ngrams.values()), 1)
    return f_measure(precision, recall)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (bit-parallel)."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for position, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(b)) - 1
    v = full  # bit j set: column j of the DP row has not yet increased
    for token in a:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def lcs_f(reference: Sequence[str], prediction: Sequence[str]) -> float:
    """ROUGE-L F-measure from the longest common subsequence (0 if either side is empty)."""
    if not reference or not prediction:
        return 0.0
    lcs = lcs_length(reference, prediction)
    return f_measure(lcs / len(prediction), lcs / len(reference))


def rouge_f(reference: str, prediction: str) -> tuple[float, float, float]:
    """(ROUGE-1, ROUGE-2, ROUGE-L) F-measures of one pair of raw texts."""
    ref, pred = rouge_tokenize(reference), rouge_tokenize(prediction)
    return ngram_f(ref, pred, 1), ngram_f(ref, pred, 2), lcs_f(ref, pred)
