"""CIDEr as pycocoevalcap's ``Cider().compute_score`` computes it, with sparse matrices instead of dicts.

One reference per sample, whitespace tokens, n = 1..4, sigma = 6 (pycocoevalcap's defaults):

    idf(g)     = log(N) - log(max(1, number of references containing g))
    w(g)       = count(g) * idf(g)                       for each text, n-gram g
    sim_n      = sum_g min(w_hyp(g), w_ref(g)) * w_ref(g) / (|w_hyp|_n * |w_ref|_n)   (0 if a norm is 0)
    penalty    = exp(-(b_hyp - b_ref)^2 / (2 sigma^2)),  b = number of bigrams (pycocoevalcap's "length")
    CIDEr      = 10 * mean_n(sim_n * penalty);  corpus score = mean over samples

Same formula, same quirks (the clipped numerator, the bigram-count length); only the order of
floating-point sums differs from pycocoevalcap (agreement to ~1e-12).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reg2rg.evaluation.bleu import ngram_counts

ORDERS = 4
SIGMA = 6.0
# The IDF weights come from the scored references themselves: with one study every n-gram has IDF 0
# (CIDEr 0 whatever the text), with a few they are noise. Below this many studies CIDEr is not reported.
MIN_CIDER_STUDIES = 10
CIDER_TOO_FEW = f"n/a (needs >= {MIN_CIDER_STUDIES} studies: IDF from the corpus)"


def _ngram_triplets(
    texts: Sequence[str], vocabulary: dict[tuple[str, ...], int]
) -> tuple[list[int], list[int], list[int]]:
    """Sparse n-gram counts of whitespace tokens as (rows, columns, counts); new n-grams join ``vocabulary``."""
    rows, columns, counts = [], [], []
    for row, text in enumerate(texts):
        for ngram, count in ngram_counts(text.split(), ORDERS).items():
            rows.append(row)
            columns.append(vocabulary.setdefault(ngram, len(vocabulary)))
            counts.append(count)
    return rows, columns, counts


def cider(references: Sequence[str], predictions: Sequence[str]) -> tuple[float, np.ndarray]:
    """Corpus CIDEr and per-sample CIDEr (N,) of whitespace-tokenized texts, one reference each."""
    from scipy.sparse import csr_matrix

    if len(references) != len(predictions) or not references:
        raise ValueError(
            f"need matching non-empty lists, got {len(references)} references and {len(predictions)} predictions"
        )
    vocabulary: dict[tuple[str, ...], int] = {}
    triplets = _ngram_triplets(references, vocabulary), _ngram_triplets(predictions, vocabulary)
    size = len(vocabulary)
    refs, hyps = (
        csr_matrix((np.asarray(counts, dtype=np.float64), (rows, columns)), shape=(len(references), size))
        for rows, columns, counts in triplets
    )
    order = np.empty(size, dtype=np.int64)
    for ngram, column in vocabulary.items():
        order[column] = len(ngram) - 1
    by_order = csr_matrix((np.ones(size), (np.arange(size), order)), shape=(size, ORDERS))  # (V, 4) one-hot

    document_frequency = np.asarray((refs > 0).sum(axis=0)).ravel()
    idf = np.log(float(len(references))) - np.log(np.maximum(1.0, document_frequency))
    w_ref, w_hyp = refs.multiply(idf).tocsr(), hyps.multiply(idf).tocsr()
    norm_ref = np.sqrt(np.asarray((w_ref.multiply(w_ref) @ by_order).todense()))  # (N, 4)
    norm_hyp = np.sqrt(np.asarray((w_hyp.multiply(w_hyp) @ by_order).todense()))
    overlap = np.asarray((w_hyp.minimum(w_ref).multiply(w_ref) @ by_order).todense())  # (N, 4)
    norms = norm_hyp * norm_ref
    similarity = np.divide(overlap, norms, out=overlap.copy(), where=norms != 0)

    bigrams = (
        np.asarray((refs @ by_order[:, 1]).todense()).ravel(),
        np.asarray((hyps @ by_order[:, 1]).todense()).ravel(),
    )
    penalty = np.exp(-((bigrams[1] - bigrams[0]) ** 2) / (2 * SIGMA**2))
    scores = 10.0 * (similarity * penalty[:, None]).mean(axis=1)
    return float(scores.mean()), scores
