"""NLTK METEOR as HF ``evaluate``'s "meteor" computes it, with caches that leave every score unchanged.

``single_meteor_score(word_tokenize(reference), word_tokenize(prediction), alpha=0.9, beta=3,
gamma=0.5)`` per sample. Reports repeat words and sentences, and NLTK recomputes them every time:

- ``word_tokenize`` is Punkt sentence splitting followed by the Treebank word tokenizer on each
  sentence. Punkt decides each candidate break from a short context string around it
  (``text_contains_sentbreak``, a pure function of that string and the English parameters), and
  the Treebank step is a pure function of the sentence: both are memoised.
- METEOR's stem and WordNet-synonym stages call the Porter stemmer and ``wordnet.synsets`` once per
  word per sample; both are memoised per word (NLTK's own matching code runs unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

ALPHA, BETA, GAMMA = 0.9, 3.0, 0.5
CACHE_SIZE = 2**17


class _CachedStemmer:
    """Porter stemmer with a per-word cache (NLTK's METEOR only calls ``stem``)."""

    def __init__(self):
        from nltk.stem.porter import PorterStemmer

        self.stem = lru_cache(maxsize=CACHE_SIZE)(PorterStemmer().stem)


class _CachedWordNet:
    """WordNet reader whose ``synsets(word)`` is cached (the only call NLTK's METEOR makes)."""

    def __init__(self):
        from reg2rg.evaluation.nltk_data import wordnet_reader

        self.synsets = lru_cache(maxsize=CACHE_SIZE)(wordnet_reader().synsets)


class MeteorScorer:
    """Per-sample NLTK METEOR of raw texts, on the WordNet and Punkt data shipped with reg2rg."""

    def __init__(self, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA):
        from nltk.tokenize.destructive import NLTKWordTokenizer
        from nltk.tokenize.punkt import PunktSentenceTokenizer

        from reg2rg.evaluation.nltk_data import punkt_parameters

        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        punkt = PunktSentenceTokenizer(punkt_parameters())  # what sent_tokenize uses, as our own instance
        punkt.text_contains_sentbreak = lru_cache(maxsize=CACHE_SIZE)(punkt.text_contains_sentbreak)
        self._sentences = punkt.tokenize
        self._words = lru_cache(maxsize=CACHE_SIZE)(NLTKWordTokenizer().tokenize)
        self._stemmer = _CachedStemmer()
        self._wordnet = _CachedWordNet()

    def tokenize(self, text: str) -> list[str]:
        """``nltk.word_tokenize(text)``, with the memoised steps above."""
        return [token for sentence in self._sentences(text) for token in self._words(sentence)]

    def score(self, reference: str, prediction: str) -> float:
        from nltk.translate.meteor_score import single_meteor_score

        return single_meteor_score(
            self.tokenize(reference),
            self.tokenize(prediction),
            stemmer=self._stemmer,
            wordnet=self._wordnet,
            alpha=self.alpha,
            beta=self.beta,
            gamma=self.gamma,
        )

    def score_pairs(self, references: Sequence[str], predictions: Sequence[str]) -> np.ndarray:
        return np.array([self.score(ref, pred) for ref, pred in zip(references, predictions)], dtype=np.float64)
