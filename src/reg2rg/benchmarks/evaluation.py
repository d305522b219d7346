"""Evaluation benchmark: our protocol-"reg2rg" evaluation vs the official per-call approach, same run.

Workload: ``n_pairs`` synthetic report pairs of RadGenome length (~190 words, 10 regions with
"The region <i> is <area>:" prefixes; CT-RATE style sentences with random sizes and sides). A
prediction keeps each ground-truth sentence with probability 0.6 and otherwise says something else
about the region, like a model that is right most of the time.

- ours: ``reg2rg.evaluation.evaluate`` with protocol "reg2rg" (BLEU-1..4, METEOR, ROUGE-1/2/L,
  CIDEr), the rule CE labeler and the region tables (recognition, per-region NLG and CE).
- reference: the same NLG numbers computed the way the official scripts do (hf_nlg_evaluation.py,
  run on the whole reports and again on each region's pairs): for every sample, one BLEU call per
  order 1..4 (13a tokenization and n-gram counting redone for each call; HF evaluate's
  ``compute_bleu`` logic), one METEOR call (``nltk.word_tokenize`` on both texts, then
  ``single_meteor_score``, no caching), one ROUGE call (a new ``RougeScorer`` for rouge1, rouge2,
  rougeL and rougeLsum, as ``evaluate``'s rouge builds per call) and one pycocoevalcap CIDEr call
  per set; plus the same rule CE and region recognition as ours. The per-call overhead of HF
  ``evaluate`` itself (argument validation, Arrow tables) is not emulated, so the reference time is
  a lower bound of the official cost. The whole-report scores of both runs are compared
  (``max_abs_score_difference``). Wall and CPU times are both given: on a shared machine the CPU
  time of this process is the steadier figure.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reg2rg.constants import REGIONS

SENTENCES: dict[str, tuple[str, ...]] = {
    "abdomen": (
        "Upper abdominal organs included in the sections are normal.",
        "A hypodense lesion of {n} mm is seen in the {side} lobe of the liver, consistent with a cyst.",
        "The liver, spleen and adrenal glands within the scan range are unremarkable.",
    ),
    "bone": (
        "No lytic-destructive lesions were detected in the bone structures within the sections.",
        "Degenerative osteophytes are seen in the thoracic vertebrae.",
        "An old fracture of the {side} {n}th rib is noted.",
    ),
    "breast": ("Breast tissue is symmetric with no mass lesion.", "No gynecomastia is seen."),
    "esophagus": (
        "Thoracic esophagus calibration is normal and no significant wall thickening is detected.",
        "A sliding hiatal hernia is observed.",
    ),
    "heart": (
        "Heart contour and size are normal.",
        "Cardiomegaly is present.",
        "Pericardial effusion-thickening was not observed.",
        "Calcified atheromatous plaques are observed in the coronary arteries.",
    ),
    "lung": (
        "Aeration of both lung parenchyma is normal and no nodular or infiltrative lesion was detected.",
        "A {n} mm nodule is seen in the {side} upper lobe.",
        "Ground glass densities are observed in the {side} lower lobe.",
        "Emphysematous changes are observed in both lungs.",
        "Linear atelectasis is seen in the {side} lower lobe.",
        "Fibrotic sequelae changes are observed in the {side} lung apex.",
        "Peribronchial thickening and bronchiectasis are seen in both lower lobes.",
        "Interlobular septal thickening and a mosaic attenuation pattern are noted.",
    ),
    "mediastinum": (
        "Mediastinal main vascular structures are of normal width.",
        "No lymph node of pathological size was detected in the mediastinum.",
        "A lymph node of {n} mm short axis is seen in the subcarinal station, in pathological size.",
        "Atherosclerotic calcifications are observed in the aortic arch.",
    ),
    "pleura": (
        "No pleural effusion or pneumothorax is seen.",
        "A {side} pleural effusion with a depth of {n} mm is observed.",
        "Pleural thickening is noted on the {side} side.",
    ),
    "thyroid": (
        "The thyroid gland is normal in size and attenuation.",
        "A {n} mm nodule is seen in the {side} thyroid lobe.",
    ),
    "trachea and bronchie": (
        "Trachea and both main bronchi are open.",
        "No occlusive pathology was detected in the trachea and both main bronchi.",
    ),
}
WORDS_PER_REPORT = 190


def _sentence(rng: random.Random, region: str) -> str:
    return rng.choice(SENTENCES[region]).format(n=rng.randint(3, 40), side=rng.choice(("right", "left")))


def synthetic_pairs(n_pairs: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n_pairs`` (ground truth, prediction) reports of ~190 words with region prefixes."""
    rng = random.Random(seed)
    references, predictions = [], []
    for _ in range(n_pairs):
        regions = {region: [_sentence(rng, region)] for region in REGIONS}
        while sum(len(" ".join(texts).split()) for texts in regions.values()) < WORDS_PER_REPORT:
            region = rng.choice(REGIONS)
            regions[region].append(_sentence(rng, region))
        guesses = {
            region: [s if rng.random() < 0.6 else _sentence(rng, region) for s in texts]
            for region, texts in regions.items()
        }
        references.append(_join(regions))
        predictions.append(_join(guesses))
    return references, predictions


def _join(regions: dict[str, list[str]]) -> str:
    return " ".join(
        f"The region {i} is {region}: {' '.join(texts)}" for i, (region, texts) in enumerate(regions.items())
    )


def _official_nlg(references: Sequence[str], predictions: Sequence[str]) -> np.ndarray:
    """The official per-call NLG (see the module docstring): (N, 9) scores in ``REG2RG_METRICS`` order."""
    from nltk.translate.meteor_score import single_meteor_score
    from pycocoevalcap.cider.cider import Cider
    from rouge_score.rouge_scorer import RougeScorer
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    from reg2rg.evaluation.bleu import bleu_from_statistics, bleu_statistics
    from reg2rg.evaluation.nltk_data import word_tokenize, wordnet_reader

    tokenize = Tokenizer13a()  # HF evaluate's module-level tokenizer: its LRU cache persists across calls
    rows = []
    for reference, prediction in zip(references, predictions):
        bleu = [
            bleu_from_statistics(
                bleu_statistics(tokenize(reference).split(), tokenize(prediction).split(), max_order=order), order
            )[0]
            for order in range(1, 5)
        ]
        meteor = single_meteor_score(
            word_tokenize(reference), word_tokenize(prediction), wordnet=wordnet_reader(), alpha=0.9, beta=3, gamma=0.5
        )
        rouge = RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"]).score(reference, prediction)
        rows.append([*bleu, meteor, *(rouge[kind].fmeasure for kind in ("rouge1", "rouge2", "rougeL"))])
    keys = range(len(references))
    _, cider = Cider().compute_score(
        {k: [r] for k, r in zip(keys, references)}, {k: [p] for k, p in zip(keys, predictions)}
    )
    return np.column_stack([np.array(rows), cider])


def _reference_run(references: list[str], predictions: list[str]) -> np.ndarray:
    """The official approach to the same work; returns the whole-report scores (N, 9)."""
    from reg2rg.evaluation.regions import RegionPairs, recognize_regions, region_ce_table
    from reg2rg.evaluation.rules import RuleLabeler
    from reg2rg.evaluation.text import strip_region_prefixes

    labeler = RuleLabeler()
    stripped_refs = [strip_region_prefixes(text) for text in references]
    stripped_preds = [strip_region_prefixes(text) for text in predictions]
    scores = _official_nlg(stripped_refs, stripped_preds)
    labeler(stripped_refs), labeler(stripped_preds)
    recognize_regions(references, predictions)
    pairs = RegionPairs.split(references, predictions)
    for region in pairs.regions:
        _official_nlg(pairs.references[region], pairs.predictions[region])
    region_ce_table(pairs, labeler)
    return scores


def run(n_pairs: int = 1564, json_path: str | Path | None = None) -> dict:
    """Time ours and the official approach on the same pairs; the result is also written to ``json_path``."""
    from reg2rg.evaluation.inputs import validate_pairs
    from reg2rg.evaluation.meteor import MeteorScorer
    from reg2rg.evaluation.pipeline import evaluate
    from reg2rg.evaluation.rules import clause_findings

    references, predictions = synthetic_pairs(n_pairs)
    MeteorScorer().score("warm up WordNet", "and Punkt")  # loading NLTK data is not part of either run

    start, cpu_start = time.perf_counter(), time.process_time()
    evaluation = evaluate(validate_pairs(references, predictions), protocols=("reg2rg",))
    ours, ours_cpu = time.perf_counter() - start, time.process_time() - cpu_start

    clause_findings.cache_clear()
    start, cpu_start = time.perf_counter(), time.process_time()
    reference_scores = _reference_run(references, predictions)
    reference, reference_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    difference = np.abs(evaluation.reg2rg.per_sample.to_numpy() - reference_scores).max()

    result = {
        "benchmark": "evaluation",
        "n_pairs": n_pairs,
        "words_per_report": float(evaluation.lengths.reference.mean()),
        "ours_s": ours,
        "ours_cpu_s": ours_cpu,
        "ours_stages_s": evaluation.seconds,
        "reference_s": reference,
        "reference_cpu_s": reference_cpu,
        "speedup": reference / ours,
        "max_abs_score_difference": float(difference),
        "reg2rg_means": {name: s.mean for name, s in evaluation.reg2rg.summary().items()},
    }
    if json_path is not None:
        Path(json_path).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result
