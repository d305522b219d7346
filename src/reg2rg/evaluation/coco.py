"""Protocol "coco": pycocoevalcap corpus BLEU-1..4, METEOR 1.5 (Java), ROUGE-L and CIDEr.

Texts lose their region prefixes and are tokenized PTB-style as COCO caption evaluation does
(lower-cased; hyphenated words and decimals kept whole; punctuation tokens dropped), here in
Python so that only METEOR needs Java. BLEU is pycocoevalcap's ``Bleu(4)``; ROUGE-L and CIDEr
are pycocoevalcap's formulas computed faster (``coco_rouge_l``, ``cider``; tests compare them
with pycocoevalcap); METEOR is the jar (``meteor_java``). When Java is missing or the jar fails,
METEOR is None and the reason is returned instead of raising. CIDEr is None below ``MIN_CIDER_STUDIES``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from reg2rg.evaluation.cider import MIN_CIDER_STUDIES, cider
from reg2rg.evaluation.meteor_java import MeteorUnavailable, java_meteor
from reg2rg.evaluation.rouge import lcs_length
from reg2rg.evaluation.text import strip_region_prefixes

COCO_METRICS: tuple[str, ...] = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
PTB_TOKEN = re.compile(r"[a-z0-9]+(?:[-'.][a-z0-9]+)*|[^\sa-z0-9]")
METEOR_TIMEOUT_S = 600.0
ROUGE_BETA = 1.2  # pycocoevalcap's Rouge


def coco_tokenize(text: str) -> str:
    """PTB-style tokens of a report, space-joined, without punctuation (pycocoevalcap splits on spaces)."""
    tokens = PTB_TOKEN.findall(strip_region_prefixes(text).lower())
    return " ".join(token for token in tokens if token[0].isalnum())


def coco_rouge_l(reference: str, candidate: str, beta: float = ROUGE_BETA) -> float:
    """pycocoevalcap's ``Rouge().calc_score`` for one pair of space-joined tokens (bit-parallel LCS)."""
    ref, cand = reference.split(" "), candidate.split(" ")
    lcs = lcs_length(ref, cand)
    precision, recall = lcs / len(cand), lcs / len(ref)
    if precision == 0 or recall == 0:
        return 0.0
    return ((1 + beta**2) * precision * recall) / (recall + beta**2 * precision)


def coco_scores(
    references: Sequence[str],
    predictions: Sequence[str],
    meteor_timeout_s: float = METEOR_TIMEOUT_S,
    ids: Sequence[str] | None = None,
) -> tuple[dict[str, float | None], list[str]]:
    """Corpus scores under protocol "coco" and warnings (METEOR None, with its reason, if Java fails)."""
    from pycocoevalcap.bleu.bleu import Bleu

    if not references or len(references) != len(predictions):
        raise ValueError(
            f"need matching non-empty lists, got {len(references)} references and {len(predictions)} predictions"
        )
    refs = [coco_tokenize(text) for text in references]
    preds = [coco_tokenize(text) for text in predictions]
    keys = range(len(refs))
    bleu, _ = Bleu(4).compute_score(
        {k: [r] for k, r in zip(keys, refs)}, {k: [p] for k, p in zip(keys, preds)}, verbose=0
    )
    scores: dict[str, float | None] = {f"BLEU-{n}": float(bleu[n - 1]) for n in range(1, 5)}
    warnings = []
    try:
        scores["METEOR"] = java_meteor(refs, preds, meteor_timeout_s, ids)
    except MeteorUnavailable as error:
        scores["METEOR"] = None
        warnings.append(f"coco METEOR not computed: {error}")
    scores["ROUGE-L"] = float(np.mean([coco_rouge_l(ref, pred) for ref, pred in zip(refs, preds)]))
    scores["CIDEr"] = cider(refs, preds)[0] if len(refs) >= MIN_CIDER_STUDIES else None  # IDF from too few
    return scores, warnings
