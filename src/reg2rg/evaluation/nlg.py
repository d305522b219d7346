"""Protocol "reg2rg": the paper's whole-report NLG metrics, per sample, with mean, std and corpus value.

Both texts lose their region prefixes (``text.strip_region_prefixes``), then per sample:
BLEU-1..4 (``bleu``: 13a tokens, smoothed), METEOR (``meteor``: NLTK, alpha 0.9, beta 3, gamma 0.5),
ROUGE-1/2/L (``rouge``: rouge_score F-measure, no stemmer) and CIDEr (``cider``: pycocoevalcap's
formula, whitespace tokens, document frequencies from the evaluated set, so NaN below
``MIN_CIDER_STUDIES`` pairs). Headline numbers are
means over samples (std: population std, as numpy's default). Corpus values: BLEU from the pooled n-gram counts (HF
``evaluate`` called on the whole corpus); METEOR and ROUGE have no pooled form in the protocol, so
their corpus value is the sample mean (what ``evaluate`` returns for METEOR and estimates by
bootstrap for ROUGE); CIDEr's corpus score is pycocoevalcap's, also the sample mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reg2rg.evaluation.bleu import sentence_bleu
from reg2rg.evaluation.cider import MIN_CIDER_STUDIES, cider
from reg2rg.evaluation.meteor import MeteorScorer
from reg2rg.evaluation.rouge import ROUGE_TYPES, rouge_f
from reg2rg.evaluation.text import strip_region_prefixes

BLEU_TYPES: tuple[str, ...] = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
REG2RG_METRICS: tuple[str, ...] = BLEU_TYPES + ("METEOR",) + ROUGE_TYPES + ("CIDEr",)


@dataclass(frozen=True)
class MetricSummary:
    mean: float
    std: float
    corpus: float

    def as_dict(self) -> dict[str, float | None]:
        """The three values, None where not computed (NaN: CIDEr of too few studies)."""
        return {
            name: None if math.isnan(value) else value
            for name, value in {"mean": self.mean, "std": self.std, "corpus": self.corpus}.items()
        }


@dataclass(frozen=True)
class NLGScores:
    """Per-sample scores (N rows, one column per metric) and the corpus value of each metric."""

    per_sample: pd.DataFrame
    corpus: dict[str, float]

    def summary(self) -> dict[str, MetricSummary]:
        return {
            name: MetricSummary(float(column.mean()), float(column.std(ddof=0)), self.corpus[name])
            for name, column in self.per_sample.items()
        }


def reg2rg_scores(
    references: Sequence[str], predictions: Sequence[str], meteor: MeteorScorer | None = None
) -> NLGScores:
    """Score report pairs under protocol "reg2rg" (region prefixes are stripped here)."""
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    if not references:
        raise ValueError("no report pairs to score")
    refs = [strip_region_prefixes(text) for text in references]
    preds = [strip_region_prefixes(text) for text in predictions]
    meteor = meteor or MeteorScorer()
    bleu, corpus_bleu = sentence_bleu(refs, preds)
    rouge = np.array([rouge_f(ref, pred) for ref, pred in zip(refs, preds)], dtype=np.float64)
    if len(refs) >= MIN_CIDER_STUDIES:
        corpus_cider, cider_scores = cider(refs, preds)
    else:  # IDF from too few references: not a score
        corpus_cider, cider_scores = math.nan, np.full(len(refs), np.nan)
    per_sample = pd.DataFrame(
        np.column_stack([bleu, meteor.score_pairs(refs, preds), rouge, cider_scores]), columns=list(REG2RG_METRICS)
    )
    corpus = dict(zip(BLEU_TYPES, map(float, corpus_bleu)))
    corpus |= {name: float(per_sample[name].mean()) for name in ("METEOR",) + ROUGE_TYPES}
    corpus["CIDEr"] = corpus_cider
    return NLGScores(per_sample, corpus)
