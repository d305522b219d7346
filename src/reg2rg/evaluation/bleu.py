"""Smoothed BLEU as HF ``evaluate``'s "bleu" computes it (tensorflow/nmt ``compute_bleu``).

Text is tokenized with mteval-v13a rules (sacrebleu's ``Tokenizer13a``, case-sensitive). For each
sample we count, once, the clipped n-gram matches and the possible n-grams of orders 1..4 and the
two lengths; every BLEU-n, per sample or over the corpus, then follows from those counts:

    p_k  = (matches_k + 1) / (possible_k + 1)             # smooth=True: add one to every order
    BLEU-n = exp(sum_{k<=n} log(p_k) / n) * BP
    BP   = 1 if hyp_len > ref_len else exp(1 - ref_len / hyp_len)   (0 if either length is 0)

Counting once for all orders is exact: order-k counts do not depend on the maximum order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

MAX_ORDER = 4
# Columns of a statistics row: matches of orders 1..4, possible n-grams of orders 1..4, lengths.
MATCHES = slice(0, MAX_ORDER)
POSSIBLE = slice(MAX_ORDER, 2 * MAX_ORDER)
HYP_LEN, REF_LEN = 2 * MAX_ORDER, 2 * MAX_ORDER + 1


@lru_cache(maxsize=1)
def _tokenizer_13a():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


@lru_cache(maxsize=2**17)
def _word_13a(word: str) -> tuple[str, ...]:
    return tuple(_tokenizer_13a()(word).split())


def tokenize_13a(text: str) -> list[str]:
    """mteval-v13a tokens of ``text`` (punctuation split off, case kept), as sacrebleu's ``Tokenizer13a``.

    The 13a rules look one character around each symbol and pad the line with spaces, so a line
    without newlines tokenizes word by word (memoised); lines with newlines, which 13a may join
    ("-\\n"), go through the tokenizer whole.
    """
    if "\n" in text:
        return _tokenizer_13a()(text).split()
    return [token for word in text.split() for token in _word_13a(word)]


def ngram_counts(tokens: Sequence[str], max_order: int = MAX_ORDER) -> Counter:
    """All n-grams of orders 1..max_order, as tuples, with their counts."""
    counts: Counter = Counter()
    for order in range(1, max_order + 1):
        counts.update(zip(*(tokens[start:] for start in range(order))))
    return counts


def bleu_statistics(reference: Sequence[str], hypothesis: Sequence[str], max_order: int = MAX_ORDER) -> np.ndarray:
    """One statistics row (2 * MAX_ORDER + 2,) for a tokenized reference/hypothesis pair."""
    row = np.zeros(2 * MAX_ORDER + 2, dtype=np.int64)
    overlap = ngram_counts(hypothesis, max_order) & ngram_counts(reference, max_order)
    for ngram, count in overlap.items():
        row[len(ngram) - 1] += count
    for order in range(1, max_order + 1):
        row[MAX_ORDER + order - 1] = max(len(hypothesis) - order + 1, 0)
    row[HYP_LEN], row[REF_LEN] = len(hypothesis), len(reference)
    return row


def bleu_from_statistics(stats: np.ndarray, max_order: int) -> np.ndarray:
    """Smoothed BLEU-``max_order`` for each statistics row: (N, 10) -> (N,)."""
    if not 1 <= max_order <= MAX_ORDER:
        raise ValueError(f"max_order must be in 1..{MAX_ORDER}, got {max_order}")
    stats = np.atleast_2d(stats).astype(np.float64)
    precisions = (stats[:, MATCHES][:, :max_order] + 1.0) / (stats[:, POSSIBLE][:, :max_order] + 1.0)
    geo_mean = np.exp(((1.0 / max_order) * np.log(precisions)).sum(axis=1))
    hyp_len, ref_len = stats[:, HYP_LEN], stats[:, REF_LEN]
    valid = (hyp_len > 0) & (ref_len > 0)
    ratio = np.divide(hyp_len, ref_len, out=np.zeros_like(hyp_len), where=valid)
    penalty = np.where(ratio > 1.0, 1.0, np.exp(1.0 - np.divide(1.0, ratio, out=np.ones_like(ratio), where=valid)))
    return geo_mean * np.where(valid, penalty, 0.0)


def sentence_bleu(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample BLEU-1..4 (N, 4) and corpus BLEU-1..4 (4,) of raw texts."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("no reference/hypothesis pairs to score")
    stats = np.stack(
        [bleu_statistics(tokenize_13a(ref), tokenize_13a(hyp)) for ref, hyp in zip(references, hypotheses)]
    )
    per_sample = np.stack([bleu_from_statistics(stats, n) for n in range(1, MAX_ORDER + 1)], axis=1)
    pooled = stats.sum(axis=0, keepdims=True)
    corpus = np.array([bleu_from_statistics(pooled, n)[0] for n in range(1, MAX_ORDER + 1)])
    return per_sample, corpus
